"""Full UNet denoiser (4 encoder + 4 decoder levels): the seed's section 4.1.1, Fig. 14.

As `denoiser.py` (MAE, SGD Nesterov lr 1e-5 momentum 0.9, batch 50) but
the 4-level U-Net (7,760,353 parameters) and 30 epochs, as the seed
trained it (the seed used a 1500-patch subset: add
`--config.data.max_train_labels=94` for 1504 labels).

  python -m experiments.train_denoiser --config=experiments/configs/unet.py \
      --workdir=workdirs/unet
  python -m experiments.train_denoiser --config=experiments/configs/unet.py:smoke \
      --workdir=/tmp/unet_smoke

Result: not measured yet (fill in after a real run).
"""

from experiments.configs import denoiser


def get_config(arg: str = ""):
  c = denoiser.get_config(arg)
  c.model.name = "unet"
  c.model.kwargs = {"features": 32, "depth": 4, "input_scale": 1.0}
  c.training.num_epochs = 2 if arg == "smoke" else 30
  if arg == "smoke":
    c.model.kwargs.features = 8
  return c
