"""DnCNN-17 pretrained on synthetic AWGN: the frozen half of the seed's transfer denoiser.

The seed took a DnCNN trained on BSD68-style natural images with additive
white Gaussian noise, sigma uniform in [0, 25]. Offline, the stand-in for
BSD is the set of real photographs bundled with scikit-image (see
`nhp_jax/train/awgn_data.py`): random 32x32 grey crops, each seen under its
8 flips/rotations with fresh noise, validated on a held-out photo. Loss MAE
(as every denoiser here; DnCNN's paper used MSE); Adam lr 1e-3 with cosine
decay to 1e-4 (the seed does not give this run's optimiser); batch 64.
A GPU job at this size (DnCNN-17 is ~0.5 GFLOP per patch and step); on a
CPU shrink `awgn.train_crops` or use the smoke variant.

  python -m experiments.pretrain_dncnn --config=experiments/configs/dncnn_pretrain.py \
      --workdir=workdirs/dncnn_awgn
  python -m experiments.pretrain_dncnn --config=experiments/configs/dncnn_pretrain.py:smoke \
      --workdir=/tmp/dncnn_smoke      # depth 4, 16 features: pairs with dncnn_transfer.py:smoke

Result: not measured yet (fill in after a real run).
"""

from experiments.configs import common

SMOKE_DEPTH, SMOKE_FEATURES = 4, 16


def get_config(arg: str = ""):
  common.check_arg(arg)
  c = common.base("dncnn_pretrain", "dncnn", depth=17, features=64, input_scale=1.0)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.end_factor = 0.1
  c.training.batch_size = 64
  c.training.num_epochs = 20
  c.training.eval_batch_size = 512
  c.awgn = {
      "train_photos": ("astronaut", "brick", "camera", "coffee", "coins", "grass", "gravel",
                       "moon", "motorcycle", "rocket"),
      "val_photos": ("chelsea",),
      "train_crops": 2000,   # x16 noisy views = 32,000 pairs per epoch
      "val_crops": 100,
      "sigma_min": 0.0,
      "sigma_max": 25.0,
  }
  if arg == "smoke":
    common.smoke(c)
    c.model.kwargs.depth = SMOKE_DEPTH
    c.model.kwargs.features = SMOKE_FEATURES
    c.awgn.train_crops = 40
    c.awgn.val_crops = 4
  return c
