"""Scores descriptors on the HPatches benchmarks: inputs validated first, then each task timed.

Two entry points:

* `evaluate_descriptor_set`: a DescriptorSet in memory -> results document
  (`report.results_json`).
* `run`: what `python -m experiments.evaluate` does; picks the mode from
  its arguments (a descriptor folder, or checkpoints in a workdir),
  reads and validates everything, scores, logs the tables and writes the
  JSON.

Every input (descriptors, splits, task files) is read and validated before
the first kernel runs, so a malformed file fails in seconds, not after an
hour of scoring.
"""

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from absl import logging
import numpy as np

from nhp_jax.data import reader
from nhp_jax.data import splits as splits_lib
from nhp_jax.errors import ConfigError, TaskFileError
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import report
from nhp_jax.evaluation import task_files
from nhp_jax.evaluation import types

TASKS = report.TASKS
Scorer = Callable[..., dict]


def default_scorers(metric: str) -> dict[str, Scorer]:
  """The JAX kernels of the three tasks, after checking that they know `metric`.

  Imported on first use: they pull in JAX, which reading and validating
  inputs does not need.

  Raises:
    ConfigError: an unknown metric (naming the known ones).
  """
  # pylint: disable=g-import-not-at-top
  from nhp_jax.evaluation import kernels, matching, retrieval, verification
  kernels.check_metric(metric)
  return {
      "verification": lambda descs, verif, retr, metric: verification.evaluate_verification(
          descs, verif, metric),
      "matching": lambda descs, verif, retr, metric: matching.evaluate_matching(descs, metric),
      "retrieval": lambda descs, verif, retr, metric: retrieval.evaluate_retrieval(
          descs, retr, types.RETRIEVAL_POOL_SIZES, metric),
  }


def _check_options(tasks: Sequence[str], n_pairs: int) -> tuple[str, ...]:
  """The requested tasks in benchmark order; ConfigError on unknown tasks or n_pairs < 1."""
  tasks = tuple(tasks)
  unknown = [t for t in tasks if t not in TASKS]
  if unknown or not tasks:
    raise ConfigError(f"tasks: expected a non-empty subset of {', '.join(TASKS)}, "
                      f"found {', '.join(tasks) or 'none'}")
  if "verification" in tasks and n_pairs < 1:
    raise ConfigError(f"n_pairs: expected at least 1 pair per verification file, found {n_pairs}")
  return tuple(t for t in TASKS if t in tasks)


def ref_patches_reader(data_dir: str | os.PathLike,
                       sequences: Sequence[str]) -> Callable[[], list[np.ndarray]]:
  """A function reading the `ref` patches of `sequences` at their stored size.

  Retrieval lists are generated from these pixels (their std decides which
  patches count as textured), so the HPatches release gives its 65x65
  patches, as for the official lists, and N-HPatches its 32x32 ones.
  """
  def read() -> list[np.ndarray]:
    source = reader.open_source(data_dir)
    reader.check_sequences(source, list(sequences))
    out = []
    for name in sequences:
      image = reader.read_png(os.path.join(source.sequence_dir(name), "ref.png"))
      side = source.width
      out.append(image[:image.shape[0] // side * side].reshape(-1, side, side))
    return out
  return read


def evaluate_descriptor_set(descs: types.DescriptorSet,
                            split: str,
                            tasks_dir: str | os.PathLike | None = None,
                            data_dir: str | os.PathLike | None = None,
                            tasks: Sequence[str] = TASKS,
                            n_pairs: int = task_files.OFFICIAL_N_PAIRS,
                            metric: str = "l2",
                            cache_dir: str | os.PathLike | None = None,
                            scorers: Mapping[str, Scorer] | None = None,
                            meta: Mapping[str, Any] | None = None,
                            ref_patches: Callable[[], list[np.ndarray]] | None = None) -> dict:
  """Scores descriptors of a split's test sequences on the chosen benchmarks.

  Args:
    descs: descriptors (L, 16, D) float32 of the split's test sequences.
    split: split name (names the task files).
    tasks_dir: folder that may hold official task CSVs (see
      `task_files.load_tasks`).
    data_dir: dataset root: caches generated task files and gives the
      `ref` pixels when retrieval lists must be generated.
    tasks: subset of ("verification", "matching", "retrieval").
    n_pairs: rows per generated verification file (official 1,000,000).
    metric: descriptor distance, passed to the kernels ("l2" as the benchmark).
    cache_dir: overrides where generated task files are cached.
    scorers: {task: fn(descs, verification_task, retrieval_task, metric) ->
      result dict}; default `default_scorers(metric)`.
    meta: extra entries for details["meta"] of the document.
    ref_patches: returns the `ref` patches (N_s, H, W) uint8 per sequence of
      `descs`, from which retrieval lists are generated when needed;
      default: read from `data_dir` (required for a subset of a sequence's
      labels, which the files on disk do not match).

  Returns:
    The `report.results_json` document.

  Raises:
    TaskFileError, DataError, ConfigError: bad inputs, before any scoring.
  """
  tasks = _check_options(tasks, n_pairs)
  scorers = scorers if scorers is not None else default_scorers(metric)
  start = time.perf_counter()
  wanted = tuple(t for t in task_files.TASKS if t in tasks)
  if ref_patches is None and data_dir is not None:
    ref_patches = ref_patches_reader(data_dir, descs.sequences)
  verif, retr = task_files.load_tasks(split, descs, tasks_dir=tasks_dir, data_dir=data_dir,
                                      n_pairs=n_pairs, ref_patches=ref_patches,
                                      cache_dir=cache_dir, tasks=wanted)
  logging.info("task files ready in %.1f s", time.perf_counter() - start)
  results, wall = {}, {}
  for task in tasks:
    logging.info("scoring %s: %d sequences, %d patches, %d-d descriptors", task,
                 len(descs.sequences), int(descs.offsets[-1]), descs.dim)
    t0 = time.perf_counter()
    results[task] = scorers[task](descs, verif, retr, metric)
    wall[task] = time.perf_counter() - t0
    logging.info("%s: mAP %.4f (%.1f s)", task, results[task]["mAP"], wall[task])
  info = {"split": split, "metric": metric, "tasks": list(tasks),
          "sequences": len(descs.sequences), "patches": int(descs.offsets[-1]),
          "dim": descs.dim}
  if verif is not None:
    info["verification_pairs"] = len(verif.positives)
  if retr is not None:
    info["retrieval_queries"] = int(len(retr.queries))
    info["retrieval_distractors"] = int(len(retr.distractors))
  info.update(meta or {})
  return report.results_json(results, wall, info)


def _splits_file(tasks_dir: str | None, data_dir: str | None) -> str | None:
  """The splits.json to use: the task folder's, else the dataset's, else None (vendored)."""
  candidates = []
  if tasks_dir is not None:
    candidates += [os.path.join(tasks_dir, splits_lib.SPLITS_FILENAME),
                   os.path.join(tasks_dir, "splits", splits_lib.SPLITS_FILENAME)]
  if data_dir is not None:
    candidates.append(os.path.join(data_dir, splits_lib.SPLITS_FILENAME))
  return next((c for c in candidates if os.path.isfile(c)), None)


def run(descriptors_dir: str | None = None,
        workdir: str | None = None,
        split: str = "a",
        tasks_dir: str | None = None,
        data_dir: str | None = None,
        tasks: Sequence[str] = TASKS,
        n_pairs: int = task_files.OFFICIAL_N_PAIRS,
        metric: str = "l2",
        json_out: str | None = None,
        embedded_size: str = "medium",
        scorers: Mapping[str, Scorer] | None = None,
        batch_size: int = 1024) -> dict:
  """The `experiments.evaluate` binary: validate inputs, score, print tables, write JSON.

  Args:
    descriptors_dir: score this export folder (`<seq>/<image>.csv`).
    workdir: checkpoint mode: a run folder (denoiser/ + descriptor/) or a
      descriptor workdir; scores noisy, denoised and clean inputs
      (`from_checkpoints.evaluate_workdir`).
    split: split whose test sequences are scored.
    tasks_dir: folder with official task CSVs and/or splits.json.
    data_dir: dataset root; None with no tasks_dir = the embedded dataset.
    tasks, n_pairs, metric, scorers: see `evaluate_descriptor_set`.
    json_out: write the results document here (atomically).
    embedded_size: size of the embedded dataset used when data_dir is None.
    batch_size: checkpoint mode: patches per compiled inference block.

  Returns:
    The results document.

  Raises:
    ConfigError: no mode chosen.
    TaskFileError, DescriptorError, DataError: bad inputs, before scoring.
  """
  tasks = _check_options(tasks, n_pairs)
  if descriptors_dir is None:
    if workdir is not None:
      # pylint: disable-next=g-import-not-at-top
      from nhp_jax.evaluation import from_checkpoints  # restoring needs the training stack
      return from_checkpoints.evaluate_workdir(
          workdir, split=split, data_dir=data_dir, tasks_dir=tasks_dir, tasks=tasks,
          n_pairs=n_pairs, metric=metric, json_out=json_out, batch_size=batch_size)
    raise ConfigError("pass --descriptors_dir (a folder <seq>/<image>.csv) or --workdir "
                      "(checkpoints) to score")
  scorers = scorers if scorers is not None else default_scorers(metric)
  if data_dir is None and tasks_dir is None:
    # pylint: disable-next=g-import-not-at-top
    from nhp_jax.data import embedded  # imports the dataset generator: only needed here
    data_dir = embedded.ensure_embedded(size=embedded_size)
  splits_path = _splits_file(tasks_dir, data_dir)
  splits = splits_lib.load_splits(splits_path)
  try:
    sequences = splits_lib.split_sequences(split, "test", splits)
  except TaskFileError as e:
    raise TaskFileError(f"{splits_path or 'vendored splits.json'}: {e}") from None
  logging.info("reading descriptors of split %s (%d test sequences) from %s", split,
               len(sequences), descriptors_dir)
  t0 = time.perf_counter()
  descs = descriptor_io.read_descriptor_folder(descriptors_dir, sequences)
  read_seconds = time.perf_counter() - t0
  logging.info("read %d x 16 descriptors (%d-d) in %.1f s", int(descs.offsets[-1]), descs.dim,
               read_seconds)
  doc = evaluate_descriptor_set(
      descs, split, tasks_dir=tasks_dir, data_dir=data_dir, tasks=tasks, n_pairs=n_pairs,
      metric=metric, scorers=scorers,
      meta={"mode": "descriptors", "descriptors": descriptors_dir,
            "splits_file": splits_path or "vendored", "read_seconds": round(read_seconds, 3)})
  print(report.format_tables(doc), end="", flush=True)
  if json_out:
    report.write_results(json_out, doc)
    logging.info("wrote %s", json_out)
  return doc
