"""Index samplers for training: descriptor triplets and anchor-positive pairs, denoiser pairs.

Pure numpy functions of an explicit `np.random.Generator`, vectorised over all
samples of an epoch. A patch is addressed by (label, image): label = row of the
PatchSet (labels numbered in load order), image = index into
`layout.IMAGE_TYPES`. `flat_index` turns that into the row of the
(L * 16, 32, 32) view of a PatchSet array that the pipelines gather from.

Triplet strategies (`STRATEGIES`), as the seed's report defines them:
  regular: anchor label c1 uniform; negative label c2 uniform over the labels
    != c1; anchor and positive two distinct images of c1's 16, uniform;
    negative image uniform over c2's 16.
  tough_positive: as regular, but the positive image is uniform over the tough
    images t1..t5 other than the anchor image (the anchor image stays uniform
    over all 16, so when it is itself tough the positive has 4 choices).
  far_negative: as regular, but |c2 - c1| >= far_gap (in load order, so the
    negative comes from another sequence when far_gap exceeds a sequence's
    size). c2 is uniform over the allowed labels, c1 uniform over the labels
    that have at least one allowed negative (all labels when
    num_labels >= 2 * far_gap, as on the full training split).

Like the course's Keras baseline (`generate_triplets`), anchor labels can be
made distinct within each block of `distinct_block` consecutive triplets (one
training batch); the marginal of c1 stays uniform. Negatives may equal another
triplet's anchor label, as in the baseline.

Anchor-positive pairs (`sample_anchor_positive`) feed losses that take their
negatives from the batch (HardNet): labels distinct within every batch,
anchor and positive images drawn as in the regular or tough-positive
triplets.
"""

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nhp_jax import errors
from nhp_jax.data import layout

DEFAULT_FAR_GAP = 10_000
# The seed's proposal: tough positives first, then regular, then far negatives.
DEFAULT_CURRICULUM = (("tough_positive", 10), ("regular", 35), ("far_negative", 5))


@dataclasses.dataclass(frozen=True)
class Strategy:
  """How one triplet strategy departs from `regular`.

  Attributes:
    tough_positive: positive image drawn from `layout.TOUGH_IMAGES`.
    far_negative: negative label at least `far_gap` labels from the anchor's.
  """
  tough_positive: bool = False
  far_negative: bool = False


STRATEGIES = {
    "regular": Strategy(),
    "tough_positive": Strategy(tough_positive=True),
    "far_negative": Strategy(far_negative=True),
}


class Triplets(NamedTuple):
  """n triplets; each field is (n, 2) int32 holding [label, image] per row.

  label in [0, num_labels), image in [0, 16) indexing `layout.IMAGE_TYPES`.
  """
  anchor: np.ndarray
  positive: np.ndarray
  negative: np.ndarray

  def flat(self) -> np.ndarray:
    """(n, 3) int32: `flat_index` of anchor, positive, negative per row."""
    return np.stack([flat_index(t[:, 0], t[:, 1]) for t in self], axis=1)


def flat_index(label: np.ndarray, image: np.ndarray) -> np.ndarray:
  """Row of the (L * 16, 32, 32) view of a PatchSet array.

  Args:
    label: (...) int, in [0, L).
    image: (...) int, in [0, 16), same shape as `label`.

  Returns:
    (...) int32 array label * 16 + image.
  """
  return (np.asarray(label, np.int32) * layout.NUM_IMAGES
          + np.asarray(image, np.int32))


def get_strategy(name: str) -> Strategy:
  """Looks up `name` in STRATEGIES; ConfigError lists the known names."""
  try:
    return STRATEGIES[name]
  except (KeyError, TypeError):
    raise errors.ConfigError(
        f"unknown triplet strategy {name!r}; known: {', '.join(STRATEGIES)}"
    ) from None


def max_far_gap(num_labels: int) -> int:
  """Largest gap |c2 - c1| any pair of `num_labels` labels can have."""
  return num_labels - 1


def _uniform_excluding_window(rng: np.random.Generator, center: np.ndarray,
                              num: int, gap: int) -> np.ndarray:
  """Uniform draws from {c in [0, num): |c - center| >= gap}, exactly.

  Args:
    rng: source of randomness.
    center: (n,) int64 in [0, num); each must have at least one allowed value.
    num: size of the value range.
    gap: >= 1; gap 1 means "any value but center".

  Returns:
    (n,) int64.
  """
  below = np.maximum(center - gap + 1, 0)   # values 0 .. center - gap
  above = np.maximum(num - center - gap, 0)  # values center + gap .. num - 1
  u = rng.integers(0, below + above)
  return np.where(u < below, u, u - below + center + gap)


def _distinct_in_blocks(rng: np.random.Generator, num: int, n: int,
                        block: int) -> np.ndarray:
  """n uniform draws from [0, num), pairwise distinct within each block of `block`.

  Each full block is a uniformly random ordered `block`-subset, as drawing
  without replacement one at a time (the Keras baseline's loop) gives; the last
  block may be partial.

  Args:
    rng: source of randomness.
    num: size of the value range; >= block.
    n: number of draws.
    block: block length, >= 1.

  Returns:
    (n,) int64.
  """
  rows = -(-n // block)
  if 2 * block > num:
    # Few values per block: the head of a random permutation per block costs
    # O(num) <= O(2 * block) per block, as cheap as drawing.
    x = np.argsort(rng.random((rows, num)), axis=1)[:, :block]
    return x.reshape(-1)[:n].astype(np.int64)
  x = rng.integers(0, num, (rows, block))
  # Redraw every later copy of a value until none is left. A redraw collides
  # with probability < block / num < 1/2, so few passes are needed. The result
  # is exactly uniform: the procedure commutes with any relabelling of the
  # values, and relabellings act transitively on ordered distinct tuples.
  while True:
    order = np.argsort(x, axis=1, kind="stable")
    sorted_x = np.take_along_axis(x, order, axis=1)
    later_copy = np.zeros_like(x, dtype=bool)
    np.put_along_axis(later_copy, order[:, 1:], sorted_x[:, 1:] == sorted_x[:, :-1],
                      axis=1)
    count = int(later_copy.sum())
    if count == 0:
      return x.reshape(-1)[:n]
    x[later_copy] = rng.integers(0, num, count)


def sample_triplets(rng: np.random.Generator, num_labels: int, n: int,
                    strategy: str = "regular", *, far_gap: int = DEFAULT_FAR_GAP,
                    distinct_block: int | None = None) -> Triplets:
  """Samples n triplets with the named strategy (see module docstring).

  Args:
    rng: source of randomness.
    num_labels: L, number of labels (rows) of the PatchSet; >= 2.
    n: number of triplets, >= 0.
    strategy: a key of STRATEGIES.
    far_gap: minimum |c2 - c1| for "far_negative", in labels; 1..L-1. Ignored
      by the other strategies.
    distinct_block: if set, anchor labels are distinct within each block of
      this many consecutive triplets (the batch size, as the Keras baseline).

  Returns:
    Triplets with n rows.

  Raises:
    ConfigError: unknown strategy, too few labels, a far_gap no pair of labels
      can satisfy (the message names the largest feasible one), or a block
      larger than the number of possible anchors.
  """
  spec = get_strategy(strategy)
  if num_labels < 2:
    raise errors.ConfigError(f"triplets need >= 2 labels, got {num_labels}")
  if n < 0:
    raise errors.ConfigError(f"number of triplets must be >= 0, got {n}")
  gap = 1
  if spec.far_negative:
    if not 1 <= far_gap <= max_far_gap(num_labels):
      raise errors.ConfigError(
          f"far_gap must be in 1..{max_far_gap(num_labels)} (the largest feasible "
          f"gap for {num_labels} labels), got {far_gap}")
    gap = far_gap
  # Anchors with an allowed negative: [0, L - gap) and [gap, L); their union
  # is everything when L >= 2 * gap, otherwise two disjoint intervals.
  low_end = num_labels - gap
  num_anchors = min(num_labels, 2 * low_end)
  if distinct_block is None:
    slot = rng.integers(0, num_anchors, n)
  else:
    if not 1 <= distinct_block <= num_anchors:
      raise errors.ConfigError(
          f"distinct anchors per block of {distinct_block} need a block size in "
          f"1..{num_anchors} (labels that can be anchors with {strategy!r}, "
          f"far_gap {gap}, {num_labels} labels)")
    slot = _distinct_in_blocks(rng, num_anchors, n, distinct_block)
  anchor_label = np.where(slot < low_end, slot, slot - low_end + max(gap, low_end))
  negative_label = _uniform_excluding_window(rng, anchor_label, num_labels, gap)

  anchor_image, positive_image = _anchor_positive_images(rng, n, spec.tough_positive)
  negative_image = rng.integers(0, layout.NUM_IMAGES, n)

  return Triplets(anchor=_pairs(anchor_label, anchor_image),
                  positive=_pairs(anchor_label, positive_image),
                  negative=_pairs(negative_label, negative_image))


def _anchor_positive_images(rng: np.random.Generator, n: int,
                            tough_positive: bool) -> tuple[np.ndarray, np.ndarray]:
  """Anchor image uniform over the 16; positive image another one, uniform.

  With tough_positive the positive is uniform over the tough images other
  than the anchor's.

  Returns:
    (anchor_image, positive_image): (n,) int64 each, in [0, 16), never equal.
  """
  anchor_image = rng.integers(0, layout.NUM_IMAGES, n)
  if tough_positive:
    tough = np.asarray(layout.TOUGH_IMAGES)
    anchor_is_tough = np.isin(anchor_image, tough)
    # Rank of the positive among the tough images, skipping the anchor's.
    k = rng.integers(0, len(tough) - anchor_is_tough.astype(np.int64))
    anchor_rank = np.searchsorted(tough, anchor_image)
    k = k + (anchor_is_tough & (k >= anchor_rank))
    positive_image = tough[k]
  else:
    u = rng.integers(0, layout.NUM_IMAGES - 1, n)
    positive_image = u + (u >= anchor_image)
  return anchor_image, positive_image


class AnchorPositive(NamedTuple):
  """n anchor-positive pairs; each field is (n, 2) int32 [label, image] per row."""
  anchor: np.ndarray
  positive: np.ndarray

  def flat(self) -> np.ndarray:
    """(n, 2) int32: `flat_index` of anchor and positive per row."""
    return np.stack([flat_index(t[:, 0], t[:, 1]) for t in self], axis=1)


def sample_anchor_positive(rng: np.random.Generator, num_labels: int, n: int,
                           strategy: str = "regular", *,
                           batch_size: int) -> AnchorPositive:
  """Samples n anchor-positive pairs for losses that take negatives from the batch.

  Every block of `batch_size` consecutive pairs (one training batch) has
  distinct labels, each a uniformly random ordered subset of the labels, so
  that every other pair of the batch is a true negative (HardNet's sampling).
  Anchor and positive are two distinct images of the label: anchor uniform
  over the 16, positive uniform over the others ("regular") or over the other
  tough images ("tough_positive"). "far_negative" has no meaning here: the
  negatives are the batch's other pairs.

  Args:
    rng: source of randomness.
    num_labels: L, labels of the PatchSet.
    n: number of pairs, >= 0 (the last block may be partial).
    strategy: "regular" or "tough_positive".
    batch_size: B, labels distinct within each block of B; 2 <= B <= L.

  Returns:
    AnchorPositive with n rows.

  Raises:
    ConfigError: unknown or unsupported strategy, n < 0, or B outside 2..L.
  """
  spec = get_strategy(strategy)
  if spec.far_negative:
    raise errors.ConfigError(
        f"strategy {strategy!r} does not apply to anchor-positive batches (their negatives "
        "are the batch's other pairs); use regular or tough_positive")
  if n < 0:
    raise errors.ConfigError(f"number of pairs must be >= 0, got {n}")
  if not 2 <= batch_size <= num_labels:
    raise errors.ConfigError(
        f"anchor-positive batches of {batch_size} distinct labels need 2 <= batch size <= "
        f"{num_labels} (the labels of the training data)")
  label = _distinct_in_blocks(rng, num_labels, n, batch_size)
  anchor_image, positive_image = _anchor_positive_images(rng, n, spec.tough_positive)
  return AnchorPositive(anchor=_pairs(label, anchor_image),
                        positive=_pairs(label, positive_image))


def _pairs(label: np.ndarray, image: np.ndarray) -> np.ndarray:
  """(n, 2) int32 [label, image] rows from two (n,) int arrays."""
  return np.stack([label, image], axis=1).astype(np.int32)


Schedule = tuple[tuple[str, int], ...]


def as_schedule(schedule: str | Sequence[tuple[str, int]]) -> Schedule:
  """Validates a curriculum; a single strategy name means that strategy forever.

  Args:
    schedule: a STRATEGIES key, or a non-empty sequence of (strategy, epochs)
      with epochs >= 1, e.g. DEFAULT_CURRICULUM.

  Returns:
    The schedule as a tuple of (name, epochs) tuples.

  Raises:
    ConfigError: unknown strategy, empty schedule or epochs < 1.
  """
  if isinstance(schedule, str):
    get_strategy(schedule)
    return ((schedule, 1),)
  try:
    entries = tuple((name, epochs) for name, epochs in schedule)
  except (TypeError, ValueError):
    raise errors.ConfigError(
        f"schedule must be a strategy name or (strategy, epochs) pairs, got {schedule!r}"
    ) from None
  if not entries:
    raise errors.ConfigError("schedule must have at least one (strategy, epochs) entry")
  for name, epochs in entries:
    get_strategy(name)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
      raise errors.ConfigError(
          f"schedule entry ({name!r}, {epochs!r}): epochs must be an int >= 1")
  return tuple((str(name), int(epochs)) for name, epochs in entries)


def strategy_for_epoch(schedule: str | Sequence[tuple[str, int]], epoch: int) -> str:
  """Strategy of 0-based `epoch`; epochs past the schedule's end keep its last entry.

  With DEFAULT_CURRICULUM: epochs 0-9 tough_positive, 10-44 regular, 45 and
  later far_negative.
  """
  entries = as_schedule(schedule)
  if epoch < 0:
    raise errors.ConfigError(f"epoch must be >= 0, got {epoch}")
  end = 0
  for name, epochs in entries:
    end += epochs
    if epoch < end:
      return name
  return entries[-1][0]


def pair_order(rng: np.random.Generator, num_labels: int, *,
               shuffle: bool = True) -> np.ndarray:
  """One denoiser epoch: every (label, image) patch once, as a (noisy, clean) pair.

  Args:
    rng: source of randomness (unused when shuffle is False).
    num_labels: L, number of labels of the PatchSet.
    shuffle: random order if True, else label-major load order.

  Returns:
    (L * 16,) int32 `flat_index` values, a permutation of 0 .. L * 16 - 1.
  """
  order = np.arange(num_labels * layout.NUM_IMAGES, dtype=np.int32)
  return rng.permutation(order) if shuffle else order
