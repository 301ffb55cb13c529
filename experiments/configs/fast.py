"""The main job's default pipeline: shallow UNet, HardNet, then both fine-tuned end to end.

Three stages, each a full experiment config:
  denoiser:   the shallow UNet with MAE (`denoiser.py`);
  descriptor: L2-Net with HardNet's hardest-in-batch loss, L2-normalised
              after a final batch norm, batch 128 (`hardnet.py`);
  joint:      both fine-tuned end to end on noisy patches, hardest-in-batch
              loss + 0.1 x MAE, Adam 1e-4 (`joint.py`), batch 64 pairs.
The pipeline's descriptor is the joint model: noisy patch in, descriptor out.

The default by evidence (#22): over three seeds on two generated datasets
(the seeds study, `experiments/configs/studies/seeds.py`) it scored the
highest mean mAP of the main job's pipelines on both, .012 above `dncnn.py`
(DnCNN + transfer in place of the UNet; a tie within the seed spread) in about
half its training time (a third of its cost with inference), and .18 and .15 above
the seed's `baseline`.

  python -m experiments.main                       # this config, experiments/configs/fast.py
  python -m experiments.main --pipeline=baseline   # the seed's (pipeline_baseline.py)
"""

import ml_collections

from experiments.configs import denoiser, joint


def get_config(arg: str = ""):
  den = denoiser.get_config(arg)
  c = ml_collections.ConfigDict({"name": "fast", "denoiser": den})
  c.update(joint.hardnet_pipeline(den, arg))
  return c
