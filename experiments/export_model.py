"""Exports a trained model as one portable file that `nhp_jax.load` reads with nothing else.

  python -m experiments.export_model --workdir=RUN --out=PATH [--step=best] [--overwrite]

RUN is a run folder (denoiser/ + descriptor/: the separately trained pair),
a joint fine-tuning workdir (the fine-tuned pair, e.g. `workdirs/main/joint`,
the headline of the fast and dncnn pipelines) or a descriptor workdir. PATH
gets the networks, their model configs, a format version and a SHA-256 of
the parameters (`nhp_jax/model_file.py`), written atomically; then

  model = nhp_jax.load(PATH); model.describe(patches)

gives the same descriptors as the checkpoints, bit for bit, with no
workdir, config or data. Prints one line (what was written); bad input
prints one `export_model: error: ...` line and exits with status 2.
"""

import os

from absl import flags

from experiments import cli
from nhp_jax import platform

_WORKDIR = flags.DEFINE_string("workdir", None, "run folder (denoiser/ + descriptor/), joint "
                               "workdir or descriptor workdir to export")
_OUT = flags.DEFINE_string("out", None, "the model file to write")
_STEP = flags.DEFINE_string("step", "best", "checkpoint: best, latest or a step number")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "replace an existing --out file")


def _check_flags() -> None:
  """Flag problems, found before JAX starts."""
  if not _WORKDIR.value:
    cli.fail("--workdir: expected a run folder, joint workdir or descriptor workdir, found no flag")
  if not _OUT.value:
    cli.fail("--out: expected the model file to write, found no flag")
  if not os.path.isdir(_WORKDIR.value):
    found = "a file" if os.path.isfile(_WORKDIR.value) else "nothing"
    cli.fail(f"--workdir={_WORKDIR.value}: expected a run folder, joint workdir or descriptor "
          f"workdir, found {found} there")
  if os.path.isdir(_OUT.value):
    cli.fail(f"--out={_OUT.value}: expected a file path, found a folder")
  if os.path.exists(_OUT.value) and not _OVERWRITE.value:
    cli.fail(f"--out={_OUT.value}: expected a new path, found an existing file (pass --overwrite "
          f"to replace it)")
  step = _STEP.value
  if step not in ("best", "latest") and not step.isdigit():
    cli.fail(f"--step: expected best, latest or a step number, found {step!r}")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"expected flags only, found arguments {argv[1:]}")
  _check_flags()
  platform.setup()
  # pylint: disable=g-import-not-at-top
  from nhp_jax import api, errors
  step = int(_STEP.value) if _STEP.value.isdigit() else _STEP.value
  try:
    model = api.load(_WORKDIR.value, step=step)
    manifest = model.export(_OUT.value)
  except errors.NhpError as e:
    cli.fail(f"{type(e).__name__}: {e}")
  roles = ", ".join(f"{role} (step {net.source.get('step')})"
                    for role, net in model.networks.items())
  print(f"wrote {_OUT.value}: kind {model.kind}, {roles}, sha256 "
        f"{manifest['variables_sha256'][:16]}...", flush=True)


if __name__ == "__main__":
  cli.run(main)
