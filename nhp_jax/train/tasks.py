"""What differs between the three trainings: data, steps, validation set and plots.

`TASKS[config.task](config, data_dir)` returns a `Task`; the loop
(`loop.py`) drives any of them the same way.

Validation data (`config.data.validation`):
  "heldout" (default): the last `heldout_fraction` of the train split's
    sequences (in the split's order) is set aside and never trained on, so
    picking the best checkpoint by validation loss never looks at the test
    split. The tail, not a random draw, so that the train part stays a
    zero-copy prefix of the memory-mapped split (the official splits list
    their sequences in shuffled order; the embedded dataset lists i_ before
    v_, so there the held-out sequences are v_ ones);
  "test": the test split, as the course's Keras baseline validated.
Either way a fixed random subset of `val_labels` labels keeps each
validation pass cheap: the denoiser is scored on all 16 (noisy, clean) pairs
of each, the descriptor on `descriptor.val_triplets` fixed "regular"
triplets drawn from them (from the same input as training: clean, noisy or
denoised).
"""

import dataclasses
import functools
from collections.abc import Callable, Iterator

import ml_collections
import numpy as np
from absl import logging

from nhp_jax import errors
from nhp_jax.data import layout, pipelines, triplets
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.train import awgn_data, checkpointing, config_validation, steps

PatchSet = patchset_lib.PatchSet


@dataclasses.dataclass(frozen=True)
class Task:
  """A training task, ready for the loop.

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
      pretrained part); identity for most tasks.
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


def take_labels(patches: PatchSet, labels: np.ndarray) -> PatchSet:
  """The PatchSet of the given labels (sorted, distinct), in memory; empty sequences dropped."""
  labels = np.asarray(labels, np.int64)
  seq = patches.sequence_of_label()[labels]
  keep = np.unique(seq)
  counts = np.bincount(seq, minlength=len(patches.sequences))[keep]
  return PatchSet(tuple(patches.sequences[s] for s in keep),
                  np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  np.asarray(patches.clean[labels]), np.asarray(patches.noisy[labels]))


def _random_labels(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
  """min(n, hi - lo) distinct labels of [lo, hi), sorted."""
  return lo + np.sort(rng.choice(hi - lo, size=min(n, hi - lo), replace=False))


def _prefix(patches: PatchSet, num_sequences: int) -> PatchSet:
  """The first sequences, as views (memory maps stay memory maps)."""
  end = int(patches.offsets[num_sequences])
  return PatchSet(patches.sequences[:num_sequences], patches.offsets[:num_sequences + 1],
                  patches.clean[:end], patches.noisy[:end])


def hpatches_data(config: ml_collections.ConfigDict, data_dir: str | None
                  ) -> tuple[PatchSet, PatchSet]:
  """(train, validation) PatchSets of an N-HPatches-layout dataset, as `config.data` says.

  Args:
    config: the experiment config.
    data_dir: dataset root; None: the embedded dataset (generated once).
  """
  # Imported here: the embedded generator and cache are only needed by these tasks.
  from nhp_jax.data import cache, embedded  # pylint: disable=g-import-not-at-top

  cfg = config.data
  root = data_dir or embedded.ensure_embedded(size=cfg.embedded_size, seed=cfg.embedded_seed)
  rng = np.random.default_rng([config.seed, 7])
  train = cache.load_split(root, split=cfg.split, subset="train")
  if cfg.validation == "test":
    pool = cache.load_split(root, split=cfg.split, subset="test")
    first = 0
  else:
    num_seq = len(train.sequences)
    if num_seq < 2:
      raise errors.DataError(f"data.validation 'heldout' needs >= 2 train sequences, "
                             f"found {num_seq}; use data.validation='test'")
    held = min(max(1, round(cfg.heldout_fraction * num_seq)), num_seq - 1)
    pool, train = train, _prefix(train, num_seq - held)
    first = train.num_labels
  val = take_labels(pool, _random_labels(rng, first, pool.num_labels, cfg.val_labels))
  if cfg.max_train_labels:
    train = take_labels(train, _random_labels(rng, 0, train.num_labels, cfg.max_train_labels))
  logging.info("data %s split %s: train %d labels in %d sequences, validation (%s) %d labels "
               "of %s", root, cfg.split, train.num_labels, len(train.sequences), cfg.validation,
               val.num_labels, ", ".join(val.sequences))
  return train, val


def _flat(array: np.ndarray) -> np.ndarray:
  """(L, 16, 32, 32) -> (L * 16, 32, 32, 1)."""
  return np.asarray(array).reshape(-1, layout.PATCH_SIZE, layout.PATCH_SIZE, 1)


def _denoiser_task(config, train: PatchSet, val: PatchSet, title: str,
                   prepare: Callable = lambda s: s) -> Task:
  def train_batches(start_step, batch_size, seed):
    return pipelines.as_numpy(pipelines.denoiser_dataset(
        train, batch_size=batch_size, seed=seed, start_step=start_step))

  return Task(
      train_step=steps.denoiser_train_step, eval_step=steps.denoiser_eval_step,
      eval_summary=steps.denoiser_eval_summary, train_batches=train_batches,
      val_data={"noisy": _flat(val.noisy), "clean": _flat(val.clean)},
      steps_per_epoch=pipelines.denoiser_steps_per_epoch(train.num_labels,
                                                         config.training.batch_size),
      patches_per_example=1, curves=(("loss", "MAE loss (pixels)"), ("psnr", "PSNR (dB)")),
      title=title, prepare=prepare)


def _graft(config: ml_collections.ConfigDict):
  """state -> state with the pretrained DnCNN of `config.transfer` in its frozen part.

  Only a fresh run calls it: a resumed run already has the grafted weights.
  """
  from nhp_jax.models import dncnn  # pylint: disable=g-import-not-at-top

  def prepare(state):
    variables, saved, step = checkpointing.load_variables(
        config.transfer.pretrained_workdir, config.transfer.checkpoint)
    if saved["model"]["name"] != "dncnn":
      raise errors.ConfigError(f"transfer.pretrained_workdir: expected a DnCNN run, found a "
                               f"{saved['model']['name']!r} run")
    ours = config.model.kwargs.get("input_scale", 1.0)
    theirs = saved["model"]["kwargs"].get("input_scale", 1.0)
    if ours != theirs:
      raise errors.ConfigError(f"model.kwargs.input_scale ({ours}) must equal the pretrained "
                               f"DnCNN's ({theirs})")
    grafted = dncnn.graft_pretrained(state.variables, variables)
    logging.info("grafted the DnCNN of %s (step %d) into %s", config.transfer.pretrained_workdir,
                 step, dncnn.FROZEN)
    return state.replace(params=grafted["params"], batch_stats=grafted["batch_stats"])
  return prepare


def denoiser(config: ml_collections.ConfigDict, data_dir: str | None) -> Task:
  """Noisy -> clean on N-HPatches (or the embedded dataset), MAE."""
  train, val = hpatches_data(config, data_dir)
  prepare = _graft(config) if config.transfer.pretrained_workdir else (lambda s: s)
  return _denoiser_task(config, train, val, f"{config.model.name}: MAE loss", prepare)


def dncnn_pretrain(config: ml_collections.ConfigDict, data_dir: str | None) -> Task:
  """DnCNN on natural photos with AWGN (see `awgn_data`); `data_dir` is not used."""
  if data_dir:
    logging.warning("dncnn_pretrain trains on skimage.data photos; --data_dir %s is ignored",
                    data_dir)
  cfg = config.awgn
  make = functools.partial(awgn_data.awgn_patchset, sigma_min=cfg.sigma_min,
                           sigma_max=cfg.sigma_max, seed=config.seed)
  train = make(tuple(cfg.train_photos), cfg.train_crops, name="awgn_train")
  val = make(tuple(cfg.val_photos), cfg.val_crops, name="awgn_val")
  return _denoiser_task(config, train, val,
                        f"DnCNN pretraining (AWGN sigma {cfg.sigma_min:g}..{cfg.sigma_max:g})")


def _descriptor_sources(config, train: PatchSet, val: PatchSet):
  """The pixels the descriptor is trained and validated on: a source name or arrays."""
  source = config.input.source
  if source != "denoised":
    return source, getattr(val, source)
  from nhp_jax import inference  # pylint: disable=g-import-not-at-top
  from nhp_jax.train import state as state_lib  # pylint: disable=g-import-not-at-top

  variables, saved, step = checkpointing.load_variables(config.input.denoiser_workdir,
                                                        config.input.denoiser_checkpoint)
  model = state_lib.build_model(ml_collections.ConfigDict(saved))
  batch = config.input.denoise_batch_size
  fn = inference.make_denoise_fn(model, variables, batch)
  logging.info("denoising the descriptor's inputs with %s (%s, step %d)",
               config.input.denoiser_workdir, saved["model"]["name"], step)
  return (pipelines.denoise_source(train, fn, batch_size=batch),
          pipelines.denoise_source(val, fn, batch_size=batch))


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


def descriptor(config: ml_collections.ConfigDict, data_dir: str | None) -> Task:
  """L2-Net with the loss of `config.descriptor.loss`, validated on fixed triplets.

  "triplet": the seed's triplets (strategy or curriculum from
  `descriptor.schedule`); "hardest_in_batch": anchor-positive batches of
  distinct labels (schedule "regular" or "tough_positive"), HardNet's loss,
  SOS regulariser when `descriptor.sos_weight` > 0. Both are validated on
  the same `val_triplets` fixed regular triplets; `triplets_per_epoch`
  counts training triplets or pairs. With several processes each draws its
  share of a batch on its own, so labels are distinct within a share (two
  shares may repeat a label, rarely when the labels far outnumber the batch).
  """
  train, val = hpatches_data(config, data_dir)
  step = steps.DESCRIPTOR_LOSSES[_descriptor_loss(config, train)][0]   # checked before denoising
  train_source, val_pixels = _descriptor_sources(config, train, val)
  cfg = config.descriptor
  options = {"margin": cfg.margin, "bn_passes": cfg.bn_passes, "augment": cfg.augment}
  if cfg.loss == "hardest_in_batch":
    options.update(sos_weight=cfg.sos_weight, sos_k=cfg.sos_k)
  return _descriptor_task(config, train, val_pixels, train_source=train_source,
                          train_step=functools.partial(step, **options),
                          title=f"L2-Net ({config.input.source} input, {cfg.schedule})")


def _descriptor_loss(config: ml_collections.ConfigDict, train: PatchSet) -> str:
  """`config.descriptor.loss`, checked against the known losses and the batch."""
  loss = config.descriptor.loss
  if loss not in steps.DESCRIPTOR_LOSSES:
    raise errors.ConfigError(f"config.descriptor.loss: unknown {loss!r}; known: "
                             f"{', '.join(steps.DESCRIPTOR_LOSSES)}")
  _check_hardest_in_batch(config, train.num_labels)
  return loss


def _descriptor_task(config: ml_collections.ConfigDict, train: PatchSet, val_pixels: np.ndarray,
                     *, train_source, train_step: Callable, title: str,
                     with_clean: bool = False, prepare: Callable = lambda s: s) -> Task:
  """The Task of a descriptor loss: batches, fixed validation triplets, curves.

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
          train, batch_size=batch_size, seed=seed, pairs_per_epoch=cfg.triplets_per_epoch,
          schedule=schedule, source=train_source, start_step=start_step,
          with_clean=with_clean))
    return pipelines.as_numpy(pipelines.descriptor_dataset(
        train, batch_size=batch_size, seed=seed, triplets_per_epoch=cfg.triplets_per_epoch,
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
  return Task(
      train_step=train_step,
      eval_step=functools.partial(steps.DESCRIPTOR_LOSSES[cfg.loss][1], margin=cfg.margin),
      eval_summary=steps.descriptor_eval_summary, train_batches=train_batches,
      val_data={k: pixels[index[:, i]] for i, k in enumerate(("anchor", "positive", "negative"))},
      steps_per_epoch=pipelines.descriptor_steps_per_epoch(cfg.triplets_per_epoch,
                                                           config.training.batch_size),
      patches_per_example=2 if pairs else 3,
      curves=(("loss", loss_name), ("active_fraction", "active pairs" if pairs
                                    else "active triplets")),
      title=f"{title}: {loss_name}", prepare=prepare)


JOINT_PARTS = ("denoiser", "descriptor")


def _load_pair(config: ml_collections.ConfigDict):
  """state -> state holding the trained denoiser and descriptor of `config.joint`.

  Each run's model section must match `config.model.kwargs.<part>`; the
  optimiser state is initialised again for the loaded parameters. Only a
  fresh run calls it: a resumed run restores its own fine-tuned weights.
  """
  def prepare(state):
    loaded = {}
    for part in JOINT_PARTS:
      workdir = config.joint[f"{part}_workdir"]
      variables, saved, step = checkpointing.load_variables(workdir,
                                                            config.joint[f"{part}_checkpoint"])
      expected = config.model.kwargs[part].to_dict()
      diff = checkpointing.config_differences({"model": saved["model"]}, {"model": expected},
                                              ignore=())
      if diff:
        raise errors.ConfigError(
            f"joint.{part}_workdir: {workdir} holds a {saved['model']['name']!r} run whose model "
            f"differs from config.model.kwargs.{part} ({'; '.join(diff)})")
      logging.info("joint: %s from %s (%s, step %d)", part, workdir, saved["model"]["name"], step)
      loaded[part] = variables
    new = {col: {p: loaded[p][col] for p in JOINT_PARTS if loaded[p].get(col)}
           for col in ("params", "batch_stats")}
    diff = checkpointing.shape_differences(checkpointing.variable_shapes(new),
                                           checkpointing.variable_shapes(state.variables))
    if diff:
      raise errors.ConfigError("joint: the loaded networks do not fit config.model: "
                               + "; ".join(diff[:5]))
    return state.replace(params=new["params"], batch_stats=new["batch_stats"],
                         opt_state=state.tx.init(new["params"]))
  return prepare


def joint(config: ml_collections.ConfigDict, data_dir: str | None) -> Task:
  """A trained denoiser and descriptor fine-tuned end to end on noisy patches.

  The model is `denoise_describe` (denoiser, then descriptor); batches are
  the descriptor loss's batches of noisy patches with their clean
  counterparts; the loss is the descriptor loss + `joint.mae_weight` x the
  denoiser's MAE (`steps.joint_train_step`). Validated on fixed regular
  triplets of noisy patches through both networks, with the descriptor
  loss's own criterion.
  """
  train, val = hpatches_data(config, data_dir)
  cfg = config.descriptor
  loss = _descriptor_loss(config, train)
  step = functools.partial(steps.joint_train_step, loss=loss, mae_weight=config.joint.mae_weight,
                           margin=cfg.margin, bn_passes=cfg.bn_passes, sos_weight=cfg.sos_weight,
                           sos_k=cfg.sos_k, augment=cfg.augment)
  return _descriptor_task(
      config, train, val.noisy, train_source="noisy", train_step=step, with_clean=True,
      prepare=_load_pair(config),
      title=f"Joint {config.model.kwargs.denoiser.name} + {config.model.kwargs.descriptor.name} "
            f"({cfg.schedule}, MAE x {config.joint.mae_weight:g})")


TASKS: dict[str, Callable[[ml_collections.ConfigDict, str | None], Task]] = {
    "denoiser": denoiser,
    "descriptor": descriptor,
    "dncnn_pretrain": dncnn_pretrain,
    "joint": joint,
}


def get_task(config: ml_collections.ConfigDict, data_dir: str | None) -> Task:
  """Builds the task `config.task`; ConfigError lists the known tasks."""
  if config.task not in TASKS:
    raise errors.ConfigError(f"config.task: unknown {config.task!r}; known: {', '.join(TASKS)}")
  return TASKS[config.task](config, data_dir)
