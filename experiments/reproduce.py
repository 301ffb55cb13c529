"""Reproduces every study of the seed's report in sequence at one scale.

  python -m experiments.reproduce --scale=smoke  --workdir=/tmp/studies_smoke   # seconds
  python -m experiments.reproduce --scale=medium --workdir=workdirs/studies     # ~1 h, 2-core CPU
  python -m experiments.reproduce --scale=full --data_dir=N-HPatches --workdir=workdirs/full

Studies (experiments/configs/studies/): baseline (Fig. 4), denoisers
(Fig. 6), descriptor_input (Fig. 8), triplets (Fig. 10), final (Fig. 11),
curves (Figs. 2, 3, 9, 14, 15), and beyond (#9: the seed's proposal vs HardNet,
SOS, Adam, augmentation and joint fine-tuning). Runs they share are trained once; finished
runs and scored rows are skipped, unfinished runs resume from their last
checkpoint, so rerunning after an interruption continues where it stopped.
Writes `<workdir>/RESULTS.md` with every study's table and wall time.
"""

import importlib

from absl import app, flags

from experiments import cli
from experiments.configs.studies import catalogue
from nhp_jax import errors
from nhp_jax import platform
from nhp_jax.workflows import studies

STUDIES = ("baseline", "denoisers", "descriptor_input", "triplets", "final", "curves", "beyond")

_SCALE = flags.DEFINE_enum("scale", "medium", ["smoke", "medium", "full"], "study scale")
_STUDIES = flags.DEFINE_list("studies", list(STUDIES), "which studies, in order")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/studies", "study root")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "N-HPatches root (scale full)")


def study_config(name: str, scale: str):
  """The config of study `name` at `scale`.

  Raises:
    ConfigError: an unknown study (listing the known ones).
  """
  if name not in STUDIES:
    raise errors.ConfigError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
  return importlib.import_module(f"experiments.configs.studies.{name}").get_config(scale)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  configs = [study_config(name, _SCALE.value) for name in _STUDIES.value]  # names checked first
  # Backend set-up for every run's batch, before anything starts JAX's backend.
  platform.setup(batch_sizes=studies.batch_sizes(catalogue.RUNS, configs))
  results = studies.reproduce(catalogue.RUNS, _SCALE.value, configs, _WORKDIR.value,
                              _DATA_DIR.value)
  for r in results:
    print(r.markdown, flush=True)


if __name__ == "__main__":
  cli.run(main)
