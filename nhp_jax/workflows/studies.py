"""Runs a study config: trains the runs it names, scores its rows, writes its table and plots.

One runner for every study (`experiments/configs/studies/*.py`), given the
catalogue of training runs the studies name (`catalogue`: {run name: an
object with `make(scale) -> training config` and `needs`, the (config
field, run) pairs whose workdir the field takes}; the binaries pass
`experiments.configs.studies.catalogue.RUNS`). Under a study root
(`--workdir`):

  runs/<run>/          one training workdir per run of the catalogue, shared
                       by every study naming it; DONE.json when finished
  evals/<key>.json     one results document per (descriptor, input, denoiser)
  denoised/<key>.npy   denoised test patches, reused by every row of a denoiser
  <study>/results.md   the study's table (+ results.json, results.png, curves)

Everything resumes: a finished run (DONE.json matching its config and
data) is skipped, an unfinished one restarts from its last checkpoint, and
a row whose results document matches its settings is not scored again.
"""

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from nhp_jax import atomic
from nhp_jax import errors
from nhp_jax import inference
from nhp_jax import platform
from nhp_jax.data import generator
from nhp_jax.data import layout
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.evaluation import describe
from nhp_jax.evaluation import plots as eval_plots
from nhp_jax.evaluation import report
from nhp_jax.evaluation import score
from nhp_jax.evaluation import types
from nhp_jax.train import checkpointing
from nhp_jax.train import loop
from nhp_jax.train import plots as train_plots
from nhp_jax.train import renamed_fields

Catalogue = Mapping[str, Any]   # run name -> run (make(scale), needs)

RUNS_DIR, EVALS_DIR, DENOISED_DIR = "runs", "evals", "denoised"
DONE_FILE = "DONE.json"
SYNTHETIC_NOTE = ("Synthetic data (a dataset made by `nhp_jax.data.generator`), not "
                  "N-HPatches: compare directions with the seed, not values.")


def _digest(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _data_name(data_dir: str | None, config: ml_collections.ConfigDict) -> str:
  if "data" not in config:   # the AWGN pretraining: photos bundled with scikit-image
    return "awgn:scikit-image"
  if data_dir is not None:
    return os.path.abspath(data_dir)
  return f"embedded:{config.data.embedded_size}-seed{config.data.embedded_seed}"


def _synthetic(data: str) -> bool:
  """Whether a run's data (`_data_name`) is generated: embedded, or its manifest says so."""
  if data.startswith("embedded:"):
    return True
  try:
    with open(os.path.join(data, generator.MANIFEST)) as f:
      return bool(json.load(f).get("synthetic"))
  except (OSError, ValueError):
    return False


def run_dir(root: str, name: str) -> str:
  return os.path.join(root, RUNS_DIR, name)


def _comparable_config(catalogue: Catalogue, name: str, scale: str) -> dict:
  """The run's flattened config without the workdirs of the runs it needs (a root may move)."""
  run = catalogue[name]
  flat = checkpointing.flat_config(run.make(scale))
  flat.update({field: f"<run {dep}>" for field, dep in run.needs})
  return flat


def config_conflicts(saved: dict, current: dict) -> list[str]:
  """Fields whose values differ between a finished run's config and the current one.

  As when resuming a checkpoint (`checkpointing.config_differences`), a
  field added to the configs since, at the value that keeps the earlier
  behaviour, is not a conflict; unlike resuming, the epoch count counts. A
  record written before a field was renamed is read in today's names
  (`renamed_fields`).
  """
  return checkpointing.config_differences(renamed_fields.upgrade_flat(saved), current,
                                          ignore=())


def _catalogue_run(catalogue: Catalogue, name: str):
  """catalogue[name]; ConfigError (listing the known runs) for an unknown name."""
  if name not in catalogue:
    raise errors.ConfigError(f"unknown run {name!r}; known: {', '.join(catalogue)}")
  return catalogue[name]


def run_config(catalogue: Catalogue, name: str, scale: str,
               root: str) -> ml_collections.ConfigDict:
  """The full training config of catalogue run `name`, with the workdirs of the runs it needs.

  Raises:
    ConfigError: an unknown run name (listing the known ones).
  """
  run = _catalogue_run(catalogue, name)
  config = run.make(scale)
  for field, dep in run.needs:
    section, key = field.split(".")
    config[section][key] = run_dir(root, dep)
  return config


def _with_needs(catalogue: Catalogue, name: str) -> list[str]:
  """`name` after the runs it needs, recursively (the order they train in)."""
  return [dep for _, need in catalogue[name].needs
          for dep in _with_needs(catalogue, need)] + [name]


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """A finished run: its config fingerprint, data, training wall time and epochs."""
  name: str
  fingerprint: str
  data: str
  seconds: float
  steps: int


def train_run(catalogue: Catalogue, name: str, scale: str, root: str,
              data_dir: str | None) -> RunRecord:
  """Trains run `name` (after the runs it needs) unless a matching finished run is there.

  Raises:
    ConfigError: the run folder holds a finished run of another config or dataset.
    CheckpointError, NumericsError, DataError: from training.
  """
  config = run_config(catalogue, name, scale, root)
  for _, dep in catalogue[name].needs:
    train_run(catalogue, dep, scale, root, data_dir)
  workdir = run_dir(root, name)
  comparable, data = _comparable_config(catalogue, name, scale), _data_name(data_dir, config)
  done_path = os.path.join(workdir, DONE_FILE)
  done = atomic.read_record(done_path)
  if done is not None:
    conflicts = config_conflicts(done.get("config", {}), comparable)
    if conflicts or done.get("data") != data:
      raise errors.ConfigError(
          f"{done_path}: run {name!r} finished with another config or dataset "
          f"({'; '.join(conflicts) or 'same config'}; data {done.get('data')} -> {data}); "
          f"use another --workdir or delete {workdir}")
    logging.info("run %s: finished earlier (%s), skipped", name, workdir)
    return RunRecord(name, done["fingerprint"], data, float(done["seconds"]), int(done["steps"]))
  fingerprint = _digest(comparable)
  logging.info("run %s -> %s", name, workdir)
  began = time.perf_counter()
  state = loop.train_and_evaluate(config, workdir, data_dir)
  seconds = time.perf_counter() - began
  steps = int(state.step)
  if platform.is_writer():
    atomic.write_json(done_path, {"run": name, "fingerprint": fingerprint, "data": data,
                                  "seconds": round(seconds, 1), "steps": steps,
                                  "config": comparable})
  return RunRecord(name, fingerprint, data, seconds, steps)


def _denoised(patches: patchset_lib.PatchSet, denoiser: describe.RestoredModel,
              path: str) -> np.ndarray:
  """The denoised (clipped, truncated to uint8) noisy patches, cached at `path`."""
  if os.path.isfile(path):
    cached = np.load(path, mmap_mode="r")
    if cached.shape == patches.noisy.shape and cached.dtype == np.uint8:
      return np.asarray(cached)
    logging.warning("%s: shape %s, expected %s; denoising again", path, cached.shape,
                    patches.noisy.shape)
  began = time.perf_counter()
  fn = inference.make_denoise_fn(*denoiser.pair, as_uint8=True)
  out = fn(patches.noisy.reshape((-1, layout.PATCH_SIZE, layout.PATCH_SIZE, 1)))
  out = out.reshape(patches.noisy.shape)
  logging.info("denoised %d patches with %s in %.1f s", out.shape[0] * out.shape[1],
               denoiser.workdir, time.perf_counter() - began)
  with atomic.atomic_path(path, suffix=".npy") as tmp:
    np.save(tmp, out)
  return out


def evaluate_row(row: dict, study: ml_collections.ConfigDict, root: str,
                 data_dir: str | None, runs: dict[str, RunRecord]) -> dict:
  """The results document of one row, from evals/ when its settings match, else scored.

  Raises:
    ConfigError: a denoised row without a denoiser, or an unknown input.
  """
  kind = row["input"]
  if kind not in inference.INPUTS:
    raise errors.ConfigError(f"study {study.name}, row {row['label']!r}: input must be one of "
                             f"{', '.join(inference.INPUTS)}, found {kind!r}")
  if kind == "denoised" and not row["denoiser"]:
    raise errors.ConfigError(f"study {study.name}, row {row['label']!r}: input 'denoised' "
                             f"needs a denoiser run")
  den_name = row["denoiser"] if kind == "denoised" else ""
  ev = study.evaluation
  subset = {"split": study.split, "labels_per_sequence": ev.labels_per_sequence,
            "data": runs[row["descriptor"]].data}
  settings = dict(subset, n_pairs=ev.n_pairs, input=kind,
                  descriptor=[row["descriptor"], runs[row["descriptor"]].fingerprint],
                  denoiser=[den_name, runs[den_name].fingerprint] if den_name else None)
  key = f"{row['descriptor']}-{kind}" + (f"-{den_name}" if den_name else "")
  path = os.path.join(root, EVALS_DIR, key + ".json")
  if os.path.isfile(path):
    with open(path) as f:
      doc = json.load(f)
    if doc.get("details", {}).get("meta", {}).get("study_settings") == settings:
      logging.info("row %r: scored earlier (%s)", row["label"], path)
      return doc
  began = time.perf_counter()
  descriptor, denoiser, test, used_data_dir = describe.restore_with_test_split(
      None, split=study.split, data_dir=data_dir,
      descriptor_workdir=run_dir(root, row["descriptor"]),
      denoiser_workdir=run_dir(root, den_name) if den_name else None)
  patches = patchset_lib.first_labels(test, ev.labels_per_sequence)
  if kind == "denoised":
    name = f"{den_name}-{_digest([subset, runs[den_name].fingerprint])}.npy"
    pixels = _denoised(patches, denoiser, os.path.join(root, DENOISED_DIR, name))
  else:
    pixels = patches.clean if kind == "clean" else patches.noisy
  descs = types.DescriptorSet(patches.sequences, patches.offsets,
                              inference.describe_pixels(patches, pixels, descriptor.pair,
                                                        what=f"{kind} patches"))
  ref = None
  if patches is not test:   # a subset of each sequence: its own ref pixels, not the files'
    ref = lambda: [np.asarray(patches.clean[patches.sequence_slice(s), 0])  # noqa: E731
                   for s in patches.sequences]
  doc = score.evaluate_descriptor_set(
      descs, study.split, data_dir=used_data_dir, n_pairs=ev.n_pairs, ref_patches=ref,
      meta={"mode": "study", "row": row["label"], "study_settings": settings,
            "descriptor_step": descriptor.step,
            "denoiser_step": denoiser.step if denoiser else None,
            "seconds_with_inference": round(time.perf_counter() - began, 1)})
  report.write_results(path, doc)
  return doc


def _fmt(x) -> str:
  return "-" if x is None else f"{x:.3f}"


def results_table(rows: list[dict]) -> str:
  """Markdown: one line per row, the three mAPs, their mean and the seed's figures."""
  lines = ["| pipeline | verification | matching | retrieval | mean | seed (N-HPatches) |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    seed = " / ".join(f"{v:.3f}" for v in r["seed"]) if r["seed"] else "-"
    lines.append(f"| {r['label']} | {_fmt(r['verification'])} | {_fmt(r['matching'])} | "
                 f"{_fmt(r['retrieval'])} | {_fmt(r['mean'])} | {seed} |")
  return "\n".join(lines) + "\n"


def runs_table(records: list[RunRecord]) -> str:
  lines = ["| run | steps | training wall time |", "|---|---|---|"]
  lines += [f"| {r.name} | {r.steps} | {r.seconds / 60:.1f} min |" for r in records]
  return "\n".join(lines) + "\n"


def run_names(catalogue: Catalogue, study: ml_collections.ConfigDict) -> list[str]:
  """The catalogue runs a study trains, each after the runs it needs, each once.

  Raises:
    ConfigError: the study names no runs, or an unknown one (checked before
      hours of training).
  """
  names = [r[k] for r in study.rows for k in ("descriptor", "denoiser") if r[k]]
  names += [n for curve in study.curves for n in curve["runs"]]
  if not names:
    raise errors.ConfigError(f"study {study.name}: names no runs (no rows, no curves)")
  for name in names:
    _catalogue_run(catalogue, name)
  return list(dict.fromkeys(dep for name in names for dep in _with_needs(catalogue, name)))


def batch_sizes(catalogue: Catalogue, studies: Sequence[ml_collections.ConfigDict]) -> list[int]:
  """The training batch sizes of every run of `studies` (for `platform.setup`)."""
  return [catalogue[name].make(study.scale).training.batch_size
          for study in studies for name in run_names(catalogue, study)]


@dataclasses.dataclass(frozen=True)
class StudyResult:
  """A study's results document and its markdown (`<study>/results.{json,md}`)."""
  doc: dict
  markdown: str


def run_study(catalogue: Catalogue, study: ml_collections.ConfigDict, root: str,
              data_dir: str | None = None) -> StudyResult | None:
  """Trains, scores and reports one study; returns its results document and markdown.

  Writes `<root>/<study.name>/results.{md,json}`, `results.png` (when it has
  rows) and one `<curve name>.png` per curve. In a multi-process job every
  process trains; process 0 alone scores and writes (the others return None).

  Raises:
    ConfigError: scale `full` without `data_dir`, unknown runs or inputs.
  """
  if study.scale == "full" and data_dir is None:
    raise errors.ConfigError(f"study {study.name}: scale 'full' is the seed's N-HPatches setting; "
                             "pass --data_dir=<N-HPatches root> (medium/smoke use the embedded "
                             "dataset)")
  root = os.path.abspath(root)
  began = time.perf_counter()
  names = run_names(catalogue, study)
  for name in names:   # every run's config builds, before hours of training
    run_config(catalogue, name, study.scale, root)
  runs = {}
  for name in names:
    runs[name] = train_run(catalogue, name, study.scale, root, data_dir)
  if not platform.is_writer():
    return None
  rows = []
  for row in study.rows:
    doc = evaluate_row(row, study, root, data_dir, runs)
    maps = [doc.get(t) for t in types.BENCHMARKS]
    rows.append({"label": row["label"], **dict(zip(types.BENCHMARKS, maps)),
                 "mean": float(np.mean(maps)) if None not in maps else None,
                 "seed": list(row["seed"]), "descriptor": row["descriptor"],
                 "denoiser": row["denoiser"], "input": row["input"],
                 "patches": doc["details"]["meta"].get("patches"),
                 "eval_seconds": doc["details"]["meta"].get("seconds_with_inference", 0.0)})
  out_dir = os.path.join(root, study.name)
  os.makedirs(out_dir, exist_ok=True)
  plots = []
  if rows:
    eval_plots.plot_map_bars({r["label"]: [r[t] or 0.0 for t in types.BENCHMARKS] for r in rows},
                             os.path.join(out_dir, "results.png"), title=study.title)
    plots.append("results.png")
  for curve in study.curves:
    train_plots.plot_run_curves({n: loop.read_records(run_dir(root, n), runs[n].steps) for n in curve["runs"]},
                                os.path.join(out_dir, curve["name"] + ".png"),
                                metric=curve["metric"], label=curve["metric"],
                                title=curve["title"])
    plots.append(curve["name"] + ".png")
  seconds = time.perf_counter() - began
  ev = study.evaluation
  data = next(r.data for r in runs.values() if not r.data.startswith("awgn:"))
  header = f"# {study.title}\n\nScale `{study.scale}`, data `{data}`"
  if rows:
    header += (f", split {study.split} test sequences, "
               + (f"first {ev.labels_per_sequence} labels per sequence"
                  if ev.labels_per_sequence > 0 else "every label")
               + f", {ev.n_pairs:,} verification pairs per file")
  compute = {"train_seconds": round(sum(r.seconds for r in runs.values()), 1),
             "eval_seconds": round(sum(r["eval_seconds"] for r in rows), 1)}
  header += (f". Training of its runs {compute['train_seconds'] / 60:.1f} min (shared runs "
             f"count in every study using them), scoring with inference "
             f"{compute['eval_seconds'] / 60:.1f} min; this invocation {seconds / 60:.1f} min.\n")
  if _synthetic(data):
    header += f"\n{SYNTHETIC_NOTE}\n"
  md = header
  if rows:
    md += "\n" + results_table(rows)
  md += "\nTraining runs:\n\n" + runs_table(list(runs.values()))
  md += "".join(f"\n![{p}]({p})\n" for p in plots)
  doc = {"study": study.name, "title": study.title, "scale": study.scale, "data": data,
         "evaluation": ev.to_dict(), "rows": rows,
         "runs": {n: dataclasses.asdict(r) for n, r in runs.items()},
         "plots": plots, "wall_seconds": round(seconds, 1), **compute}
  atomic.write_json(os.path.join(out_dir, "results.json"), doc)
  atomic.write_text(os.path.join(out_dir, "results.md"), md)
  return StudyResult(doc, md)


def reproduce(catalogue: Catalogue, scale: str, studies: Sequence[ml_collections.ConfigDict],
              workdir: str, data_dir: str | None = None) -> list[StudyResult]:
  """Runs the studies in order under one root; writes `<workdir>/RESULTS.md`.

  Returns:
    Their results, or [] off process 0 of a multi-process job (it only trains).
  """
  results = []
  for i, study in enumerate(studies):
    logging.info("study %d/%d: %s", i + 1, len(studies), study.title)
    results.append(run_study(catalogue, study, workdir, data_dir))
  if None in results:
    return []
  docs = [r.doc for r in results]
  parts = [f"# Studies at scale `{scale}`\n",
           "| study | training of its runs | scoring | this invocation |", "|---|---|---|---|"]
  parts += [f"| [{d['title']}]({d['study']}/results.md) | {d['train_seconds'] / 60:.1f} min | "
            f"{d['eval_seconds'] / 60:.1f} min | {d['wall_seconds'] / 60:.1f} min |" for d in docs]
  for r in results:
    study = r.doc["study"]
    parts.append("\n" + r.markdown.replace("](", f"]({study}/").replace(
        f"]({study}/{study}/", f"]({study}/"))
  atomic.write_text(os.path.join(workdir, "RESULTS.md"), "\n".join(parts) + "\n")
  return results
