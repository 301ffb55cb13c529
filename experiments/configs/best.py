"""The best pipeline measured (#9): what `experiments.main` runs by default.

Three stages, each a full experiment config:
  denoiser:   the shallow UNet with MAE (`denoiser.py`);
  descriptor: L2-Net with HardNet's hardest-in-batch loss, L2-normalised
              after a final batch norm, batch 128 (`hardnet.py`);
  joint:      both fine-tuned end to end on noisy patches, hardest-in-batch
              loss + 0.1 x MAE, Adam 1e-4 (`joint.py`), batch 64 pairs.
The pipeline's descriptor is the joint model: noisy patch in, descriptor out.

On the embedded medium set and a second generated dataset (seed 1, noise
sigma 25..45) it beats the seed's proposed pipeline (DnCNN + transfer,
L2-Net trained with the triplet curriculum) by the margins in the README's
"Beyond the seed" table (`experiments/configs/studies/beyond.py`).

  python -m experiments.main                       # this config, experiments/configs/best.py
  python -m experiments.main --pipeline=baseline   # the seed's (pipeline_baseline.py)
"""

import ml_collections

from experiments.configs import denoiser, hardnet, joint


def get_config(arg: str = ""):
  den = denoiser.get_config(arg)
  des = hardnet.get_config(arg)
  fine = joint.for_runs(den, des, arg)
  fine.training.batch_size = 16 if arg == "smoke" else 64
  fine.descriptor.triplets_per_epoch = 96 if arg == "smoke" else 50_000
  return ml_collections.ConfigDict({"name": "best", "denoiser": den, "descriptor": des,
                                    "joint": fine})
