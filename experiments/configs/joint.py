"""Joint fine-tuning: a trained denoiser and descriptor trained end to end on noisy patches (#9).

The model is `denoise_describe`: noisy pixels -> denoiser -> clip to 0..255
-> descriptor. Both networks start from finished runs (`finetune.*_workdir`)
and are trained together on batches of noisy patches with the loss

    descriptor loss (of the denoised patches) + mae_weight x MAE(denoised, clean)

so the denoiser learns to keep what the descriptor needs while the MAE term
keeps it a denoiser. The descriptor loss and its settings are the
`descriptor` section, as in `descriptor.py` (triplet) or `hardnet.py`
(hardest_in_batch). Adam, lr 1e-4 with a cosine decay to a tenth: small
steps for two networks that are already trained.

The finished run is a descriptor of noisy patches: score it with
`experiments.evaluate --workdir=<this workdir>` (headline: the noisy input) or
in a study row with input "noisy".

Defaults: the shallow UNet (`denoiser.py`) and L2-Net with the triplet loss
(`descriptor.py`). For other networks build the config from their run configs
with `for_runs` (what the study catalogue does) or override
`model.kwargs.denoiser` / `model.kwargs.descriptor` to match the runs.

  python -m experiments.finetune_joint --config=experiments/configs/joint.py \
      --config.finetune.denoiser_workdir=workdirs/main/denoiser \
      --config.finetune.descriptor_workdir=workdirs/main/descriptor --workdir=workdirs/joint
"""

import ml_collections

from experiments.configs import common, denoiser, descriptor


def for_runs(denoiser_config: ml_collections.ConfigDict,
             descriptor_config: ml_collections.ConfigDict, arg: str = ""
             ) -> ml_collections.ConfigDict:
  """The joint config of a denoiser run's and a descriptor run's configs.

  The model sections come from the two configs and the data and descriptor
  sections from the descriptor's; the workdirs are left for the caller.
  """
  common.check_arg(arg)
  c = common.base("joint", "denoise_describe",
                  denoiser=denoiser_config.model.to_dict(),
                  descriptor=descriptor_config.model.to_dict())
  c.data = ml_collections.ConfigDict(descriptor_config.data.to_dict())
  c.descriptor = ml_collections.ConfigDict(descriptor_config.descriptor.to_dict())
  c.training.batch_size = descriptor_config.training.batch_size
  c.training.num_epochs = 5
  common.adam_cosine(c, 1e-4)
  c.finetune = {
      "denoiser_workdir": "",
      "denoiser_checkpoint": "best",
      "descriptor_workdir": "",
      "descriptor_checkpoint": "best",
      "mae_weight": 0.1,       # x MAE in pixels (~5-15); the triplet loss is ~0.1-1
  }
  if arg == "smoke":
    common.smoke(c)
  return c


def hardnet_pipeline(denoiser_config: ml_collections.ConfigDict, arg: str = ""
                     ) -> ml_collections.ConfigDict:
  """The pipeline of `fast.py` / `dncnn.py` after its denoiser: HardNet L2-Net, then joint.

  Returns:
    {"descriptor": the `hardnet.py` config, "joint": its joint fine-tuning
    with `denoiser_config`, 64 pairs a step (a DnCNN runs over every patch)}.
  """
  from experiments.configs import hardnet  # pylint: disable=g-import-not-at-top
  des = hardnet.get_config(arg)
  fine = for_runs(denoiser_config, des, arg)
  fine.training.batch_size = 16 if arg == "smoke" else 64
  fine.descriptor.examples_per_epoch = 96 if arg == "smoke" else 50_000
  return ml_collections.ConfigDict({"descriptor": des, "joint": fine})


def get_config(arg: str = ""):
  return for_runs(denoiser.get_config(arg), descriptor.get_config(arg), arg)
