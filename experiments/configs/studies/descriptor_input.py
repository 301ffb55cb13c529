"""Study 3, the seed's Fig. 8: L2-Net trained on denoised vs clean vs noisy patches.

Each descriptor scored on the shallow UNet's denoised test patches.

  python -m experiments.study --config=experiments/configs/studies/descriptor_input.py:medium \
      --workdir=workdirs/studies
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("descriptor_input", "Descriptor training input (Fig. 8)", scale)
  c.rows = [
      catalogue.row("trained on denoised", "l2net_denoised", "unet_shallow", "denoised",
                    (.755, .142, .420)),
      catalogue.row("trained on clean", "l2net_clean", "unet_shallow", "denoised",
                    (.792, .181, .470)),
      catalogue.row("trained on noisy", "l2net_noisy", "unet_shallow", "denoised",
                    (.726, .136, .405)),
  ]
  c.curves = [{"name": "descriptor_input", "title": "L2-Net by training input: validation loss",
               "metric": "loss", "runs": ["l2net_denoised", "l2net_clean", "l2net_noisy"]}]
  return c
