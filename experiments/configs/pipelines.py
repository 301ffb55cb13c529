"""The pipelines the main job runs (`experiments.main --pipeline`), at its two scales.

A pipeline config holds one full experiment config per stage, in `STAGES`
order: `pretrain` (a DnCNN on AWGN, for a DnCNN + transfer denoiser),
`denoiser`, `descriptor` and, for pipelines that fine-tune both end to end,
`joint`. Two scales (`SCALES`): "main", `DEFAULTS`, each pipeline's main-job
scale (a few minutes per stage on a laptop CPU, what `bash run.sh main`
runs), and "full", every stage config's own settings (`settings`), what
`experiments.main --scale=full` trains on N-HPatches on a GPU or TPU.
"""

import importlib

import ml_collections

from nhp_jax.workflows import stages

PIPELINES = {"fast": "experiments.configs.fast",                     # the default (#22)
             "dncnn": "experiments.configs.dncnn",
             "baseline": "experiments.configs.pipeline_baseline"}    # the seed's Fig. 4
# The main job's default: the highest mean mAP of the seeds study, or the
# cheapest of those within its seed spread (`experiments/configs/studies/seeds.py`).
DEFAULT = "fast"
STAGES = stages.STAGES

SCALES = ("main", "full")
SCALE_FIELDS = ("train_labels", "denoiser_epochs", "descriptor_examples_per_epoch",
                "descriptor_epochs", "joint_examples_per_epoch", "joint_epochs",
                "pretrain_crops", "pretrain_epochs")
_COMMON = {"train_labels": 600, "denoiser_epochs": 2, "descriptor_examples_per_epoch": 10_000,
           "descriptor_epochs": 2, "joint_examples_per_epoch": 3_200, "joint_epochs": 2,
           "pretrain_crops": 100, "pretrain_epochs": 2}
# The main job's scale of each pipeline. dncnn: the DnCNN + transfer head on
# 200 labels (3,200 pairs), as the medium study, and one joint epoch, since
# every step runs the DnCNN-22 over 128 patches.
DEFAULTS = {"fast": _COMMON,
            "dncnn": {**_COMMON, "train_labels": 200, "joint_epochs": 1},
            "baseline": _COMMON}
# The embedded dataset of the main scale when no size is given.
MAIN_SIZE = "small"


def settings(c: ml_collections.ConfigDict) -> dict[str, int]:
  """The scale fields of a pipeline config as its stages hold them (stages it lacks: absent)."""
  s = {"train_labels": c.denoiser.data.max_train_labels,
       "denoiser_epochs": c.denoiser.training.num_epochs,
       "descriptor_examples_per_epoch": c.descriptor.descriptor.examples_per_epoch,
       "descriptor_epochs": c.descriptor.training.num_epochs}
  if "pretrain" in c:
    s.update(pretrain_crops=c.pretrain.awgn.train_crops,
             pretrain_epochs=c.pretrain.training.num_epochs)
  if "joint" in c:
    s.update(joint_examples_per_epoch=c.joint.descriptor.examples_per_epoch,
             joint_epochs=c.joint.training.num_epochs)
  return s


def pipeline_config(pipeline: str, size: str | None = None, scale: str = "main",
                    **overrides) -> ml_collections.ConfigDict:
  """The stage configs of `pipeline` at a scale.

  Args:
    pipeline: a key of `PIPELINES`.
    size: embedded dataset size, used where no data folder is given
      ("smoke" also picks the configs' smoke variants); None: `MAIN_SIZE`
      at the main scale, the configs' own (`embedded_size`, "medium") at full.
    scale: "main": `DEFAULTS[pipeline]`, a few minutes per stage on a laptop
      CPU, progress every 50 steps; "full": every stage config's own
      settings (the seed's epochs, every train label: a GPU/TPU job).
    **overrides: scale fields (`SCALE_FIELDS`) replacing the scale's value
      (None: keep it): train_labels (the denoiser's `data.max_train_labels`,
      0: all), denoiser_epochs, descriptor_examples_per_epoch (the descriptor's
      triplets or pairs), descriptor_epochs, joint_examples_per_epoch,
      joint_epochs, pretrain_crops (AWGN crops x16 views), pretrain_epochs.

  Raises:
    ValueError: an unknown pipeline, scale or scale field.
  """
  unknown = sorted(set(overrides) - set(SCALE_FIELDS))
  if unknown:
    raise ValueError(f"unknown main-job scale fields {unknown}; known: {sorted(SCALE_FIELDS)}")
  if scale not in SCALES:
    raise ValueError(f"scale: expected one of {', '.join(SCALES)}, found {scale!r}")
  if pipeline not in PIPELINES:
    raise ValueError(f"pipeline: expected one of {', '.join(PIPELINES)}, found {pipeline!r}")
  if size is None and scale == "main":
    size = MAIN_SIZE
  c = importlib.import_module(PIPELINES[pipeline]).get_config("smoke" if size == "smoke" else "")
  s = {**(DEFAULTS[pipeline] if scale == "main" else settings(c)),
       **{k: v for k, v in overrides.items() if v is not None}}
  if "pretrain" in c:
    c.pretrain.awgn.train_crops = s["pretrain_crops"]
    c.pretrain.training.num_epochs = s["pretrain_epochs"]
  c.denoiser.data.max_train_labels = s["train_labels"]
  c.denoiser.training.num_epochs = s["denoiser_epochs"]
  c.descriptor.descriptor.examples_per_epoch = s["descriptor_examples_per_epoch"]
  c.descriptor.training.num_epochs = s["descriptor_epochs"]
  if "joint" in c:
    c.joint.descriptor.examples_per_epoch = s["joint_examples_per_epoch"]
    c.joint.training.num_epochs = s["joint_epochs"]
  for stage in STAGES:
    if stage in c:
      if "data" in c[stage] and size is not None:
        c[stage].data.embedded_size = size
      if scale == "main":
        c[stage].training.log_every = 50
  return c
