"""The seeds study: main-job pipelines x seeds x datasets, their spread, and the default it picks.

A seeds study config (`experiments/configs/studies/seeds.py`) names
pipeline configs (`pipelines`, as the main job builds them), `seeds` and
`datasets`. Every (dataset, pipeline, seed) trains as the main job would,
under `<root>/runs/<dataset>/<pipeline>-seed<seed>/<stage>/`, and its
headline (the fine-tuned pair from noisy patches, or the denoised input for
pipelines without a joint stage) is scored on every test label. Under the
study root:

  data/<dataset>/                  generated datasets (the embedded one is shared)
  runs/<dataset>/<run>/run.json    per-stage training seconds, headline mAPs,
                                   inference patches/s (resumes: a run whose
                                   run.json matches its settings is not redone)
  seeds/results.{md,json,png}      per pipeline: mean, spread of each mAP,
                                   training time, patches/s; the recommendation

Differences no larger than the seed spread are ties (`recommend`).
"""

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence

from absl import logging
import jax
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import ml_collections
import numpy as np

from nhp_jax import atomic
from nhp_jax import errors
from nhp_jax import platform
from nhp_jax import progress
from nhp_jax.data import generator
from nhp_jax.data import noise
from nhp_jax.evaluation import describe
from nhp_jax.evaluation import score
from nhp_jax.evaluation import types
from nhp_jax.train import loop
from nhp_jax.train import renamed_fields
from nhp_jax.workflows import main_job
from nhp_jax.workflows import stages

RUN_FILE = "run.json"
DATA_DIR, RUNS_DIR = "data", "runs"
SYNTHETIC_NOTE = ("Synthetic data (datasets made by `nhp_jax.data.generator`), not "
                  "N-HPatches.")


def _digest(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _legacy_digest(c: ml_collections.ConfigDict) -> str:
  """The config digest a run record written before the #21 field renames holds for `c`."""
  return _digest({k: renamed_fields.downgrade(v) if isinstance(v, dict) and "recipe" in v else v
                  for k, v in c.to_dict().items()})


def run_name(pipeline: str, seed: int) -> str:
  return f"{pipeline}-seed{seed}"


def dataset_dir(root: str, name: str, spec: Mapping) -> str | None:
  """The data folder of a dataset spec, generated under `<root>/data/` when absent.

  Args:
    spec: {"embedded": size} for the embedded dataset of that size (None:
      the stages' own embedded data), or {"size", "seed", "noise_sigma_min",
      "noise_sigma_max"} for one generated with those settings.
  """
  if "embedded" in spec:
    return None
  path = os.path.join(root, DATA_DIR, name)
  config = generator.size_config(
      spec["size"], int(spec["seed"]),
      noise=noise.NoiseConfig(float(spec["noise_sigma_min"]), float(spec["noise_sigma_max"]),
                              noise.DEFAULT.signal_gain, noise.DEFAULT.blur_sigma))
  if generator.is_complete(path, config):
    return path
  if os.path.exists(path):
    raise errors.DataError(f"{path}: holds another or an unfinished dataset than {name!r} "
                           f"names ({dict(spec)}); delete it")
  if platform.is_writer():
    logging.info("generating dataset %s -> %s", name, path)
    generator.write_dataset(path, config, log=logging.info)
  return path


def dataset_spec(study: ml_collections.ConfigDict, name: str) -> dict:
  """The entry of `study.datasets` (a list of {"name", ...spec}) named `name`, less its name."""
  for spec in study.datasets:
    if spec["name"] == name:
      return {k: v for k, v in dict(spec).items() if k != "name"}
  raise errors.ConfigError(f"study {study.name}: no dataset {name!r}; its datasets: "
                           + ", ".join(s["name"] for s in study.datasets))


def run_config(study: ml_collections.ConfigDict, pipeline: str, seed: int,
               spec: Mapping) -> ml_collections.ConfigDict:
  """The pipeline's config with every stage's seed, and the embedded size of the dataset."""
  if pipeline not in study.pipelines:
    raise errors.ConfigError(f"study {study.name}: unknown pipeline {pipeline!r}; its "
                             f"pipelines: {', '.join(study.pipelines)}")
  c = copy.deepcopy(study.pipelines[pipeline])
  for stage in stages.stages_of(c):
    c[stage].seed = seed
    if "embedded" in spec and "data" in c[stage]:
      c[stage].data.embedded_size = spec["embedded"]
  return c


def score_headline(c: ml_collections.ConfigDict, workdir: str, data_dir: str | None,
                   n_pairs: int) -> tuple[dict, dict]:
  """The headline results document of a trained run, and its inference figures.

  Returns:
    (results document, {"patches": test patches described, "seconds":
    wall seconds of inference (denoiser and descriptor, compilation
    included), "patches_per_s"}).
  """
  model_dir, kind = main_job.headline(c, workdir)
  split = c.descriptor.data.split
  # A run folder gives its denoiser and descriptor; the joint workdir (noisy
  # input) is one model, with no denoiser/ beside it.
  descriptor, denoiser, test, used = describe.restore_with_test_split(
      model_dir, split=split, data_dir=data_dir)
  began = time.perf_counter()
  sets = describe.describe_inputs(test, descriptor, denoiser, inputs=(kind,))
  jax.block_until_ready(sets[kind].descs)
  seconds = time.perf_counter() - began
  patches = int(np.prod(test.noisy.shape[:2]))
  doc = score.evaluate_descriptor_set(
      sets[kind], split, data_dir=used, n_pairs=n_pairs,
      meta={"mode": "seeds study", "input": kind, "descriptor_workdir": descriptor.workdir,
            "descriptor_step": descriptor.step})
  return doc, {"patches": patches, "seconds": round(seconds, 2),
               "patches_per_s": round(patches / max(seconds, 1e-9), 1)}


def train_and_score(study: ml_collections.ConfigDict, root: str, dataset: str, pipeline: str,
                    seed: int, *, train: bool = True) -> dict | None:
  """One run: trains (resuming) and scores it; returns its run.json record (None off process 0).

  A run whose run.json was written for the same settings is returned as is;
  with `train=False` nothing is trained or scored (None for an unfinished run).
  Stage seconds add up over invocations (a run killed mid-stage loses that
  stage's last partial invocation only if the process is killed outright).
  """
  spec = dataset_spec(study, dataset)
  c = run_config(study, pipeline, seed, spec)
  data_dir = dataset_dir(root, dataset, spec)
  workdir = os.path.join(root, RUNS_DIR, dataset, run_name(pipeline, seed))
  settings = {"pipeline": pipeline, "seed": seed, "dataset": dict(spec),
              "n_pairs": study.n_pairs, "config": _digest(c.to_dict())}
  path = os.path.join(workdir, RUN_FILE)
  record = atomic.read_record(path) or {}
  if record.get("settings") == dict(settings, config=_legacy_digest(c)):
    record["settings"] = settings   # written before fields were renamed: the same run
  if record.get("settings") == settings and "headline" in record:
    logging.info("run %s/%s: finished earlier (%s)", dataset, run_name(pipeline, seed), path)
    return record
  if record.get("settings") not in (None, settings):
    raise errors.ConfigError(f"{path}: written for other settings ({record.get('settings')}); "
                             f"use another --workdir or delete {workdir}")
  if not train:
    return None
  stage_seconds = dict(record.get("stage_seconds", {}))
  done = set(record.get("stages_done", []))
  os.makedirs(workdir, exist_ok=True)

  def write_record(**extra):
    if platform.is_writer():
      atomic.write_json(path, {"settings": settings, "stage_seconds": stage_seconds,
                               "stages_done": sorted(done), **extra})

  stages.wire(c, workdir)
  dirs = stages.stage_dirs(workdir)
  for stage in stages.stages_of(c):
    if stage in done:
      continue
    logging.info("run %s/%s: %s -> %s", dataset, run_name(pipeline, seed), stage, dirs[stage])
    began = time.perf_counter()
    try:
      loop.train_and_evaluate(c[stage], dirs[stage], data_dir)
      done.add(stage)
    finally:
      stage_seconds[stage] = round(stage_seconds.get(stage, 0.0) + time.perf_counter() - began, 1)
      write_record()
  if not platform.is_writer():
    return None
  doc, inference = score_headline(c, workdir, data_dir, study.n_pairs)
  record = {"settings": settings, "stage_seconds": stage_seconds, "stages_done": sorted(done),
            "headline": {t: doc.get(t) for t in types.BENCHMARKS}, "inference": inference,
            "patches": doc["details"]["meta"].get("patches")}
  atomic.write_json(path, record)
  return record


def _stats(values: Sequence[float]) -> dict:
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
          "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def summarize(records: Mapping[str, Mapping[str, Sequence[dict]]]) -> dict:
  """Per dataset and pipeline: mean/std/min/max over seeds of each mAP, their mean, the costs.

  Args:
    records: {dataset: {pipeline: [run.json record per seed]}}.

  Returns:
    {dataset: {pipeline: {benchmark | "mean" | "train_seconds" |
    "patches_per_s": stats}}}; "mean" is each run's mean of the three mAPs.
  Pipelines with no runs on a dataset, and datasets with none, are left out.
  """
  out = {}
  for dataset, by_pipeline in records.items():
    out[dataset] = {}
    for pipeline, runs in by_pipeline.items():
      if not runs:
        continue
      s = {t: _stats([r["headline"][t] for r in runs]) for t in types.BENCHMARKS}
      s["mean"] = _stats([float(np.mean([r["headline"][t] for t in types.BENCHMARKS])) for r in runs])
      s["train_seconds"] = _stats([sum(r["stage_seconds"].values()) for r in runs])
      s["patches_per_s"] = _stats([r["inference"]["patches_per_s"] for r in runs])
      out[dataset][pipeline] = s
  return {d: by_pipeline for d, by_pipeline in out.items() if by_pipeline}


def spread(s: Mapping) -> float:
  """A pipeline's seed spread on one dataset: the range (max - min) of its mean mAP."""
  return s["mean"]["max"] - s["mean"]["min"]


def cost_seconds(s: Mapping, patches: int) -> float:
  """Training seconds plus the seconds to describe `patches` test patches."""
  return s["train_seconds"]["mean"] + patches / max(s["patches_per_s"]["mean"], 1e-9)


def recommend(summary: Mapping[str, Mapping[str, Mapping]],
              patches: Mapping[str, int]) -> dict:
  """The default by the evidence: the cheapest pipeline no dataset shows to be worse.

  On each dataset the pipeline with the highest mean mAP leads; another
  ties with it there when the gap between their mean mAPs is no larger
  than the larger of their two seed spreads (`spread`). Candidates lead or
  tie on every dataset; of those, the one with the lowest cost (training
  plus describing the test split, summed over datasets) is the default.
  Only pipelines with runs on every dataset compete (a partial study); the
  leaders reported are those of all pipelines.

  Raises:
    ConfigError: no pipeline has runs on every dataset.

  Returns:
    {"default", "candidates", "leaders": {dataset: pipeline}, "gaps":
    {dataset: {pipeline: [gap to the leader, spread allowed]}}, "cost_seconds"}.
  """
  pipelines = [p for p in next(iter(summary.values()))
               if all(p in by_pipeline for by_pipeline in summary.values())]
  leaders, gaps, candidates = {}, {}, set(pipelines)
  if not pipelines:
    raise errors.ConfigError("no pipeline has runs on every dataset yet: nothing to compare")
  for dataset, by_pipeline in summary.items():
    leaders[dataset] = max(by_pipeline, key=lambda p: by_pipeline[p]["mean"]["mean"])
    lead = max(pipelines, key=lambda p: by_pipeline[p]["mean"]["mean"])
    gaps[dataset] = {}
    for p in pipelines:
      s = by_pipeline[p]
      gap = by_pipeline[lead]["mean"]["mean"] - s["mean"]["mean"]
      allowed = max(spread(s), spread(by_pipeline[lead]))
      gaps[dataset][p] = [round(gap, 4), round(allowed, 4)]
      if gap > allowed:
        candidates.discard(p)
  cost = {p: sum(cost_seconds(summary[d][p], patches[d]) for d in summary) for p in pipelines}
  default = min(sorted(candidates), key=lambda p: cost[p])
  return {"default": default, "candidates": sorted(candidates, key=lambda p: cost[p]),
          "leaders": leaders, "gaps": gaps,
          "cost_seconds": {p: round(v, 1) for p, v in cost.items()}}


def _cell(s: Mapping) -> str:
  return f"{s['mean']:.3f} ± {s['std']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"


def table(summary: Mapping[str, Mapping[str, Mapping]]) -> str:
  """Markdown: one block per dataset, one line per pipeline (mean ± std over seeds)."""
  lines = []
  for dataset, by_pipeline in summary.items():
    n = max(s["mean"]["n"] for s in by_pipeline.values())
    lines += [f"\n**{dataset}** ({n} seeds; mean ± sample std; range = max - min of the "
              "mean mAP)\n",
              "| pipeline | verification | matching | retrieval | mean | range | "
              "training | inference |", "|---|---|---|---|---|---|---|---|"]
    for p, s in by_pipeline.items():
      lines.append(f"| {p} | " + " | ".join(_cell(s[t]) for t in (*types.BENCHMARKS, "mean"))
                   + f" | {spread(s):.3f} | {s['train_seconds']['mean'] / 60:.1f} min | "
                   f"{s['patches_per_s']['mean']:,.0f} patches/s |")
  return "\n".join(lines).lstrip("\n") + "\n"


def plot(summary: Mapping[str, Mapping[str, Mapping]], path: str, title: str):
  """One panel per dataset: bars of each pipeline's mean mAP per benchmark, std error bars."""
  names = (*types.BENCHMARKS, "mean")
  fig = Figure(figsize=(5.2 * len(summary) + 1.6, 3.8), dpi=100, layout="constrained")
  FigureCanvasAgg(fig)
  axes = np.atleast_1d(fig.subplots(1, len(summary), sharey=True))
  for ax, (dataset, by_pipeline) in zip(axes, summary.items()):
    width = 0.8 / max(len(by_pipeline), 1)
    x = np.arange(len(names))
    for i, (p, s) in enumerate(by_pipeline.items()):
      ax.bar(x + (i - (len(by_pipeline) - 1) / 2) * width, [s[t]["mean"] for t in names],
             width, yerr=[s[t]["std"] for t in names], capsize=2, label=p)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(dataset, fontsize="medium")
  axes[0].set_ylabel("mAP (mean over seeds, ±1 std)")
  axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0)
  fig.suptitle(title)
  with atomic.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png", bbox_inches="tight")


def batch_sizes(study: ml_collections.ConfigDict) -> list[int]:
  """The training batch sizes of every stage of every pipeline (for `platform.setup`)."""
  return [c[s].training.batch_size for c in study.pipelines.values()
          for s in stages.stages_of(c)]


@dataclasses.dataclass(frozen=True)
class SeedsResult:
  doc: dict
  markdown: str


def run(study: ml_collections.ConfigDict, root: str, *,
        report_only: bool = False) -> SeedsResult | None:
  """Trains and scores every (dataset, pipeline, seed); writes `<root>/<name>/results.*`.

  With `report_only`, trains and scores nothing: the table, plot and default
  come from the runs finished so far (a study stopped early; its results.md
  says how many). Returns None off process 0 of a multi-process job.

  Raises:
    ConfigError: with `report_only`, no run finished yet.
  """
  root = os.path.abspath(root)
  began = time.perf_counter()
  patches: dict[str, int] = {}
  total = len(study.datasets) * len(study.pipelines) * len(study.seeds)
  done = 0
  names = [spec["name"] for spec in study.datasets]
  records = {dataset: {pipeline: [] for pipeline in study.pipelines} for dataset in names}
  # Seed by seed, then dataset by dataset: a study stopped early still compares
  # every pipeline on every dataset.
  for seed in study.seeds:
    for dataset in names:
      for pipeline in study.pipelines:
        record = train_and_score(study, root, dataset, pipeline, int(seed),
                                 train=not report_only)
        done += 1
        elapsed = time.perf_counter() - began
        logging.info("seeds study: %d/%d runs (%s/%s) in %s", done, total, dataset,
                     run_name(pipeline, seed), _duration(elapsed))
        if record is not None:
          records[dataset][pipeline].append(record)
          patches[dataset] = record["inference"]["patches"]
  if not platform.is_writer():
    return None
  summary = summarize(records)
  finished = sum(len(runs) for by_pipeline in records.values() for runs in by_pipeline.values())
  if not summary:
    raise errors.ConfigError(f"{root}: no run of study {study.name} has finished yet")
  choice = recommend(summary, patches)
  out_dir = os.path.join(root, study.name)
  os.makedirs(out_dir, exist_ok=True)
  plot(summary, os.path.join(out_dir, "results.png"), study.title)
  md = (f"# {study.title}\n\nSeeds {', '.join(map(str, study.seeds))}; split "
        f"{next(iter(study.pipelines.values())).descriptor.data.split}, every test label, "
        f"{study.n_pairs:,} verification pairs per file; training time per run (all its "
        f"stages), inference on the test split (denoiser and descriptor)."
        + (f" **Partial: {finished} of {total} runs finished.**" if finished < total else "")
        + f"\n\n{SYNTHETIC_NOTE}\n\n"
        + table(summary)
        + f"\nDefault by this evidence: **{choice['default']}** (leads or ties on every dataset "
        f"and costs least; ties: gaps no larger than the seed range). Leaders: "
        + ", ".join(f"{d}: {p}" for d, p in choice["leaders"].items())
        + ".\n\n![results](results.png)\n")
  doc = {"study": study.name, "title": study.title, "seeds": list(study.seeds),
         "datasets": [dict(s) for s in study.datasets], "summary": summary,
         "recommendation": choice, "runs": records, "finished_runs": finished,
         "total_runs": total,
         "wall_seconds": round(time.perf_counter() - began, 1)}
  atomic.write_json(os.path.join(out_dir, "results.json"), doc)
  atomic.write_text(os.path.join(out_dir, "results.md"), md)
  return SeedsResult(doc, md)


def _duration(seconds: float) -> str:
  return progress.format_duration(seconds) if math.isfinite(seconds) else "?"
