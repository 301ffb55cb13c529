"""Scores descriptors on the HPatches benchmarks (verification, matching, retrieval).

Score the checkpoints of a run (noisy, denoised and clean inputs; the
seed's Fig. 4 table):

  python -m experiments.evaluate --workdir=workdirs/main --json_out=results.json

Score an exported descriptor folder (`<root>/<seq>/<image>.csv`, the
official benchmark's layout, comma or semicolon separated):

  python -m experiments.evaluate --descriptors_dir=DESCS --data_dir=DATA
  python -m experiments.evaluate --descriptors_dir=DESCS --split=full
      --tasks_dir=hpatches-benchmark/tasks --json_out=results.json

`--tasks_dir` may hold the official task CSVs (verif_*_split-X.csv,
retr_*_split-X.csv) and splits.json; what it lacks is generated like the
benchmark's generators and cached under `<data_dir>/.nhp_cache/tasks`. With
neither `--data_dir` nor `--tasks_dir`, the embedded dataset is the data.
All inputs are validated before scoring starts. Prints the tables of the
official results printer; `--json_out` gets {"verification", "matching",
"retrieval", "details"}.
"""

from absl import app
from absl import flags

from nhp_jax import platform
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import task_files

_DESCRIPTORS_DIR = flags.DEFINE_string(
    "descriptors_dir", None, "descriptor folder <seq>/<image>.csv to score")
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
_TASKS = flags.DEFINE_list("tasks", list(runner.TASKS), "tasks to score")
_N_PAIRS = flags.DEFINE_integer(
    "n_pairs", task_files.OFFICIAL_N_PAIRS, "pairs per generated verification file")
_METRIC = flags.DEFINE_string("metric", "l2", "descriptor distance")
_JSON_OUT = flags.DEFINE_string("json_out", None, "write the results JSON here")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1024, "--workdir: patches per compiled "
                                   "inference block (lower it when a block does not fit the "
                                   "device's memory)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # On a CPU one XLA host device per core: inference splits every block over them.
  platform.setup()
  runner.run(descriptors_dir=_DESCRIPTORS_DIR.value, workdir=_WORKDIR.value,
             split=_SPLIT.value, tasks_dir=_TASKS_DIR.value, data_dir=_DATA_DIR.value,
             tasks=_TASKS.value, n_pairs=_N_PAIRS.value, metric=_METRIC.value,
             json_out=_JSON_OUT.value, embedded_size=_EMBEDDED_SIZE.value,
             batch_size=_BATCH_SIZE.value)


if __name__ == "__main__":
  app.run(main)
