"""The seed's baseline pipeline for `experiments.main`: shallow UNet, then L2-Net (triplet loss).

Stages: `denoiser` (`denoiser.py`) and `descriptor` (`descriptor.py`, clean
patches, random triplets, SGD lr 0.1); no joint stage. The main job scores
the descriptor on noisy, denoised and clean inputs (the seed's Fig. 4).

  python -m experiments.main --pipeline=baseline
  # (runs this config, experiments/configs/pipeline_baseline.py)
"""

import ml_collections

from experiments.configs import denoiser, descriptor


def get_config(arg: str = ""):
  return ml_collections.ConfigDict({"name": "baseline", "denoiser": denoiser.get_config(arg),
                                    "descriptor": descriptor.get_config(arg)})
