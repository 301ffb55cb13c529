"""Scores descriptors on the HPatches benchmarks (verification, matching, retrieval).

Score the checkpoints of a run (noisy, denoised and clean inputs; the
seed's Fig. 4 table):

  python -m experiments.evaluate --workdir=workdirs/main --json_out=results.json

Score an exported descriptor folder (`<root>/<seq>/<image>.csv`, the
official benchmark's layout, comma or semicolon separated):

  python -m experiments.evaluate --descriptors_dir=DESCS --data_dir=DATA
  python -m experiments.evaluate --descriptors_dir=DESCS --split=full
      --tasks_dir=hpatches-benchmark/tasks --json_out=results.json

or with the flags of the official `hpatches_eval.py`, which this binary
also takes (dashes or underscores):

  python -m experiments.evaluate --descr-name=sift --descr-dir=descrs
      --task=verification --task=matching --task=retrieval --dist=L2
      --delimiter=";" --split=a --results-dir=results --data_dir=DATA

`--descr-dir` is the folder holding `<descr-name>/<seq>/<image>.csv`;
`--task` is repeated (or `--tasks=a,b`); `--dist` / `--metric` is L2 or L1
in any case; `--delimiter` is ',' or ';' (each file is read with whichever
it uses); `--pcapl` takes only its default `no`.

`--results-dir` caches each task's result per (descriptor, task, split) as
`<results-dir>/<descr-name>_<task>_<split>.json` (the official file names,
JSON instead of pickles): a rerun reuses them unless a descriptor file
changed (sizes and modification times) or a setting did, or `--overwrite`.
`python -m experiments.compare --results-dir=R --descr=a,b` prints and plots
several cached descriptors side by side.

`--tasks_dir` may hold the official task CSVs (verif_*_split-X.csv,
retr_*_split-X.csv) and splits.json; what it lacks is generated like the
benchmark's generators and cached under `<data_dir>/.nhp_cache/tasks`. With
neither `--data_dir` nor `--tasks_dir`, the embedded dataset is the data.
All inputs are validated before scoring starts; bad input ends with one
line on stderr and exit status 2. Prints the tables of the official
results printer (`hpatches_results.py`, in its order and digits), then a
summary; `--json_out` gets {"verification", "matching", "retrieval",
"details"}, details with the verification PR/ROC curves (at most
`--curve_points` points each) and per-query retrieval APs.
"""

import os

from absl import flags

from experiments import cli
from nhp_jax import errors
from nhp_jax import platform
from nhp_jax.evaluation import baselines
from nhp_jax.evaluation import report
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import score
from nhp_jax.evaluation import task_files
from nhp_jax.evaluation import types


_DESCRIPTORS_DIR = flags.DEFINE_string(
    "descriptors_dir", None, "descriptor folder <seq>/<image>.csv to score")
_DESCR_NAME = flags.DEFINE_string(
    "descr_name", None, "descriptor name (official --descr-name): with --descr_dir the folder "
    "<descr_dir>/<descr_name>; names tables and results-cache files (default: the folder name)")
_DESCR_DIR = flags.DEFINE_string(
    "descr_dir", None, "official --descr-dir: the folder holding <descr_name>/<seq>/<image>.csv")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "run folder (denoiser/ + descriptor/) or descriptor workdir whose checkpoints "
    "to score with noisy, denoised and clean inputs")
_SPLIT = flags.DEFINE_string("split", "a", "split whose test sequences are scored")
_TASKS_DIR = flags.DEFINE_string(
    "tasks_dir", None, "folder with official task CSVs and/or splits.json")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "N-HPatches or HPatches root (splits.json, ref patches, task cache); "
    "absent (and no --tasks_dir): the embedded dataset")
_EMBEDDED_SIZE = flags.DEFINE_string(
    "embedded_size", "medium", "embedded dataset size used when --data_dir is absent")
_TASKS = flags.DEFINE_list("tasks", list(types.BENCHMARKS), "tasks to score (comma separated)")
_TASK = flags.DEFINE_multi_string(
    "task", None, "official form of --tasks: one task per flag, repeated")
_N_PAIRS = flags.DEFINE_integer(
    "n_pairs", task_files.OFFICIAL_N_PAIRS, "pairs per generated verification file")
_METRIC = flags.DEFINE_string("metric", "l2", "descriptor distance: l2 or l1, any case")
_DIST = flags.DEFINE_string("dist", None, "official name of --metric: L2 or L1, any case")
_DELIMITER = flags.DEFINE_string(
    "delimiter", None, "official flag: ',' or ';' (each file is read with the one it uses)")
_PCAPL = flags.DEFINE_string("pcapl", "no", "official flag; only 'no' (PCA/power-law "
                             "normalisation is not implemented)")
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir", None, "results cache: <results_dir>/<descr_name>_<task>_<split>.json, "
    "reused unless the descriptor files or settings changed")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "score again even what --results_dir holds")
_CURVE_POINTS = flags.DEFINE_integer(
    "curve_points", score.DEFAULT_CURVE_POINTS, "most points kept per verification PR/ROC "
    "curve in the details (0: none)")
_CLASSICAL = flags.DEFINE_string(
    "classical", None, "score classical descriptors instead (comma separated: raw, sift, "
    "rootsift; nhp_jax.models.classical) on the split's test patches")
_CLASSICAL_INPUTS = flags.DEFINE_list("classical_inputs", ["noisy", "clean"],
                                      "--classical: which patches are described")
_JSON_OUT = flags.DEFINE_string("json_out", None, "write the results JSON here")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1024, "--workdir: patches per compiled "
                                   "inference block (lower it when a block does not fit the "
                                   "device's memory)")

# The official hpatches_eval.py spells these with dashes.
for _dashed, _name in (("descr-name", "descr_name"), ("descr-dir", "descr_dir"),
                       ("results-dir", "results_dir")):
  flags.DEFINE_alias(_dashed, _name)


def _given(name: str) -> bool:
  return flags.FLAGS[name].present > 0


def _tasks() -> list[str]:
  if _TASK.value and _given("tasks"):
    raise errors.ConfigError("--task and --tasks: expected one of them (--task repeated, or "
                             f"--tasks as a list), found both: --task={','.join(_TASK.value)} "
                             f"--tasks={','.join(_TASKS.value)}")
  given = [t for value in _TASK.value for t in value.split(",")] if _TASK.value else _TASKS.value
  tasks = [t.strip().lower() for t in given]
  bad = [t for t in tasks if t not in types.BENCHMARKS]
  if bad or not tasks:
    flag = "--task" if _TASK.value else "--tasks"
    raise errors.ConfigError(f"{flag}: expected {', '.join(types.BENCHMARKS)}, found "
                             f"{', '.join(repr(t) for t in bad) or 'none'}")
  return tasks


def _metric() -> str:
  metric = score.normalize_metric(_METRIC.value, "--metric")
  if _DIST.value is not None:
    dist = score.normalize_metric(_DIST.value, "--dist")
    if _given("metric") and dist != metric:
      raise errors.ConfigError(f"--dist and --metric: expected the same distance, found "
                               f"--dist={_DIST.value} and --metric={_METRIC.value}")
    metric = dist
  return metric


def _descriptors_dir() -> str | None:
  if _DESCR_DIR.value is not None:
    if _DESCRIPTORS_DIR.value is not None:
      raise errors.ConfigError(f"--descr-dir and --descriptors_dir: expected one of them, "
                               f"found both ({_DESCR_DIR.value}, {_DESCRIPTORS_DIR.value})")
    if not _DESCR_NAME.value:
      raise errors.ConfigError(f"--descr-dir={_DESCR_DIR.value}: expected --descr-name too "
                               "(the descriptors are <descr-dir>/<descr-name>/), found none")
    return os.path.join(_DESCR_DIR.value, _DESCR_NAME.value)
  if _DESCR_NAME.value and _DESCRIPTORS_DIR.value is None and _WORKDIR.value is None:
    raise errors.ConfigError(f"--descr-name={_DESCR_NAME.value}: expected --descr-dir (the "
                             "folder holding it) or --descriptors_dir, found neither")
  return _DESCRIPTORS_DIR.value


def run_arguments() -> dict:
  """`runner.run`'s arguments from the parsed flags.

  Raises:
    ConfigError: a bad value or combination, naming the flag, what it
      expects and what it found.
  """
  if _DELIMITER.value is not None and _DELIMITER.value not in (",", ";"):
    raise errors.ConfigError(f"--delimiter: expected ',' or ';', found {_DELIMITER.value!r}")
  if _PCAPL.value != "no":
    raise errors.ConfigError(f"--pcapl: expected 'no' (PCA/power-law normalisation is not "
                             f"implemented), found {_PCAPL.value!r}")
  score.check_curve_points(_CURVE_POINTS.value, "--curve_points")
  if _N_PAIRS.value < 1:
    raise errors.ConfigError(f"--n_pairs: expected at least 1 pair per verification file, "
                             f"found {_N_PAIRS.value}")
  descriptors_dir = _descriptors_dir()
  if descriptors_dir is not None and _WORKDIR.value is not None:
    raise errors.ConfigError(f"--workdir and the descriptor folder: expected one of them, "
                             f"found both ({_WORKDIR.value}, {descriptors_dir})")
  return dict(descriptors_dir=descriptors_dir, workdir=_WORKDIR.value, split=_SPLIT.value,
              tasks_dir=_TASKS_DIR.value, data_dir=_DATA_DIR.value, tasks=_tasks(),
              n_pairs=_N_PAIRS.value, metric=_metric(), json_out=_JSON_OUT.value,
              embedded_size=_EMBEDDED_SIZE.value, batch_size=_BATCH_SIZE.value,
              descriptor_name=_DESCR_NAME.value, results_dir=_RESULTS_DIR.value,
              overwrite=_OVERWRITE.value, curve_points=_CURVE_POINTS.value)


def classical_arguments(kwargs: dict) -> dict:
  """`baselines.score_split`'s arguments for --classical, from `run_arguments()`.

  Raises:
    ConfigError: no classical descriptor named, or a descriptor source given too.
  """
  names = baselines.parse_names(_CLASSICAL.value)
  if not names:
    raise errors.ConfigError("--classical: expected at least one of raw, sift, rootsift, "
                             "found none")
  if kwargs["workdir"] is not None or kwargs["descriptors_dir"] is not None:
    raise errors.ConfigError("--classical: expected no --workdir or descriptor folder (it "
                             "scores classical descriptors), found one")
  return dict(data_dir=kwargs["data_dir"], embedded_size=kwargs["embedded_size"],
              split=kwargs["split"], names=names, inputs=_CLASSICAL_INPUTS.value,
              tasks_dir=kwargs["tasks_dir"], tasks=kwargs["tasks"], n_pairs=kwargs["n_pairs"],
              metric=kwargs["metric"], json_out=kwargs["json_out"])


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: expected only --flags, found {' '.join(argv[1:])}")
  try:
    kwargs = run_arguments()
    # On a CPU one XLA host device per core: inference splits every block over them.
    if _CLASSICAL.value is not None:
      classical = classical_arguments(kwargs)
      platform.setup()
      docs = baselines.score_split(**classical)
      for name, doc in docs.items():
        print(f"== {name} ==\n" + report.format_tables(doc), end="", flush=True)
      print(report.comparison_table(docs), end="", flush=True)
      return
    platform.setup()
    doc = runner.run(**kwargs)
  except errors.NhpError as e:
    cli.fail(f"{type(e).__name__}: {e}")
  if kwargs["descriptors_dir"] is not None:
    print(report.format_tables(doc), end="", flush=True)
  else:   # checkpoint mode: each input kind's tables, then their comparison
    print(report.input_tables(doc), end="", flush=True)


if __name__ == "__main__":
  cli.run(main)
