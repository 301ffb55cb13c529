"""A fast near-best pipeline (#9): the shallow UNet in place of `best.py`'s DnCNN + transfer.

Three stages, each a full experiment config:
  denoiser:   the shallow UNet with MAE (`denoiser.py`);
  descriptor: L2-Net with HardNet's hardest-in-batch loss, L2-normalised
              after a final batch norm, batch 128 (`hardnet.py`);
  joint:      both fine-tuned end to end on noisy patches, hardest-in-batch
              loss + 0.1 x MAE, Adam 1e-4 (`joint.py`), batch 64 pairs.
The pipeline's descriptor is the joint model: noisy patch in, descriptor out.

In the README's "Beyond the seed" table (`experiments/configs/studies/beyond.py`)
it scores within 0.007 of the mean mAP of `best.py` on both generated
datasets and trains in about half its time (no DnCNN pretraining, a
cheaper joint stage).

  python -m experiments.main --pipeline=fast       # this config, experiments/configs/fast.py
"""

import ml_collections

from experiments.configs import denoiser, joint


def get_config(arg: str = ""):
  den = denoiser.get_config(arg)
  c = ml_collections.ConfigDict({"name": "fast", "denoiser": den})
  c.update(joint.hardnet_pipeline(den, arg))
  return c
