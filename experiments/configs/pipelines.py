"""The pipelines the main job runs (`experiments.main --pipeline`), at the main job's scale.

A pipeline config holds one full experiment config per stage, in `STAGES`
order: `pretrain` (a DnCNN on AWGN, for a DnCNN + transfer denoiser),
`denoiser`, `descriptor` and, for pipelines that fine-tune both end to end,
`joint`. `DEFAULTS` gives each pipeline's main-job scale (a few minutes per
stage on a laptop CPU).
"""

import importlib

import ml_collections

PIPELINES = {"best": "experiments.configs.best",                     # the default
             "fast": "experiments.configs.fast",
             "baseline": "experiments.configs.pipeline_baseline"}    # the seed's Fig. 4
STAGES = ("pretrain", "denoiser", "descriptor", "joint")

_COMMON = {"train_labels": 600, "denoiser_epochs": 2, "triplets_per_epoch": 10_000,
           "descriptor_epochs": 2, "joint_examples_per_epoch": 3_200, "joint_epochs": 2,
           "pretrain_crops": 100, "pretrain_epochs": 2}
# The main job's scale of each pipeline. best: the DnCNN + transfer head on
# 200 labels (3,200 pairs), as the medium study, and one joint epoch, since
# every step runs the DnCNN-22 over 128 patches.
DEFAULTS = {"best": {**_COMMON, "train_labels": 200, "joint_epochs": 1},
            "fast": _COMMON,
            "baseline": _COMMON}


def pipeline_config(pipeline: str, size: str, **scale) -> ml_collections.ConfigDict:
  """The stage configs of `pipeline`, shortened to the main job's scale.

  Args:
    pipeline: a key of `PIPELINES`.
    size: embedded dataset size ("smoke" also picks the configs' smoke variants).
    **scale: overrides of `DEFAULTS[pipeline]` (None: the default):
      train_labels (the denoiser's `data.max_train_labels`, 0: all),
      denoiser_epochs, triplets_per_epoch (the descriptor's triplets or
      pairs), descriptor_epochs, joint_examples_per_epoch, joint_epochs,
      pretrain_crops (AWGN crops x16 views), pretrain_epochs.
  """
  unknown = sorted(set(scale) - set(_COMMON))
  if unknown:
    raise ValueError(f"unknown main-job scale fields {unknown}; known: {sorted(_COMMON)}")
  s = {**DEFAULTS[pipeline], **{k: v for k, v in scale.items() if v is not None}}
  c = importlib.import_module(PIPELINES[pipeline]).get_config("smoke" if size == "smoke" else "")
  if "pretrain" in c:
    c.pretrain.awgn.train_crops = s["pretrain_crops"]
    c.pretrain.training.num_epochs = s["pretrain_epochs"]
  c.denoiser.data.max_train_labels = s["train_labels"]
  c.denoiser.training.num_epochs = s["denoiser_epochs"]
  c.descriptor.descriptor.triplets_per_epoch = s["triplets_per_epoch"]
  c.descriptor.training.num_epochs = s["descriptor_epochs"]
  if "joint" in c:
    c.joint.descriptor.triplets_per_epoch = s["joint_examples_per_epoch"]
    c.joint.training.num_epochs = s["joint_epochs"]
  for stage in STAGES:
    if stage in c:
      if "data" in c[stage]:
        c[stage].data.embedded_size = size
      c[stage].training.log_every = 50
  return c
