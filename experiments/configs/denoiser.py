"""Shallow UNet denoiser: the seed's baseline (report section 2.1, Fig. 2).

Noisy -> clean 32x32 patches; MAE loss; SGD Nesterov, lr 1e-5, momentum
0.9; batch 50; 50 epochs over every (noisy, clean) pair of the train split.

  python -m experiments.train_denoiser --config=experiments/configs/denoiser.py \
      --workdir=workdirs/unet_shallow [--data_dir=DATA]
  python -m experiments.train_denoiser --config=experiments/configs/denoiser.py:smoke \
      --workdir=/tmp/denoiser_smoke      # seconds, tiny embedded dataset

Result: not measured yet (fill in after a real run).
"""

from experiments.configs import common


def get_config(arg: str = ""):
  common.check_arg(arg)
  c = common.base("denoiser", "unet_shallow", input_scale=1.0)
  c.data = common.hpatches_data()
  c.optimizer.learning_rate = 1e-5
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  # Only for model "dncnn_transfer": a pretrain_dncnn workdir and which of its checkpoints.
  c.transfer = {"pretrained_workdir": "", "checkpoint": "best"}
  if arg == "smoke":
    common.smoke(c)
    c.data.max_train_labels = 48   # 768 pairs: 15 steps per epoch
  return c
