"""The main job: train a pipeline's stages, score its test split, export its model.

A pipeline config (`experiments/configs/pipelines.py`) holds one experiment
config per stage, in `stages.STAGES` order; the stages present train one after the
other under `<workdir>/<stage>/`, each resuming from its own checkpoints.
Then the separately trained descriptor is scored with noisy, denoised and
clean test patches (the seed's Fig. 4 columns) and, for pipelines with a
`joint` stage, the fine-tuned pair from noisy patches (column `joint`, the
headline). Writes into the workdir:

  results.json   the headline numbers, every column under details["inputs"]
  results.md     the table (+ classical descriptors on the same patches)
  results.png    a bar chart of the table
  model          the headline model as one portable file (`nhp_jax.load`)
"""

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

from absl import logging
import ml_collections

from nhp_jax import api
from nhp_jax import atomic
from nhp_jax import platform
from nhp_jax.evaluation import baselines
from nhp_jax.evaluation import describe
from nhp_jax.evaluation import plots
from nhp_jax.evaluation import report
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import types
from nhp_jax.train import loop
from nhp_jax.workflows import stages

MODEL_FILE = "model"      # <workdir>/model: the headline model, `nhp_jax.load`-able
RESULTS_JSON, RESULTS_MD, RESULTS_PNG = "results.json", "results.md", "results.png"


@dataclasses.dataclass(frozen=True)
class MainJobResult:
  """What the main job scored and wrote.

  Attributes:
    doc: the results document written to results.json (headline numbers at
      the top, every column under details["inputs"]).
    columns: {column (noisy, denoised, clean, joint): its results document}.
    classical: {classical descriptor and input: {benchmark: mAP}}.
    table: results.md's tables (markdown), as printed by the binary.
    model: the exported model file.
  """
  doc: dict
  columns: dict
  classical: dict
  table: str
  model: str


def train(c: ml_collections.ConfigDict, workdir: str, data_dir: str | None = None,
          on_stage: Callable[[str, float], None] | None = None) -> dict[str, float]:
  """Trains every stage of `c` under `workdir` (finished stages resume as no-ops).

  Args:
    c: a pipeline config; its stages' workdir fields are filled in here.
    workdir: the run folder.
    data_dir: N-HPatches / HPatches root; None: each stage's embedded dataset.
    on_stage: called with (stage, wall seconds) after each stage.

  Returns:
    {stage: wall seconds of this call}.
  """
  dirs, names, seconds = stages.wire(c, workdir), stages.stages_of(c), {}
  for i, stage in enumerate(names):
    logging.info("[%d/%d] %s -> %s", i + 1, len(names) + 1, stage, dirs[stage])
    began = time.perf_counter()
    loop.train_and_evaluate(c[stage], dirs[stage], data_dir)
    seconds[stage] = time.perf_counter() - began
    if on_stage is not None:
      on_stage(stage, seconds[stage])
  return seconds


def headline(c: ml_collections.ConfigDict, workdir: str) -> tuple[str, str]:
  """(model folder, input kind) of the pipeline's headline numbers.

  The fine-tuned pair from noisy patches for pipelines with a `joint`
  stage; else the run folder's denoiser then descriptor (denoised input).
  """
  if "joint" in c:
    return stages.stage_dirs(workdir)["joint"], "noisy"
  return workdir, "denoised"


def score(c: ml_collections.ConfigDict, workdir: str, *, data_dir: str | None = None,
          tasks_dir: str | None = None, n_pairs: int,
          classical_names: Sequence[str] = ()) -> tuple[dict, dict, dict]:
  """Scores a trained pipeline's test split: every column, then the classical descriptors.

  Returns:
    (results document, {column: results document},
    {classical name and input: results document}).
  """
  dirs = stages.stage_dirs(workdir)
  kw = {"split": c.descriptor.data.split, "data_dir": data_dir, "tasks_dir": tasks_dir,
        "n_pairs": n_pairs}
  doc = runner.evaluate_workdir(workdir, **kw)
  columns = dict(doc["details"]["inputs"])
  if "joint" in c:   # the pipeline's own descriptor: noisy patches through the fine-tuned pair
    joint_doc = runner.evaluate_workdir(None, descriptor_workdir=dirs["joint"],
                                        inputs=("noisy",), **kw)
    columns["joint"] = joint_doc["details"]["inputs"]["noisy"]
    doc = {t: joint_doc.get(t) for t in types.BENCHMARKS}
    doc["details"] = dict(joint_doc["details"], headline_input="joint", inputs=columns)
  classical_docs = {}
  if classical_names:   # the same test patches through each classical descriptor
    test, used_data_dir = describe.load_test_split(c.descriptor.data, split=kw["split"],
                                                   data_dir=data_dir)
    classical_docs = baselines.score_patches(test, kw["split"], classical_names,
                                             data_dir=used_data_dir, tasks_dir=tasks_dir,
                                             n_pairs=n_pairs)
    doc["details"] = dict(doc["details"], classical={
        k: {t: d.get(t) for t in types.BENCHMARKS} for k, d in classical_docs.items()})
  return doc, columns, classical_docs


def run(c: ml_collections.ConfigDict, workdir: str, *, data_dir: str | None = None,
        tasks_dir: str | None = None, n_pairs: int,
        classical_names: Sequence[str] = ()) -> MainJobResult | None:
  """The main job: trains, scores, writes results.{json,md,png} and the model file.

  In a multi-process job every process trains; process 0 alone scores and
  writes (the others return None).

  Raises:
    ConfigError, CheckpointError, DataError, TaskFileError, NumericsError.
  """
  workdir = os.path.abspath(workdir)
  train(c, workdir, data_dir)
  if not platform.is_writer():
    return None
  n = len(stages.stages_of(c)) + 1
  logging.info("[%d/%d] evaluation", n, n)
  doc, columns, classical_docs = score(c, workdir, data_dir=data_dir, tasks_dir=tasks_dir,
                                       n_pairs=n_pairs, classical_names=classical_names)
  report.write_results(os.path.join(workdir, RESULTS_JSON), doc)
  table = report.comparison_table(columns)
  if classical_docs:
    table += ("\nClassical descriptors on the same test patches:\n\n"
              + report.comparison_table(classical_docs))
  split = c.descriptor.data.split
  data = data_dir or f"embedded {c.descriptor.data.embedded_size}"
  plots.plot_map_bars({kind: [float(sub[t]) for t in types.BENCHMARKS]
                       for kind, sub in columns.items()},
                      os.path.join(workdir, RESULTS_PNG),
                      title=f"Pipeline {c.name}, split {split}, data "
                      f"{os.path.basename(os.path.normpath(data))}")
  atomic.write_text(os.path.join(workdir, RESULTS_MD),
                    f"Pipeline {c.name}, split {split}, data {data}; columns noisy / "
                    f"denoised / clean: the separately trained descriptor"
                    + ("; joint: the fine-tuned pair from noisy patches" if "joint" in c else "")
                    + f"\n\n![mAP per task]({RESULTS_PNG})\n\n" + table)
  # The headline model as one file: the fine-tuned pair, or the separately trained one.
  model = api.load(headline(c, workdir)[0])
  path = os.path.join(workdir, MODEL_FILE)
  manifest = model.export(path)
  logging.info("wrote %s (kind %s, sha256 %s)", path, model.kind, manifest["variables_sha256"])
  return MainJobResult(doc, columns, classical_docs, table, path)
