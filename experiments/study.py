"""Runs one of the seed's studies end to end: train what it needs, score, write table and plots.

  python -m experiments.study --config=experiments/configs/studies/baseline.py:medium \
      --workdir=workdirs/studies
  python -m experiments.study --config=experiments/configs/studies/final.py:full \
      --workdir=workdirs/studies_full --data_dir=N-HPatches

The config argument is the scale: smoke (seconds), medium (the embedded
medium dataset, minutes to an hour on a laptop CPU) or full (N-HPatches and
the seed's settings). Runs shared between studies are trained once under
`<workdir>/runs/`; rerun the command to resume. Results go to
`<workdir>/<study>/results.{md,json}` with PNG plots beside them.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from experiments.configs.studies import catalogue
from nhp_jax import platform
from nhp_jax.workflows import seeds
from nhp_jax.workflows import studies

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "a study config: experiments/configs/studies/<study>.py:<scale>",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/studies", "study root: runs/, evals/, "
                               "<study>/results.md")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "seeds study: train nothing; write the "
                                  "table, plot and default from the runs finished so far")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "N-HPatches root (scale full); absent: the "
                                "embedded dataset of the scale")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config=experiments/configs/studies/<study>.py:<scale> is required")
  if _CONFIG.value.get("kind") == "seeds":   # main-job pipelines over seeds and datasets
    if _DATA_DIR.value is not None:
      raise app.UsageError("--data_dir: the seeds study names its own datasets")
    platform.setup(batch_sizes=seeds.batch_sizes(_CONFIG.value))
    result = seeds.run(_CONFIG.value, _WORKDIR.value, report_only=_REPORT_ONLY.value)
    if result is not None:
      print(result.markdown, flush=True)
    return
  if _REPORT_ONLY.value:
    raise app.UsageError("--report_only: only the seeds study (kind 'seeds') reports runs "
                         "finished so far; rerun this study's command to resume it")
  # Backend set-up for the runs' batches, before anything starts JAX's backend.
  platform.setup(batch_sizes=studies.batch_sizes(catalogue.RUNS, [_CONFIG.value]))
  result = studies.run_study(catalogue.RUNS, _CONFIG.value, _WORKDIR.value, _DATA_DIR.value)
  if result is not None:
    print(result.markdown, flush=True)


if __name__ == "__main__":
  cli.run(main)
