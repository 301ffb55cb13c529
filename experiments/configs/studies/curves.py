"""Study 6, the seed's learning curves (Figs. 2, 3, 9, 14, 15), drawn from the runs' metrics.

Every run also draws its own train/validation curves
(`runs/<name>/learning_curves.png`); this study lays the validation
curves of related runs on shared axes.

  python -m experiments.study --config=experiments/configs/studies/curves.py:medium \
      --workdir=workdirs/studies
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("curves", "Learning curves (Figs. 2, 3, 9, 14, 15)", scale)
  c.curves = [
      {"name": "fig02_unet_shallow", "title": "Shallow UNet: MAE (Fig. 2)", "metric": "loss",
       "runs": ["unet_shallow"]},
      {"name": "fig03_l2net", "title": "L2-Net baseline: triplet loss (Fig. 3)", "metric": "loss",
       "runs": ["l2net_clean"]},
      {"name": "fig09_curriculum", "title": "L2-Net curriculum vs regular (Fig. 9)",
       "metric": "loss", "runs": ["l2net_proposed", "l2net_clean"]},
      {"name": "fig14_unet", "title": "Full UNet: MAE (Fig. 14)", "metric": "loss",
       "runs": ["unet"]},
      {"name": "fig15_dncnn", "title": "DnCNN + transfer: MAE (Fig. 15)", "metric": "loss",
       "runs": ["dncnn_awgn", "dncnn_transfer"]},
  ]
  return c
