"""Study 2, the seed's Fig. 6: shallow UNet vs full UNet vs DnCNN + transfer, same descriptor.

The baseline descriptor scored on each denoiser's output.

  python -m experiments.study --config=experiments/configs/studies/denoisers.py:medium \
      --workdir=workdirs/studies
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("denoisers", "Denoisers (Fig. 6)", scale)
  c.rows = [
      catalogue.row("shallow UNet", "l2net_clean", "unet_shallow", "denoised", (.788, .179, .460)),
      catalogue.row("full UNet", "l2net_clean", "unet", "denoised", (.792, .181, .470)),
      catalogue.row("DnCNN + transfer", "l2net_clean", "dncnn_transfer", "denoised",
                    (.793, .185, .478)),
  ]
  c.curves = [{"name": "denoisers", "title": "Denoisers: validation MAE (Figs. 2, 14, 15)",
               "metric": "loss", "runs": ["unet_shallow", "unet", "dncnn_transfer"]}]
  return c
