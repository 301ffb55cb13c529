"""Training recipes: what differs between the trainings (data, steps, validation set, plots).

`RECIPES[config.recipe](config, data_dir)` returns a `Recipe`; the loop
(`loop.py`) drives any of them the same way. Callers validate the config
first (`config_validation.validate`, as `loop.train_and_evaluate` does);
the fields checked there (e.g. `descriptor.loss`, `descriptor.bn_passes`)
are not checked again here. The pieces wired: the data
(`data.training_data`: train split and validation labels, see
`config.data.validation` there), the descriptor's input pixels
(`descriptor_inputs`), the trained weights a transfer or joint run starts
from (`grafting`), the steps (`steps`).

The validation PatchSet is a fixed random subset of `val_labels` labels: the
denoiser is scored on all 16 (noisy, clean) pairs of each, the descriptor on
`descriptor.val_triplets` fixed "regular" triplets drawn from them (from the
same input as training: clean, noisy or denoised).
"""

import dataclasses
import functools
from collections.abc import Callable, Iterator

import ml_collections
import numpy as np
from absl import logging

from nhp_jax import errors
from nhp_jax.data import layout, pipelines, training_data, triplets
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.train import awgn_data, config_validation, descriptor_inputs, grafting, steps

PatchSet = patchset_lib.PatchSet


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A training recipe, ready for the loop.

  Attributes:
    train_step: pure (state, batch) -> (state, metrics).
    eval_step: pure (state, batch with "mask") -> sums.
    eval_summary: sums over the validation set -> {metric: value}.
    train_batches: (start_step, global batch size, seed) -> iterator of
      {name: (B, 32, 32, 1) uint8} global batches from step start_step on
      (every process draws the same ones and keeps its rows).
    val_data: {name: (N, 32, 32, 1) uint8}: the whole validation set.
    steps_per_epoch: optimiser steps per epoch.
    patches_per_example: patches per batch row (1 for pairs, 3 for triplets).
    curves: (metric, axis label) panels of the learning-curve figure.
    title: figure title.
    prepare: applied to a freshly initialised state (e.g. loading a
      pretrained part); identity for most recipes.
  """
  train_step: Callable
  eval_step: Callable
  eval_summary: Callable[[dict], dict]
  train_batches: Callable[[int, int, int], Iterator[dict[str, np.ndarray]]]
  val_data: dict[str, np.ndarray]
  steps_per_epoch: int
  patches_per_example: int
  curves: tuple[tuple[str, str], ...]
  title: str
  prepare: Callable = lambda state: state


def _flat(array: np.ndarray) -> np.ndarray:
  """(L, 16, 32, 32) -> (L * 16, 32, 32, 1)."""
  return np.asarray(array).reshape(-1, layout.PATCH_SIZE, layout.PATCH_SIZE, 1)


def _denoiser_recipe(config, train: PatchSet, val: PatchSet, title: str,
                     prepare: Callable = lambda s: s) -> Recipe:
  def train_batches(start_step, batch_size, seed):
    return pipelines.as_numpy(pipelines.denoiser_dataset(
        train, batch_size=batch_size, seed=seed, start_step=start_step))

  return Recipe(
      train_step=steps.denoiser_train_step, eval_step=steps.denoiser_eval_step,
      eval_summary=steps.denoiser_eval_summary, train_batches=train_batches,
      val_data={"noisy": _flat(val.noisy), "clean": _flat(val.clean)},
      steps_per_epoch=pipelines.denoiser_steps_per_epoch(train.num_labels,
                                                         config.training.batch_size),
      patches_per_example=1, curves=(("loss", "MAE loss (pixels)"), ("psnr", "PSNR (dB)")),
      title=title, prepare=prepare)


def denoiser(config: ml_collections.ConfigDict, data_dir: str | None) -> Recipe:
  """Noisy -> clean on N-HPatches (or the embedded dataset), MAE."""
  train, val = training_data.hpatches_data(config, data_dir)
  prepare = grafting.graft_dncnn(config) if config.transfer.pretrained_workdir else (lambda s: s)
  return _denoiser_recipe(config, train, val, f"{config.model.name}: MAE loss", prepare)


def dncnn_pretrain(config: ml_collections.ConfigDict, data_dir: str | None) -> Recipe:
  """DnCNN on natural photos with AWGN (see `awgn_data`); `data_dir` is not used."""
  if data_dir:
    logging.warning("dncnn_pretrain trains on skimage.data photos; --data_dir %s is ignored",
                    data_dir)
  cfg = config.awgn
  make = functools.partial(awgn_data.awgn_patchset, sigma_min=cfg.sigma_min,
                           sigma_max=cfg.sigma_max, seed=config.seed)
  train = make(tuple(cfg.train_photos), cfg.train_crops, name="awgn_train")
  val = make(tuple(cfg.val_photos), cfg.val_crops, name="awgn_val")
  return _denoiser_recipe(config, train, val,
                        f"DnCNN pretraining (AWGN sigma {cfg.sigma_min:g}..{cfg.sigma_max:g})")


def _check_hardest_in_batch(config: ml_collections.ConfigDict, num_labels: int) -> None:
  """ConfigError unless the descriptor section suits anchor-positive batches."""
  cfg, batch = config.descriptor, config.training.batch_size
  if cfg.loss != "hardest_in_batch":
    if cfg.sos_weight:
      raise errors.ConfigError(f"config.descriptor.sos_weight: expected 0 with loss "
                               f"{cfg.loss!r} (SOS needs anchor-positive batches), found "
                               f"{cfg.sos_weight}")
    return
  if not cfg.distinct_anchors:
    raise errors.ConfigError("config.descriptor.distinct_anchors: expected True for the "
                             "hardest_in_batch loss (its negatives are the batch's other "
                             "labels), found False")
  # The loss sees the global batch (all processes draw the same one).
  if not 2 <= batch <= num_labels:
    raise errors.ConfigError(f"config.training.batch_size: expected 2..{num_labels} distinct "
                             f"training labels for the hardest_in_batch loss, found {batch}")
  if cfg.sos_weight and not cfg.sos_k < batch:
    raise errors.ConfigError(f"config.descriptor.sos_k: expected < the batch of {batch} "
                             f"pairs, found {cfg.sos_k}")


def descriptor(config: ml_collections.ConfigDict, data_dir: str | None) -> Recipe:
  """L2-Net with the loss of `config.descriptor.loss`, validated on fixed triplets.

  "triplet": the seed's triplets (strategy or curriculum from
  `descriptor.schedule`); "hardest_in_batch": anchor-positive batches of
  distinct labels (schedule "regular" or "tough_positive"), HardNet's loss,
  SOS regulariser when `descriptor.sos_weight` > 0. Both are validated on
  the same `val_triplets` fixed regular triplets; `examples_per_epoch`
  counts training triplets or pairs. With several processes each draws its
  share of a batch on its own, so labels are distinct within a share (two
  shares may repeat a label, rarely when the labels far outnumber the batch).
  """
  train, val = training_data.hpatches_data(config, data_dir)
  step = steps.DESCRIPTOR_LOSSES[_descriptor_loss(config, train)][0]   # checked before denoising
  train_source, val_pixels = descriptor_inputs.sources(config, train, val)
  cfg = config.descriptor
  options = {"margin": cfg.margin, "bn_passes": cfg.bn_passes, "augment": cfg.augment}
  if cfg.loss == "hardest_in_batch":
    options.update(sos_weight=cfg.sos_weight, sos_k=cfg.sos_k)
  return _descriptor_recipe(config, train, val_pixels, train_source=train_source,
                          train_step=functools.partial(step, **options),
                          title=f"L2-Net ({config.input.source} input, {cfg.schedule})")


def _descriptor_loss(config: ml_collections.ConfigDict, train: PatchSet) -> str:
  """`config.descriptor.loss` (a known loss: `config_validation`), checked against the batch."""
  _check_hardest_in_batch(config, train.num_labels)
  return config.descriptor.loss


def _descriptor_recipe(config: ml_collections.ConfigDict, train: PatchSet, val_pixels: np.ndarray,
                     *, train_source, train_step: Callable, title: str,
                     with_clean: bool = False, prepare: Callable = lambda s: s) -> Recipe:
  """The Recipe of a descriptor loss: batches, fixed validation triplets, curves.

  Args:
    config: a descriptor or joint config (`config.descriptor` is read).
    train: the training PatchSet.
    val_pixels: (L, 16, 32, 32) uint8 validation patches as the model sees them.
    train_source: what training batches are gathered from (see `pipelines`).
    train_step: the step, with its options bound.
    title: figure title (the loss name is appended).
    with_clean: training batches also carry the clean patches.
    prepare: applied to a fresh state.
  """
  cfg = config.descriptor
  schedule = config_validation.parse_schedule(cfg.schedule)
  pairs = cfg.loss == "hardest_in_batch"

  def train_batches(start_step, batch_size, seed):
    if pairs:
      return pipelines.as_numpy(pipelines.anchor_positive_dataset(
          train, batch_size=batch_size, seed=seed, pairs_per_epoch=cfg.examples_per_epoch,
          schedule=schedule, source=train_source, start_step=start_step,
          with_clean=with_clean))
    return pipelines.as_numpy(pipelines.descriptor_dataset(
        train, batch_size=batch_size, seed=seed, triplets_per_epoch=cfg.examples_per_epoch,
        schedule=schedule, far_gap=cfg.far_gap, source=train_source,
        distinct_anchors=cfg.distinct_anchors, start_step=start_step, with_clean=with_clean))

  rng = np.random.default_rng([config.seed, 11])
  num_val_labels = val_pixels.shape[0]
  index = triplets.sample_triplets(rng, num_val_labels, cfg.val_triplets, "regular").flat()
  pixels = _flat(val_pixels)
  if pairs:
    loss_name = "hardest-in-batch loss" + (f" + {cfg.sos_weight:g} SOS" if cfg.sos_weight else "")
  else:
    loss_name = "triplet loss"
  return Recipe(
      train_step=train_step,
      eval_step=functools.partial(steps.DESCRIPTOR_LOSSES[cfg.loss][1], margin=cfg.margin),
      eval_summary=steps.descriptor_eval_summary, train_batches=train_batches,
      val_data={k: pixels[index[:, i]] for i, k in enumerate(("anchor", "positive", "negative"))},
      steps_per_epoch=pipelines.descriptor_steps_per_epoch(cfg.examples_per_epoch,
                                                           config.training.batch_size),
      patches_per_example=2 if pairs else 3,
      curves=(("loss", loss_name), ("active_fraction", "active pairs" if pairs
                                    else "active triplets")),
      title=f"{title}: {loss_name}", prepare=prepare)


def joint(config: ml_collections.ConfigDict, data_dir: str | None) -> Recipe:
  """A trained denoiser and descriptor fine-tuned end to end on noisy patches.

  The model is `denoise_describe` (denoiser, then descriptor); batches are
  the descriptor loss's batches of noisy patches with their clean
  counterparts; the loss is the descriptor loss + `finetune.mae_weight` x the
  denoiser's MAE (`steps.joint_train_step`). Validated on fixed regular
  triplets of noisy patches through both networks, with the descriptor
  loss's own criterion.
  """
  train, val = training_data.hpatches_data(config, data_dir)
  cfg = config.descriptor
  loss = _descriptor_loss(config, train)
  step = functools.partial(steps.joint_train_step, loss=loss, mae_weight=config.finetune.mae_weight,
                           margin=cfg.margin, bn_passes=cfg.bn_passes, sos_weight=cfg.sos_weight,
                           sos_k=cfg.sos_k, augment=cfg.augment)
  return _descriptor_recipe(
      config, train, val.noisy, train_source="noisy", train_step=step, with_clean=True,
      prepare=grafting.load_pair(config),
      title=f"Joint {config.model.kwargs.denoiser.name} + {config.model.kwargs.descriptor.name} "
            f"({cfg.schedule}, MAE x {config.finetune.mae_weight:g})")


RECIPES: dict[str, Callable[[ml_collections.ConfigDict, str | None], Recipe]] = {
    "denoiser": denoiser,
    "descriptor": descriptor,
    "dncnn_pretrain": dncnn_pretrain,
    "joint": joint,
}


def get_recipe(config: ml_collections.ConfigDict, data_dir: str | None) -> Recipe:
  """Builds the recipe `config.recipe`; ConfigError lists the known recipes."""
  if config.recipe not in RECIPES:
    raise errors.ConfigError(f"config.recipe: unknown {config.recipe!r}; "
                             f"known: {', '.join(RECIPES)}")
  return RECIPES[config.recipe](config, data_dir)
