"""Study 5, the seed's Fig. 11: the baseline pipeline vs the seed's proposal.

Baseline: shallow UNet + L2-Net (clean, regular triplets). Proposed:
DnCNN + transfer + L2-Net trained on clean patches with the curriculum
(tough positive, regular, far negative in the seed's 10:35:5 proportion).

  python -m experiments.study --config=experiments/configs/studies/final.py:medium \
      --workdir=workdirs/studies
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("final", "Baseline vs proposed pipeline (Fig. 11)", scale)
  c.rows = [
      catalogue.row("baseline", "l2net_clean", "unet_shallow", "denoised", (.780, .169, .462)),
      catalogue.row("proposed", "l2net_proposed", "dncnn_transfer", "denoised",
                    (.800, .171, .496)),
  ]
  return c
