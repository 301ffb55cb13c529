"""The main job: embedded dataset -> denoiser -> descriptor -> the three benchmarks.

Runs the seed's baseline pipeline end to end at a small scale (minutes on a
laptop CPU): builds (or reuses) the embedded synthetic dataset, trains the
shallow UNet denoiser and the L2-Net descriptor for a few hundred steps each,
then scores the descriptor on the test split with noisy, denoised and clean
inputs (the seed's Fig. 4 table). Every stage resumes: rerun the same command
after an interruption and finished stages are skipped.

  bash run.sh main                                   # what the README's first command runs
  python -m experiments.main --workdir=workdirs/main --size=small
  python -m experiments.main --data_dir=DATA --denoiser_epochs=50 --descriptor_epochs=50

Numbers on the embedded dataset are synthetic-data results, not N-HPatches ones.
"""

from nhp_jax.train import host_devices

host_devices.configure_from_env()

# pylint: disable=g-import-not-at-top,wrong-import-position
import os  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from experiments.configs import denoiser as denoiser_config  # noqa: E402
from experiments.configs import descriptor as descriptor_config  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/main", "run folder: denoiser/, "
                               "descriptor/, results.json, results.md")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "N-HPatches or HPatches root; absent: "
                                "the embedded synthetic dataset of --size")
_SIZE = flags.DEFINE_enum("size", "small", ["smoke", "small", "medium", "large"],
                          "embedded dataset size when --data_dir is absent")
_TRAIN_LABELS = flags.DEFINE_integer(
    "train_labels", 600, "train labels (x16 patches) the denoiser sees per epoch; 0: all")
_DENOISER_EPOCHS = flags.DEFINE_integer("denoiser_epochs", 2, "denoiser epochs")
_TRIPLETS = flags.DEFINE_integer("triplets_per_epoch", 10_000, "descriptor triplets per epoch")
_DESCRIPTOR_EPOCHS = flags.DEFINE_integer("descriptor_epochs", 2, "descriptor epochs")
_N_PAIRS = flags.DEFINE_integer("n_pairs", 100_000, "pairs per generated verification file "
                                "(the official benchmark uses 1,000,000)")


def configs(size: str, train_labels: int, denoiser_epochs: int, triplets_per_epoch: int,
            descriptor_epochs: int):
  """The denoiser and descriptor configs of the main job (the seed's baseline, shortened)."""
  den = denoiser_config.get_config("smoke" if size == "smoke" else "")
  den.data.embedded_size = size
  den.data.max_train_labels = train_labels
  den.training.num_epochs = denoiser_epochs
  des = descriptor_config.get_config("smoke" if size == "smoke" else "")
  des.data.embedded_size = size
  des.descriptor.triplets_per_epoch = triplets_per_epoch
  des.training.num_epochs = descriptor_epochs
  for c in (den, des):
    c.training.log_every = 50
  return den, des


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from nhp_jax.evaluation import from_checkpoints
  from nhp_jax.train import loop

  workdir = os.path.abspath(_WORKDIR.value)
  den_dir, des_dir = os.path.join(workdir, "denoiser"), os.path.join(workdir, "descriptor")
  den, des = configs(_SIZE.value, _TRAIN_LABELS.value, _DENOISER_EPOCHS.value,
                     _TRIPLETS.value, _DESCRIPTOR_EPOCHS.value)
  logging.info("[1/3] denoiser -> %s", den_dir)
  loop.train_and_evaluate(den, den_dir, _DATA_DIR.value)
  logging.info("[2/3] descriptor -> %s", des_dir)
  loop.train_and_evaluate(des, des_dir, _DATA_DIR.value)
  logging.info("[3/3] evaluation of noisy, denoised and clean inputs")
  from_checkpoints.evaluate_workdir(
      workdir, split=des.data.split, data_dir=_DATA_DIR.value, n_pairs=_N_PAIRS.value,
      json_out=os.path.join(workdir, "results.json"),
      markdown_out=os.path.join(workdir, "results.md"))


if __name__ == "__main__":
  app.run(main)
