"""The training runs the seed's studies share, and the scales they run at.

Not a config itself: each study config (`baseline.py`, `denoisers.py`, ...)
names runs from `RUNS` and evaluation rows over them. A run's name fixes
its config at a given scale, so two studies naming the same run share one
training (the study runner trains it once, under `<workdir>/runs/<name>`).

Scales:
  smoke:  the tiny embedded dataset and the `:smoke` variants (seconds; CI).
  medium: the embedded medium dataset (40 sequences), every run shortened to
          minutes on a laptop CPU; the test split is scored on its first
          `labels_per_sequence` labels per sequence (all 14 sequences), since
          denoising it whole with the full UNet or DnCNN takes ~30 min on 2 cores.
  full:   real N-HPatches (`--data_dir`), the seed's settings (a GPU/TPU job).
"""

import dataclasses
from collections.abc import Callable

import ml_collections

from experiments.configs import (common, denoiser, descriptor, dncnn_pretrain, dncnn_transfer,
                                 hardnet, joint, unet)

SCALES = ("smoke", "medium", "full")


@dataclasses.dataclass(frozen=True)
class Run:
  """A training run: its binary's task, its config at a scale, the runs it needs.

  Attributes:
    make: scale -> the full experiment config.
    needs: {config field path: run name} filled in with that run's workdir.
  """
  make: Callable[[str], ml_collections.ConfigDict]
  needs: tuple[tuple[str, str], ...] = ()


def _base(module, scale: str) -> ml_collections.ConfigDict:
  return module.get_config("smoke" if scale == "smoke" else "")


def _denoiser(module, *, medium_labels: int, medium_epochs: int, adam: float = 0.0):
  def make(scale: str) -> ml_collections.ConfigDict:
    c = _base(module, scale)
    if adam:
      common.adam_cosine(c, adam)
    if scale == "medium":
      c.data.embedded_size = "medium"
      c.data.max_train_labels = medium_labels
      c.data.val_labels = 40        # x16 patches, scored every epoch
      c.training.num_epochs = medium_epochs
      c.training.log_every = 25
    return c
  return make


def _pretrain(scale: str) -> ml_collections.ConfigDict:
  c = _base(dncnn_pretrain, scale)
  if scale == "medium":
    c.awgn.train_crops = 200        # x16 views = 3,200 pairs, 50 steps per epoch
    c.awgn.val_crops = 50
    c.training.num_epochs = 2
    c.training.log_every = 25
  return c


# Seed's curriculum (tough positive 10 epochs, regular 35, far negative 5 of
# 50), kept in proportion at each scale's epoch count.
CURRICULUM = {"smoke": "tough_positive:1,regular:1",
              "medium": "tough_positive:2,regular:7,far_negative:1",
              "full": "tough_positive:10,regular:35,far_negative:5"}


def _descriptor(source: str, schedule: str = "regular", *, adam: float = 0.0,
                augment: str = "none"):
  def make(scale: str) -> ml_collections.ConfigDict:
    c = _base(descriptor, scale)
    c.input.source = source
    c.descriptor.schedule = CURRICULUM[scale] if schedule == "curriculum" else schedule
    c.descriptor.augment = augment
    if adam:
      common.adam_cosine(c, adam)
    if scale == "medium":
      c.data.embedded_size = "medium"
      c.descriptor.examples_per_epoch = 3_000     # 60 steps per epoch
      c.descriptor.far_gap = 2_500                 # of 11,133 train labels
      c.training.num_epochs = 10
      c.training.log_every = 60
    return c
  return make


def _hardnet(*, sos_weight: float = 0.0):
  """HardNet's loss on L2-Net (`hardnet.py`, clean patches); medium: batch 128, 500 steps."""
  def make(scale: str) -> ml_collections.ConfigDict:
    c = _base(hardnet, scale)
    c.descriptor.sos_weight = sos_weight
    if scale == "medium":
      c.data.embedded_size = "medium"
      c.training.batch_size = 128                  # ~0.4 s a step on 2 CPU cores
      c.descriptor.examples_per_epoch = 6_400      # pairs: 50 steps per epoch
      c.training.num_epochs = 10
      c.training.log_every = 50
    return c
  return make


def _joint(denoiser_run: str, descriptor_run: str):
  """Joint fine-tuning (`joint.py`) of two runs with the descriptor run's loss, regular batches.

  Medium: 100-120 steps of 150 (triplets of 50) or 128 (64 pairs) patches.
  """
  def make(scale: str) -> ml_collections.ConfigDict:
    c = joint.for_runs(RUNS[denoiser_run].make(scale), RUNS[descriptor_run].make(scale),
                       "smoke" if scale == "smoke" else "")
    c.descriptor.schedule = "regular"
    if scale == "medium":
      if c.descriptor.loss == "hardest_in_batch":
        c.training.batch_size = 64
        c.descriptor.examples_per_epoch = 3_200     # pairs: 50 steps per epoch
      c.training.num_epochs = 2
      c.training.log_every = 20
    return c
  return Run(make, needs=(("finetune.denoiser_workdir", denoiser_run),
                          ("finetune.descriptor_workdir", descriptor_run)))


_DENOISED = (("input.denoiser_workdir", "unet_shallow"),)

RUNS: dict[str, Run] = {
    # Denoisers (Figs. 2, 6, 14, 15).
    "unet_shallow": Run(_denoiser(denoiser, medium_labels=600, medium_epochs=3)),
    "unet": Run(_denoiser(unet, medium_labels=94, medium_epochs=4)),   # the seed's 1,504 patches
    "dncnn_awgn": Run(_pretrain),
    "dncnn_transfer": Run(_denoiser(dncnn_transfer, medium_labels=200, medium_epochs=2),
                          needs=(("transfer.pretrained_workdir", "dncnn_awgn"),)),
    # Descriptors (Figs. 3, 8, 9, 10, 11); "clean/regular" is the baseline descriptor.
    "l2net_clean": Run(_descriptor("clean")),
    "l2net_noisy": Run(_descriptor("noisy")),
    "l2net_denoised": Run(_descriptor("denoised"), needs=_DENOISED),
    "l2net_tough_positive": Run(_descriptor("clean", "tough_positive")),
    "l2net_far_negative": Run(_descriptor("clean", "far_negative")),
    "l2net_proposed": Run(_descriptor("clean", "curriculum")),
    # Beyond the seed (#9): one change each to the seed's proposal, and combinations.
    "unet_adam": Run(_denoiser(unet, medium_labels=200, medium_epochs=2, adam=1e-3)),
    "l2net_proposed_adam": Run(_descriptor("clean", "curriculum", adam=1e-3)),
    "l2net_proposed_flip_rot": Run(_descriptor("clean", "curriculum", augment="flip_rot")),
    "hardnet": Run(_hardnet()),
    "hardnet_sos": Run(_hardnet(sos_weight=1.0)),
}
RUNS.update({   # joint runs build on the configs of the runs above
    "joint_proposed": _joint("dncnn_transfer", "l2net_proposed"),
    "joint_hardnet": _joint("dncnn_transfer", "hardnet"),
    "joint_hardnet_shallow": _joint("unet_shallow", "hardnet"),
})

# How each scale scores: verification pairs per file, test labels per sequence (0: all).
EVALUATION = {
    "smoke": {"n_pairs": 2_000, "labels_per_sequence": 0},
    "medium": {"n_pairs": 100_000, "labels_per_sequence": 80},
    "full": {"n_pairs": 1_000_000, "labels_per_sequence": 0},
}


def check_scale(scale: str) -> str:
  if scale not in SCALES:
    raise ValueError(f"study scale must be one of {', '.join(SCALES)}, got {scale!r}")
  return scale


def study(name: str, title: str, scale: str) -> ml_collections.ConfigDict:
  """The fields every study config has; each study adds `rows` and/or `curves`.

  rows: list of {"label", "descriptor" (run), "denoiser" (run or ""),
    "input" ("noisy" | "denoised" | "clean"), "seed" ([verification,
    matching, retrieval] of the seed's N-HPatches figure, or [])}.
  curves: list of {"name", "title", "metric", "runs": [run, ...]}: one PNG
    each, the metric's validation value per epoch of every run.
  """
  c = ml_collections.ConfigDict()
  c.name = name
  c.title = title
  c.scale = check_scale(scale)
  c.split = "a"
  c.evaluation = dict(EVALUATION[scale])
  c.rows = []
  c.curves = []
  return c


def row(label: str, descriptor_run: str, denoiser_run: str, input_kind: str,
        seed: tuple[float, float, float] | tuple = ()) -> dict:
  return {"label": label, "descriptor": descriptor_run, "denoiser": denoiser_run,
          "input": input_kind, "seed": list(seed)}
