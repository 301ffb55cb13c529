"""Exports a run's descriptors in the HPatches benchmark's CSV layout.

  python -m experiments.export_descriptors --workdir=WORKDIR --out_dir=DESCS
      [--data_dir=DATA] [--split=a] [--input=denoised]

restores the descriptor (and denoiser) checkpoints of WORKDIR (a run folder
with denoiser/ and descriptor/, or a descriptor workdir), describes the
--input test patches of --split, and writes `DESCS/<seq>/<image>.csv` (one
row per patch, `--delimiter` separated), all or nothing, so that the official
benchmark (`hpatches_eval.py --descr-dir=...`) or `experiments.evaluate
--descriptors_dir=DESCS` can score them. Without --data_dir the data is the
embedded dataset the descriptor was trained on.
"""

from absl import app
from absl import flags

from experiments import cli
from nhp_jax import platform
from nhp_jax.evaluation import describe

_WORKDIR = flags.DEFINE_string("workdir", None, "run folder (denoiser/ + descriptor/) or a "
                               "descriptor training workdir", required=True)
_DENOISER_WORKDIR = flags.DEFINE_string("denoiser_workdir", None, "overrides the run "
                                        "folder's denoiser/")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "destination folder (must not exist unless "
                               "--overwrite)", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "dataset root; absent: the embedded dataset "
                                "the descriptor was trained on")
_SPLIT = flags.DEFINE_string("split", "a", "split whose test sequences are described")
_INPUT = flags.DEFINE_enum("input", "denoised", ["noisy", "clean", "denoised"],
                           "which patches are described")
_STEP = flags.DEFINE_string("step", "best", "checkpoint: best, latest or a step number")
_DELIMITER = flags.DEFINE_enum("delimiter", ",", [",", ";"], "CSV value separator")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "replace an existing --out_dir")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1024, "patches per compiled inference block "
                                   "(lower it when a block does not fit the device's memory)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # On a CPU one XLA host device per core: inference splits every block over them.
  platform.setup()
  step = int(_STEP.value) if _STEP.value.isdigit() else _STEP.value
  describe.export_split(_WORKDIR.value, _OUT_DIR.value, input=_INPUT.value, split=_SPLIT.value,
                        data_dir=_DATA_DIR.value, denoiser_workdir=_DENOISER_WORKDIR.value,
                        step=step, delimiter=_DELIMITER.value, overwrite=_OVERWRITE.value,
                        batch_size=_BATCH_SIZE.value)

if __name__ == "__main__":
  cli.run(main)
