"""The pipelines the main job runs (`experiments.main --pipeline`), at the main job's scale.

A pipeline config holds one full experiment config per stage: `denoiser`,
`descriptor` and, for pipelines that fine-tune both end to end, `joint`.
"""

import importlib

import ml_collections

PIPELINES = {"best": "experiments.configs.best",                     # the default
             "baseline": "experiments.configs.pipeline_baseline"}    # the seed's Fig. 4
STAGES = ("denoiser", "descriptor", "joint")


def pipeline_config(pipeline: str, size: str, *, train_labels: int, denoiser_epochs: int,
                    triplets_per_epoch: int, descriptor_epochs: int,
                    joint_examples_per_epoch: int, joint_epochs: int
                    ) -> ml_collections.ConfigDict:
  """The stage configs of `pipeline`, shortened to the main job's scale.

  Args:
    pipeline: a key of `PIPELINES`.
    size: embedded dataset size ("smoke" also picks the configs' smoke variants).
    train_labels: the denoiser's `data.max_train_labels` (0: all).
    denoiser_epochs, descriptor_epochs, joint_epochs: epochs of each stage.
    triplets_per_epoch: the descriptor's triplets (or pairs) per epoch.
    joint_examples_per_epoch: the joint stage's triplets (or pairs) per epoch.
  """
  module = importlib.import_module(PIPELINES[pipeline])
  c = module.get_config("smoke" if size == "smoke" else "")
  c.denoiser.data.max_train_labels = train_labels
  c.denoiser.training.num_epochs = denoiser_epochs
  c.descriptor.descriptor.triplets_per_epoch = triplets_per_epoch
  c.descriptor.training.num_epochs = descriptor_epochs
  if "joint" in c:
    c.joint.descriptor.triplets_per_epoch = joint_examples_per_epoch
    c.joint.training.num_epochs = joint_epochs
  for stage in STAGES:
    if stage in c:
      c[stage].data.embedded_size = size
      c[stage].training.log_every = 50
  return c
