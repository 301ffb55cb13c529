"""Study 1, the seed's Fig. 4: shallow UNet + L2-Net on noisy, denoised and clean inputs.

The baseline descriptor (L2-Net trained on clean patches, regular
triplets) scored on raw noisy patches (lower bound), on the shallow UNet's
output (the pipeline) and on clean patches (upper bound).

  python -m experiments.study --config=experiments/configs/studies/baseline.py:medium \
      --workdir=workdirs/studies
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("baseline", "Baseline: descriptor inputs (Fig. 4)", scale)
  c.rows = [
      catalogue.row("noisy", "l2net_clean", "", "noisy", (.727, .179, .425)),
      catalogue.row("denoised (shallow UNet)", "l2net_clean", "unet_shallow", "denoised",
                    (.830, .241, .549)),
      catalogue.row("clean", "l2net_clean", "", "clean", (.863, .336, .549)),
  ]
  return c
