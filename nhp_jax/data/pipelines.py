"""tf.data input pipelines: denoiser pairs, descriptor triplets and anchor-positive pairs.

Design, chosen by measurement (benchmarks/pipeline_throughput.py): the indices
of a whole epoch are drawn at once in numpy (`triplets.py`, one
`tf.numpy_function` call per epoch, the next epoch drawn ahead); tf.data slices
them into batches; a parallel `tf.numpy_function` gathers each batch's pixels
with one numpy fancy-index from the (possibly memory-mapped) uint8 PatchSet
array; the result is prefetched. The pixels are never copied into TensorFlow,
so a memory-mapped cache stays on disk until touched, and numpy releases the
GIL while it gathers.

Batches stay uint8, (B, 32, 32, 1), pixel values 0..255: a quarter of the
host-to-device traffic of float32. The train step casts to float32 on the
device.

Determinism and resume: the batches of epoch e depend only on (seed, e)
through `np.random.default_rng([seed, e])`, so `start_step=s` yields exactly
the batches an uninterrupted run yields from step s on, and the same seed
gives the same batches in every run. `num_epochs` counts from epoch 0: the
stream ends after step num_epochs * steps_per_epoch whatever start_step is.

TensorFlow runs on the CPU only: this module hides every GPU from it at import.
"""

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")

from nhp_jax import errors  # noqa: E402  (after hiding the GPUs from TF)
from nhp_jax.data import layout  # noqa: E402
from nhp_jax.data import patchset as patchset_lib  # noqa: E402
from nhp_jax.data import triplets  # noqa: E402

_P = layout.PATCH_SIZE
SOURCES = ("clean", "noisy")
# Fixed parallelism instead of tf.data's autotuning: the pipelines run
# 400-1000x faster than the train steps consume (benchmarks/README.md), and
# an autotuned iterator's model thread can hold up the iterator's deletion for
# up to its optimisation period (seen: 6-41 s at the end of training stages).
GATHER_CALLS = 4
PREFETCH_BATCHES = 2


def _check_positive(name: str, value: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise errors.ConfigError(f"{name} must be an int >= 1, got {value!r}")


def _check_stream(seed: int, start_step: int, num_epochs: int | None) -> None:
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise errors.ConfigError(f"seed must be an int >= 0, got {seed!r}")
  if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) \
      or start_step < 0:
    raise errors.ConfigError(f"start_step must be an int >= 0, got {start_step!r}")
  if num_epochs is not None:
    _check_positive("num_epochs", num_epochs)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
  """The generator every random choice of epoch `epoch` comes from."""
  return np.random.default_rng([seed, epoch])


def denoiser_steps_per_epoch(num_labels: int, batch_size: int, *,
                             drop_remainder: bool = True) -> int:
  """Batches per denoiser epoch: floor (or ceil) of num_labels * 16 / batch_size."""
  _check_positive("batch_size", batch_size)
  num = num_labels * layout.NUM_IMAGES
  return num // batch_size if drop_remainder else -(-num // batch_size)


def descriptor_steps_per_epoch(examples_per_epoch: int, batch_size: int) -> int:
  """Batches per descriptor epoch: examples (triplets or pairs) per epoch // batch_size."""
  _check_positive("batch_size", batch_size)
  _check_positive("examples_per_epoch", examples_per_epoch)
  return examples_per_epoch // batch_size


def denoiser_epoch_indices(num_labels: int, seed: int, epoch: int, *,
                           shuffle: bool = True) -> np.ndarray:
  """Every patch of denoiser epoch `epoch`, in the order its batches take them.

  Args:
    num_labels: L, labels of the PatchSet.
    seed: >= 0.
    epoch: >= 0.
    shuffle: random order (from (seed, epoch) only), else load order.

  Returns:
    (L * 16,) int32 `triplets.flat_index` values; batch k of the epoch is
    rows k * B .. (k + 1) * B - 1.
  """
  return triplets.pair_order(epoch_rng(seed, epoch), num_labels, shuffle=shuffle)


def descriptor_epoch_indices(num_labels: int, seed: int, epoch: int, *, batch_size: int,
                             triplets_per_epoch: int,
                             schedule: str | Sequence[tuple[str, int]] = "regular",
                             far_gap: int = triplets.DEFAULT_FAR_GAP,
                             distinct_anchors: bool = True) -> np.ndarray:
  """The triplets of descriptor epoch `epoch`, in the order its batches take them.

  Args:
    num_labels: L, labels of the PatchSet.
    seed: >= 0.
    epoch: >= 0; picks the strategy from `schedule`.
    batch_size: B.
    triplets_per_epoch: the epoch draws (triplets_per_epoch // B) * B triplets.
    schedule: a strategy name or a curriculum of (strategy, epochs); see
      `triplets.strategy_for_epoch` (the last entry continues forever).
    far_gap: minimum label distance of far negatives.
    distinct_anchors: anchor labels distinct within each batch, as the Keras
      baseline; needs B <= the number of possible anchors.

  Returns:
    (steps * B, 3) int32 `triplets.flat_index` values of anchor, positive,
    negative; batch k of the epoch is rows k * B .. (k + 1) * B - 1.
  """
  steps = descriptor_steps_per_epoch(triplets_per_epoch, batch_size)
  return triplets.sample_triplets(
      epoch_rng(seed, epoch), num_labels, steps * batch_size,
      triplets.strategy_for_epoch(schedule, epoch), far_gap=far_gap,
      distinct_block=batch_size if distinct_anchors else None).flat()


def anchor_positive_epoch_indices(num_labels: int, seed: int, epoch: int, *,
                                  batch_size: int, pairs_per_epoch: int,
                                  schedule: str | Sequence[tuple[str, int]] = "regular"
                                  ) -> np.ndarray:
  """The anchor-positive pairs of epoch `epoch`, in the order its batches take them.

  Args:
    num_labels: L, labels of the PatchSet.
    seed: >= 0.
    epoch: >= 0; picks the strategy ("regular" or "tough_positive") from
      `schedule`.
    batch_size: B; labels are distinct within each batch.
    pairs_per_epoch: the epoch draws (pairs_per_epoch // B) * B pairs.
    schedule: a strategy name or a curriculum of (strategy, epochs).

  Returns:
    (steps * B, 2) int32 `triplets.flat_index` values of anchor and positive;
    batch k of the epoch is rows k * B .. (k + 1) * B - 1.
  """
  steps = descriptor_steps_per_epoch(pairs_per_epoch, batch_size)
  return triplets.sample_anchor_positive(
      epoch_rng(seed, epoch), num_labels, steps * batch_size,
      triplets.strategy_for_epoch(schedule, epoch), batch_size=batch_size).flat()


def _index_batches(epoch_indices: Callable[[int], np.ndarray], *, samples: int,
                   item_shape: tuple[int, ...], batch_size: int, drop_remainder: bool,
                   start_step: int, num_epochs: int | None) -> tf.data.Dataset:
  """Batches of indices, from global step `start_step` on.

  Args:
    epoch_indices: epoch -> (samples, *item_shape) int32, the epoch's samples
      in batch order.
    samples: samples per epoch.
    item_shape: shape of one sample's indices.
    batch_size: B.
    drop_remainder: drop each epoch's last partial batch.
    start_step: first global step.
    num_epochs: epochs counted from 0; None: forever.

  Returns:
    Dataset of (B, *item_shape) int32 (the last batch of an epoch shorter when
    drop_remainder is False).
  """
  full, rest = divmod(samples, batch_size)
  rest = 0 if drop_remainder else rest
  start_epoch, skip = divmod(start_step, full + (rest > 0))
  if num_epochs is None:
    epochs = tf.data.Dataset.counter(start_epoch)
  else:
    epochs = tf.data.Dataset.range(start_epoch, num_epochs)

  def draw(epoch):
    idx = tf.numpy_function(lambda e: epoch_indices(int(e)), [epoch], tf.int32,
                            stateful=False)
    return epoch, tf.ensure_shape(idx, (samples, *item_shape))

  def batches(epoch, idx):
    first = tf.where(epoch == start_epoch, tf.constant(skip, tf.int64), 0)
    whole = tf.reshape(idx[:full * batch_size], (full, batch_size, *item_shape))
    ds = tf.data.Dataset.from_tensor_slices(whole[first:])
    if rest:
      ds = ds.concatenate(tf.data.Dataset.from_tensors(idx[full * batch_size:]))
    return ds

  # The next epoch's indices are drawn while this one is consumed.
  return epochs.map(draw).prefetch(1).flat_map(batches)


def _flat_patches(array: np.ndarray) -> np.ndarray:
  """(L * 16, 32, 32) uint8 view of an (L, 16, 32, 32) array, memmaps included."""
  return np.asarray(array).reshape(-1, _P, _P)


def _source_array(patches: patchset_lib.PatchSet,
                  source: str | np.ndarray) -> np.ndarray:
  """The (L, 16, 32, 32) uint8 array that descriptor batches are gathered from."""
  if isinstance(source, str):
    if source not in SOURCES:
      raise errors.ConfigError(
          f"source must be one of {', '.join(SOURCES)} or an array, got {source!r}")
    return getattr(patches, source)
  expected = patches.clean.shape
  if not isinstance(source, np.ndarray) or source.shape != expected \
      or source.dtype != np.uint8:
    found = (f"{source.dtype} {source.shape}" if isinstance(source, np.ndarray)
             else type(source).__name__)
    raise errors.DataError(
        f"descriptor source array must be uint8 {expected} (e.g. from "
        f"denoise_source), got {found}")
  return source


def _gathered(indices: tf.data.Dataset,
              gather: Callable[[np.ndarray], tuple[np.ndarray, ...]],
              keys: tuple[str, ...], batch_dim: int | None) -> tf.data.Dataset:
  """Index batches -> parallel numpy gather -> dict of uint8 batches, prefetched."""

  def gather_tf(index):
    outs = tf.numpy_function(gather, [index], [tf.uint8] * len(keys), stateful=False)
    return {k: tf.ensure_shape(o, (batch_dim, _P, _P, 1)) for k, o in zip(keys, outs)}

  ds = indices.map(gather_tf, num_parallel_calls=GATHER_CALLS, deterministic=True)
  return ds.prefetch(PREFETCH_BATCHES)


def _gathered_rows(indices: tf.data.Dataset, pixels: np.ndarray, clean: np.ndarray | None,
                   keys: tuple[str, ...], batch_size: int) -> tf.data.Dataset:
  """(B, len(keys)) index batches -> {key: pixels of column k} (+ "clean_"+key from `clean`)."""
  n = len(keys)

  def gather(index):
    # One fancy-index per array for the whole batch: column 0 of every row, then 1, ...
    flat = index.T.reshape(-1)
    x = pixels[flat].reshape(n, batch_size, _P, _P, 1)
    if clean is None:
      return tuple(x)
    return (*x, *clean[flat].reshape(n, batch_size, _P, _P, 1))

  names = keys if clean is None else keys + tuple("clean_" + k for k in keys)
  return _gathered(indices, gather, names, batch_size)


def denoiser_dataset(patches: patchset_lib.PatchSet, *, batch_size: int, seed: int,
                     start_step: int = 0, num_epochs: int | None = None,
                     shuffle: bool = True, drop_remainder: bool = True) -> tf.data.Dataset:
  """(noisy, clean) pairs of every patch, reshuffled every epoch.

  Args:
    patches: the training PatchSet (arrays may be memory-mapped).
    batch_size: B.
    seed: >= 0; epoch e's order comes from (seed, e) only.
    start_step: first global step to yield (resume).
    num_epochs: epochs counted from 0; None repeats forever.
    shuffle: shuffle every epoch, else load order.
    drop_remainder: drop each epoch's last partial batch (static batch size).
      An epoch has `denoiser_steps_per_epoch` batches.

  Returns:
    Dataset of {"noisy", "clean"}: (B, 32, 32, 1) uint8, 0..255.
  """
  _check_stream(seed, start_step, num_epochs)
  num_labels = patches.num_labels
  if denoiser_steps_per_epoch(num_labels, batch_size, drop_remainder=drop_remainder) == 0:
    raise errors.ConfigError(
        f"batch_size {batch_size} exceeds the {num_labels * layout.NUM_IMAGES} "
        "patches of an epoch; lower it or set drop_remainder=False")
  noisy, clean = _flat_patches(patches.noisy), _flat_patches(patches.clean)

  def epoch_indices(epoch):
    return denoiser_epoch_indices(num_labels, seed, epoch, shuffle=shuffle)

  def gather(index):
    return noisy[index][..., None], clean[index][..., None]

  indices = _index_batches(epoch_indices, samples=num_labels * layout.NUM_IMAGES,
                           item_shape=(), batch_size=batch_size,
                           drop_remainder=drop_remainder, start_step=start_step,
                           num_epochs=num_epochs)
  return _gathered(indices, gather, ("noisy", "clean"),
                   batch_size if drop_remainder else None)


def descriptor_dataset(patches: patchset_lib.PatchSet, *, batch_size: int, seed: int,
                       triplets_per_epoch: int,
                       schedule: str | Sequence[tuple[str, int]] = "regular",
                       far_gap: int = triplets.DEFAULT_FAR_GAP,
                       source: str | np.ndarray = "clean",
                       distinct_anchors: bool = True, start_step: int = 0,
                       num_epochs: int | None = None, with_clean: bool = False
                       ) -> tf.data.Dataset:
  """Triplet batches for the descriptor, following a strategy or curriculum.

  Args:
    patches: the training PatchSet (arrays may be memory-mapped).
    batch_size: B.
    seed: >= 0; epoch e's triplets come from (seed, e) only.
    triplets_per_epoch: an epoch has triplets_per_epoch // B batches.
    schedule: a key of `triplets.STRATEGIES` or a curriculum such as
      `triplets.DEFAULT_CURRICULUM`; past its end the last entry continues.
    far_gap: minimum |label difference| of far negatives.
    source: "clean", "noisy", or an (L, 16, 32, 32) uint8 array of
      already-denoised patches (see `denoise_source`).
    distinct_anchors: anchor labels distinct within each batch (Keras
      baseline behaviour).
    start_step: first global step to yield (resume).
    num_epochs: epochs counted from 0; None repeats forever.
    with_clean: also yield the clean patches of the same rows, as
      "clean_anchor", "clean_positive", "clean_negative" (joint fine-tuning).

  Returns:
    Dataset of {"anchor", "positive", "negative"}: (B, 32, 32, 1) uint8, 0..255
    (and their "clean_" counterparts with `with_clean`).

  Raises:
    ConfigError: bad sizes, seed, schedule, far_gap or source name.
    DataError: a source array of the wrong shape or dtype.
  """
  _check_stream(seed, start_step, num_epochs)
  steps = descriptor_steps_per_epoch(triplets_per_epoch, batch_size)
  if steps == 0:
    raise errors.ConfigError(
        f"triplets_per_epoch ({triplets_per_epoch}) must be >= batch_size ({batch_size})")
  schedule = triplets.as_schedule(schedule)
  num_labels = patches.num_labels
  for name, _ in schedule:
    # Fail now, not inside tf.data at the first epoch that uses the strategy.
    triplets.sample_triplets(epoch_rng(seed, 0), num_labels, 0, name, far_gap=far_gap,
                             distinct_block=batch_size if distinct_anchors else None)
  pixels = _flat_patches(_source_array(patches, source))

  def epoch_indices(epoch):
    return descriptor_epoch_indices(
        num_labels, seed, epoch, batch_size=batch_size,
        triplets_per_epoch=triplets_per_epoch, schedule=schedule, far_gap=far_gap,
        distinct_anchors=distinct_anchors)

  indices = _index_batches(epoch_indices, samples=steps * batch_size, item_shape=(3,),
                           batch_size=batch_size, drop_remainder=True,
                           start_step=start_step, num_epochs=num_epochs)
  return _gathered_rows(indices, pixels, _flat_patches(patches.clean) if with_clean else None,
                        ("anchor", "positive", "negative"), batch_size)


def anchor_positive_dataset(patches: patchset_lib.PatchSet, *, batch_size: int, seed: int,
                            pairs_per_epoch: int,
                            schedule: str | Sequence[tuple[str, int]] = "regular",
                            source: str | np.ndarray = "clean", start_step: int = 0,
                            num_epochs: int | None = None, with_clean: bool = False
                            ) -> tf.data.Dataset:
  """Anchor-positive batches of distinct labels, for losses with in-batch negatives.

  Args:
    patches: the training PatchSet (arrays may be memory-mapped).
    batch_size: B, 2 <= B <= the number of labels.
    seed: >= 0; epoch e's pairs come from (seed, e) only.
    pairs_per_epoch: an epoch has pairs_per_epoch // B batches.
    schedule: "regular", "tough_positive" or a curriculum of them.
    source: "clean", "noisy", or an (L, 16, 32, 32) uint8 array of
      already-denoised patches (see `denoise_source`).
    start_step: first global step to yield (resume).
    num_epochs: epochs counted from 0; None repeats forever.
    with_clean: also yield the clean patches of the same rows, as
      "clean_anchor", "clean_positive" (joint fine-tuning).

  Returns:
    Dataset of {"anchor", "positive"}: (B, 32, 32, 1) uint8, 0..255 (and
    their "clean_" counterparts with `with_clean`).

  Raises:
    ConfigError: bad sizes, seed, schedule (far_negative included) or source name.
    DataError: a source array of the wrong shape or dtype.
  """
  _check_stream(seed, start_step, num_epochs)
  steps = descriptor_steps_per_epoch(pairs_per_epoch, batch_size)
  if steps == 0:
    raise errors.ConfigError(
        f"pairs per epoch ({pairs_per_epoch}) must be >= batch_size ({batch_size})")
  schedule = triplets.as_schedule(schedule)
  num_labels = patches.num_labels
  for name, _ in schedule:
    # Fail now, not inside tf.data at the first epoch that uses the strategy.
    triplets.sample_anchor_positive(epoch_rng(seed, 0), num_labels, 0, name,
                                    batch_size=batch_size)
  pixels = _flat_patches(_source_array(patches, source))

  def epoch_indices(epoch):
    return anchor_positive_epoch_indices(num_labels, seed, epoch, batch_size=batch_size,
                                         pairs_per_epoch=pairs_per_epoch, schedule=schedule)

  indices = _index_batches(epoch_indices, samples=steps * batch_size, item_shape=(2,),
                           batch_size=batch_size, drop_remainder=True,
                           start_step=start_step, num_epochs=num_epochs)
  return _gathered_rows(indices, pixels, _flat_patches(patches.clean) if with_clean else None,
                        ("anchor", "positive"), batch_size)


def denoise_source(patches: patchset_lib.PatchSet,
                   denoise_fn: Callable[[np.ndarray], np.ndarray], *,
                   batch_size: int = 1024) -> np.ndarray:
  """Runs a denoiser over every noisy patch, as the descriptor's input.

  Every call gets a full (batch_size, 32, 32, 1) batch (the last one padded
  with zeros, its padded rows discarded) so a jitted function compiles once.
  Outputs are clipped to 0..255 and truncated to uint8, as the course's Keras
  baseline does before describing denoised patches.

  Args:
    patches: PatchSet whose `noisy` patches are denoised.
    denoise_fn: maps (B, 32, 32, 1) uint8 0..255 to (B, 32, 32, 1) float
      (numpy or jax array), pixel units 0..255.
    batch_size: B, patches per call.

  Returns:
    (L, 16, 32, 32) uint8, 0..255, same order as `patches.noisy`.

  Raises:
    DataError: denoise_fn returned the wrong shape.
    NumericsError: denoise_fn returned NaN or Inf.
  """
  _check_positive("batch_size", batch_size)
  noisy = _flat_patches(patches.noisy)
  out = np.empty(noisy.shape, np.uint8)
  for start in range(0, len(noisy), batch_size):
    chunk = noisy[start:start + batch_size]
    batch = np.zeros((batch_size, _P, _P, 1), np.uint8)
    batch[:len(chunk), ..., 0] = chunk
    y = np.asarray(denoise_fn(batch))
    if y.shape != batch.shape:
      raise errors.DataError(
          f"denoise_fn must return shape {batch.shape}, got {y.shape} ({y.dtype})")
    y = y[:len(chunk), ..., 0]
    if not np.isfinite(y).all():
      raise errors.NumericsError(
          f"denoise_fn returned NaN or Inf for patches {start}..{start + len(chunk) - 1}")
    out[start:start + len(chunk)] = np.clip(y, 0, 255).astype(np.uint8)
  return out.reshape(patches.noisy.shape)


def as_numpy(ds: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  """Iterates a dataset as dicts of numpy arrays, for the JAX side (autotuning off)."""
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.with_options(options).as_numpy_iterator()
