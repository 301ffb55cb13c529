"""The best pipeline measured (#9): what `experiments.main` runs by default.

Four stages, each a full experiment config:
  pretrain:   DnCNN-17 on natural photos with AWGN (`dncnn_pretrain.py`);
  denoiser:   DnCNN + transfer, a trainable DnCNN-5 on the frozen DnCNN-17,
              MAE (`dncnn_transfer.py`): the seed's proposed denoiser;
  descriptor: L2-Net with HardNet's hardest-in-batch loss, L2-normalised
              after a final batch norm, batch 128 (`hardnet.py`);
  joint:      denoiser and descriptor fine-tuned end to end on noisy
              patches, hardest-in-batch loss + 0.1 x MAE, Adam 1e-4
              (`joint.py`), batch 64 pairs.
The pipeline's descriptor is the joint model: noisy patch in, descriptor out.

On the embedded medium set and on a second generated dataset (seed 1, noise
sigma 25..45) it scored the highest mean mAP of the README's "Beyond the
seed" table (`experiments/configs/studies/beyond.py`), +0.175 and +0.198
over the seed's proposed pipeline. `fast.py` swaps the DnCNN for the shallow
UNet: within 0.007 of it, in about half the training time.

  python -m experiments.main                       # this config, experiments/configs/best.py
  python -m experiments.main --pipeline=baseline   # the seed's (pipeline_baseline.py)
"""

import ml_collections

from experiments.configs import dncnn_pretrain, dncnn_transfer, joint


def get_config(arg: str = ""):
  den = dncnn_transfer.get_config(arg)
  c = ml_collections.ConfigDict({"name": "best", "pretrain": dncnn_pretrain.get_config(arg),
                                 "denoiser": den})
  c.update(joint.hardnet_pipeline(den, arg))
  return c
