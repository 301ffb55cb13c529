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
import os

from absl import app, flags, logging

from experiments import cli
from nhp_jax import platform

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
  from nhp_jax import errors
  if name not in STUDIES:
    raise errors.ConfigError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
  return importlib.import_module(f"experiments.configs.studies.{name}").get_config(scale)


def reproduce(scale: str, configs, workdir: str, data_dir: str | None = None) -> list[dict]:
  """Runs the study configs (`study_config`) in order; writes `<workdir>/RESULTS.md`;
  returns their documents."""
  from experiments import study_runner
  from nhp_jax import atomic
  docs = []
  for i, config in enumerate(configs):
    logging.info("study %d/%d: %s", i + 1, len(configs), config.title)
    docs.append(study_runner.run_study(config, workdir, data_dir))
  if None in docs:   # a process other than 0 of a multi-process job: it only trained
    return []
  parts = [f"# Studies at scale `{scale}`\n",
           "| study | training of its runs | scoring | this invocation |", "|---|---|---|---|"]
  parts += [f"| [{d['title']}]({d['study']}/results.md) | {d['train_seconds'] / 60:.1f} min | "
            f"{d['eval_seconds'] / 60:.1f} min | {d['wall_seconds'] / 60:.1f} min |" for d in docs]
  for d in docs:
    with open(os.path.join(workdir, d["study"], "results.md")) as f:
      body = f.read()
    parts.append("\n" + body.replace("](", f"]({d['study']}/").replace(
        f"]({d['study']}/{d['study']}/", f"]({d['study']}/"))
  atomic.write_text(os.path.join(workdir, "RESULTS.md"), "\n".join(parts) + "\n")
  return docs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from experiments import study_runner
  configs = [study_config(name, _SCALE.value) for name in _STUDIES.value]  # names checked first
  # Backend set-up for every run's batch, before anything starts JAX's backend.
  platform.setup(batch_sizes=study_runner.batch_sizes(configs))
  reproduce(_SCALE.value, configs, _WORKDIR.value, _DATA_DIR.value)


if __name__ == "__main__":
  cli.run(main)
