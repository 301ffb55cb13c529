"""Study 4, the seed's Fig. 10: regular vs tough-positive vs far-negative triplets.

L2-Net trained on clean patches with each strategy, scored on the shallow
UNet's denoised test patches.

  python -m experiments.study --config=experiments/configs/studies/triplets.py:medium \
      --workdir=workdirs/studies
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("triplets", "Triplet generation (Fig. 10)", scale)
  c.rows = [
      catalogue.row("regular", "l2net_clean", "unet_shallow", "denoised", (.781, .190, .466)),
      catalogue.row("tough positive", "l2net_tough_positive", "unet_shallow", "denoised",
                    (.791, .198, .485)),
      catalogue.row("far negative", "l2net_far_negative", "unet_shallow", "denoised",
                    (.810, .228, .519)),
  ]
  c.curves = [{"name": "triplets", "title": "Triplet strategies: validation loss (Fig. 9)",
               "metric": "loss",
               "runs": ["l2net_clean", "l2net_tough_positive", "l2net_far_negative"]}]
  return c
