"""What `experiments.evaluate` and `experiments.compare` do: score, and compare scores.

`run` picks the mode from its arguments:

* a descriptor folder (`<seq>/<image>.csv`, the official layout): reads and
  validates it, scores what the results cache (`results_cache`,
  `--results_dir`) does not hold, stores what it scored;
* checkpoints (`--workdir`, `evaluate_workdir`): restores the networks
  (`describe`), describes the test split on each input kind and scores
  each (`score`).

It returns the results document and writes the JSON; the binary prints the
tables (`report`). `compare` reads several descriptors' cached results and
returns the official printer's tables side by side (and draws their bars).
"""

import glob
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging

from nhp_jax import atomic
from nhp_jax import inference
from nhp_jax.data import embedded
from nhp_jax.data import splits as splits_lib
from nhp_jax.errors import ConfigError, TaskFileError
from nhp_jax.evaluation import describe
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import plots
from nhp_jax.evaluation import report
from nhp_jax.evaluation import results_cache
from nhp_jax.evaluation import score
from nhp_jax.evaluation import summary
from nhp_jax.evaluation import task_files
from nhp_jax.evaluation import types

# Entries of details["meta"] that depend on the task: kept with its cache entry.
_TASK_INFO = {"verification": ("verification_pairs",),
              "retrieval": ("retrieval_queries", "retrieval_distractors")}
_COMMON_INFO = ("split", "metric", "sequences", "patches", "dim")


def _task_sources(task: str, split: str, tasks_dir: str | None) -> list:
  """[file name, size, mtime] of the official task files of `task` in tasks_dir, if any."""
  if tasks_dir is None or task == "matching":
    return []
  prefix = "verif_" if task == "verification" else "retr_"
  out = []
  pattern = os.path.join(glob.escape(tasks_dir), f"{prefix}*split-{split}.csv")
  for path in sorted(glob.glob(pattern)):
    st = os.stat(path)
    out.append([os.path.basename(path), st.st_size, st.st_mtime_ns])
  return out


def cache_key(task: str, *, fingerprint: Mapping[str, Any], split: str, metric: str,
              splits_file: str | None, tasks_dir: str | None, data_dir: str | None,
              n_pairs: int, curve_points: int, detailed: bool) -> dict:
  """What one task's cached result depends on (see `results_cache`)."""
  key = {"descriptors": dict(fingerprint), "split": split, "metric": metric,
         "splits_file": os.path.abspath(splits_file) if splits_file else "vendored",
         "tasks_dir": os.path.abspath(tasks_dir) if tasks_dir else None,
         "task_files": _task_sources(task, split, tasks_dir), "details": detailed}
  if task != "matching":
    key["data_dir"] = os.path.abspath(data_dir) if data_dir else None
  if task == "verification":
    key["n_pairs"] = n_pairs
    key["curve_points"] = curve_points
  if task == "retrieval":
    key["pool_sizes"] = list(types.RETRIEVAL_POOL_SIZES)
  return key


def run(descriptors_dir: str | None = None,
        workdir: str | None = None,
        split: str = "a",
        tasks_dir: str | None = None,
        data_dir: str | None = None,
        tasks: Sequence[str] = types.BENCHMARKS,
        n_pairs: int = task_files.OFFICIAL_N_PAIRS,
        metric: str = "l2",
        json_out: str | None = None,
        embedded_size: str = "medium",
        scorers: Mapping[str, score.Scorer] | None = None,
        batch_size: int = 1024,
        descriptor_name: str | None = None,
        results_dir: str | None = None,
        overwrite: bool = False,
        curve_points: int = score.DEFAULT_CURVE_POINTS) -> dict:
  """The `experiments.evaluate` binary: validate inputs, score (or reuse the cache), write JSON.

  Args:
    descriptors_dir: score this export folder (`<seq>/<image>.csv`).
    workdir: checkpoint mode: a run folder (denoiser/ + descriptor/) or a
      descriptor workdir; scores noisy, denoised and clean inputs
      (`evaluate_workdir`).
    split: split whose test sequences are scored.
    tasks_dir: folder with official task CSVs and/or splits.json.
    data_dir: dataset root; None with no tasks_dir = the embedded dataset.
    tasks, n_pairs, scorers: see `score.evaluate_descriptor_set`; default
      scorers of a descriptor folder: `score.detail_scorers(metric, curve_points)`.
    metric: "l2" or "l1", any case ("L2" as the official --dist).
    json_out: write the results document here (atomically).
    embedded_size: size of the embedded dataset used when data_dir is None.
    batch_size: checkpoint mode: patches per compiled inference block.
    descriptor_name: the descriptor's name in tables and cache file names;
      default the folder's name.
    results_dir: the results cache (`results_cache`): tasks whose entry
      matches the descriptor files and settings are not scored again;
      scored tasks are stored there.
    overwrite: score every task even when cached (and replace the entries).
    curve_points: most points per verification curve (0: none).

  Returns:
    The results document (details["meta"]["cached_tasks"]: tasks taken
    from the cache).

  Raises:
    ConfigError: no mode chosen, bad options.
    TaskFileError, DescriptorError, DataError: bad inputs, before scoring.
  """
  tasks = score.check_options(tasks, n_pairs)
  metric = score.normalize_metric(metric)
  if descriptors_dir is None:
    if results_dir is not None:
      raise ConfigError("results_dir: caches the scores of a descriptor folder "
                        "(--descriptors_dir or --descr-dir/--descr-name), not of --workdir")
    if workdir is not None:
      return evaluate_workdir(
          workdir, split=split, data_dir=data_dir, tasks_dir=tasks_dir, tasks=tasks,
          n_pairs=n_pairs, metric=metric, json_out=json_out, batch_size=batch_size,
          scorers=scorers)
    raise ConfigError("pass --descriptors_dir (a folder <seq>/<image>.csv) or --workdir "
                      "(checkpoints) to score")
  name = descriptor_name or os.path.basename(os.path.normpath(descriptors_dir))
  if results_dir is not None:
    results_cache.check_name(name)
  detailed = scorers is None
  scorers = scorers if scorers is not None else score.detail_scorers(metric, curve_points)
  if data_dir is None and tasks_dir is None:
    data_dir = embedded.ensure_embedded(size=embedded_size)
  splits_path = score.splits_file(tasks_dir, data_dir)
  splits = splits_lib.load_splits(splits_path)
  try:
    sequences = splits_lib.split_sequences(split, "test", splits)
  except TaskFileError as e:
    raise TaskFileError(f"{splits_path or 'vendored splits.json'}: {e}") from None

  cached, keys = {}, {}
  fingerprint = None
  if results_dir is not None:
    fingerprint = results_cache.fingerprint(descriptors_dir, sequences)
  if fingerprint is not None:
    for task in tasks:
      keys[task] = cache_key(task, fingerprint=fingerprint, split=split, metric=metric,
                             splits_file=splits_path, tasks_dir=tasks_dir, data_dir=data_dir,
                             n_pairs=n_pairs, curve_points=curve_points, detailed=detailed)
      path = results_cache.entry_path(results_dir, name, task, split)
      if overwrite:
        logging.info("%s: --overwrite, scoring %s again", path, task)
        continue
      entry, why = results_cache.lookup(path, keys[task])
      logging.info("results of %s, %s task, split %s: %s (%s)", name, task, split, why, path)
      if entry is not None:
        cached[task] = entry

  meta = {"mode": "descriptors", "descriptors": descriptors_dir, "descriptor_name": name,
          "splits_file": splits_path or "vendored"}
  if results_dir is not None:
    meta["results_dir"] = results_dir
  todo = [t for t in tasks if t not in cached]
  results, info = {}, {}
  if todo:
    logging.info("reading descriptors of split %s (%d test sequences) from %s", split,
                 len(sequences), descriptors_dir)
    t0 = time.perf_counter()
    descs = descriptor_io.read_descriptor_folder(descriptors_dir, sequences)
    meta["read_seconds"] = round(time.perf_counter() - t0, 3)
    logging.info("read %d x 16 descriptors (%d-d) in %.1f s", int(descs.offsets[-1]),
                 descs.dim, meta["read_seconds"])
    doc = score.evaluate_descriptor_set(descs, split, tasks_dir=tasks_dir, data_dir=data_dir,
                                  tasks=todo, n_pairs=n_pairs, metric=metric, scorers=scorers)
    scored_meta = doc["details"]["meta"]
    for task in todo:
      results[task] = doc["details"][task]
      task_info = {k: scored_meta[k] for k in _COMMON_INFO + _TASK_INFO.get(task, ())
                   if k in scored_meta}
      info.update(task_info)
      if task in keys:
        path = results_cache.entry_path(results_dir, name, task, split)
        results_cache.store(path, descriptor=name, task=task, split=split, key=keys[task],
                            result=results[task], info=task_info,
                            source={"descriptors_dir": os.path.abspath(descriptors_dir),
                                    "sequences": list(sequences)})
        logging.info("cached %s results in %s", task, path)
  for task, entry in cached.items():
    results[task] = entry["result"]
    for k, v in entry.get("info", {}).items():
      info.setdefault(k, v)
  info.update(split=split, metric=metric, tasks=list(tasks))
  info.update(meta)
  info["cached_tasks"] = [t for t in tasks if t in cached]
  doc = report.results_json({t: results[t] for t in tasks}, None, info)
  if json_out:
    report.write_results(json_out, doc)
    logging.info("wrote %s", json_out)
  return doc


def evaluate_workdir(workdir: str | None, *, split: str = "a",
                     data_dir: str | None = None, tasks_dir: str | None = None,
                     denoiser_workdir: str | None = None,
                     descriptor_workdir: str | None = None, inputs=inference.INPUTS,
                     step: int | str = "best", tasks=None, n_pairs: int | None = None,
                     metric: str = "l2", json_out: str | None = None,
                     markdown_out: str | None = None,
                     batch_size: int = inference.DEFAULT_BATCH_SIZE,
                     scorers: Mapping[str, score.Scorer] | None = None) -> dict:
  """Restores checkpoints, describes the test split per input kind, scores each.

  Data as in `describe.restore_with_test_split`; scorers as in
  `score.evaluate_descriptor_set` (default: `score.default_scorers`).

  Returns:
    A results document whose headline numbers are those of the pipeline's
    own input (`denoised` when a denoiser is present, else the first input),
    with every input's full document under details["inputs"]
    (`report.input_tables` prints them).

  Raises:
    CheckpointError, ConfigError, DataError, TaskFileError: before any scoring.
  """
  unknown = [k for k in inputs if k not in inference.INPUTS]
  if unknown or not inputs:
    raise ConfigError(f"inputs: expected a non-empty subset of {', '.join(inference.INPUTS)}, "
                      f"found {', '.join(inputs) or 'none'}")
  descriptor, denoiser, patches, data_dir = describe.restore_with_test_split(
      workdir, split=split, data_dir=data_dir, denoiser_workdir=denoiser_workdir,
      descriptor_workdir=descriptor_workdir, step=step)
  des_dir = descriptor.workdir
  den_dir = denoiser.workdir if denoiser else None
  sets = describe.describe_inputs(patches, descriptor, denoiser, inputs, batch_size)
  docs = {}
  for kind, descs in sets.items():
    logging.info("scoring %s inputs", kind)
    docs[kind] = score.evaluate_descriptor_set(
        descs, split, tasks_dir=tasks_dir, data_dir=data_dir,
        tasks=tasks or types.BENCHMARKS,
        n_pairs=n_pairs or task_files.OFFICIAL_N_PAIRS, metric=metric, scorers=scorers,
        meta={"mode": "checkpoints", "input": kind, "descriptor_workdir": des_dir,
              "descriptor_step": descriptor.step, "denoiser_workdir": den_dir,
              "denoiser_step": denoiser.step if denoiser else None})
  main_kind = "denoised" if "denoised" in docs else next(iter(docs))
  doc = {t: docs[main_kind].get(t) for t in types.BENCHMARKS}
  doc["details"] = dict(docs[main_kind]["details"], headline_input=main_kind, inputs=docs)
  table = report.comparison_table(docs)
  if json_out:
    report.write_results(json_out, doc)
  if markdown_out:
    atomic.write_text(markdown_out, f"Split {split}, data {data_dir}\n\n" + table)
  return doc


def compare(results_dir: str, names: Sequence[str], tasks: Sequence[str], split: str = "a", *,
            layout: str = "side_by_side", width: int = 160, plot_out: str | None = None,
            json_out: str | None = None) -> str:
  """What `python -m experiments.compare` does: cached results of several descriptors.

  Reads `<results_dir>/<name>_<task>_<split>.json` for every name and task
  (`results_cache.load_results`), draws the benchmark's bar figure to
  `plot_out` (None: `<results_dir>/compare_<a>+<b>_<split>.png`; "": none) and
  writes the tables' numbers to `json_out`.

  Returns:
    The official printer's tables (`report.format_official`).

  Raises:
    NhpError: a missing or malformed entry (naming its file).
  """
  results = results_cache.load_results(results_dir, names, tasks, split)
  text = report.format_official(results, tasks, layout=layout, width=width)
  if plot_out is None:
    plot_out = os.path.join(results_dir, f"compare_{'+'.join(names)}_{split}.png")
  if json_out:
    atomic.write_json(json_out, {
        "split": split, "descriptors": list(names),
        "tasks": {t: {n: summary.official_numbers(t, results[n][t]) for n in names}
                  for t in tasks}})
  if plot_out:
    plots.plot_benchmark_bars(results, plot_out, tasks=tasks, title=f"HPatches split {split}")
    logging.info("wrote %s", plot_out)
  return text
