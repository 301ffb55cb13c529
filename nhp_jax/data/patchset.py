"""PatchSet: the in-memory form of a split, the contract between reader, pipelines and evaluation."""

import dataclasses

import numpy as np

from nhp_jax.data import layout


@dataclasses.dataclass(frozen=True)
class PatchSet:
  """All patches of a list of sequences, label-major.

  Attributes:
    sequences: sequence names, in load order (the order of the split list).
    offsets: (S + 1,) int64; the labels of sequence s are rows
      offsets[s]:offsets[s + 1]. Labels are numbered in load order.
    clean: (L, 16, 32, 32) uint8, pixel values 0..255; axis 1 follows
      `layout.IMAGE_TYPES` (ref, e1..e5, h1..h5, t1..t5). May be a read-only
      np.memmap.
    noisy: (L, 16, 32, 32) uint8, the noisy copies of `clean`, same order.
  """
  sequences: tuple[str, ...]
  offsets: np.ndarray
  clean: np.ndarray
  noisy: np.ndarray

  def __post_init__(self):
    n = len(self.sequences)
    if self.offsets.shape != (n + 1,) or self.offsets[0] != 0:
      raise ValueError(f"offsets must have shape ({n + 1},) and start at 0, "
                       f"got {self.offsets.shape} starting {self.offsets[:1]}")
    shape = (int(self.offsets[-1]), layout.NUM_IMAGES, layout.PATCH_SIZE,
             layout.PATCH_SIZE)
    for name in ("clean", "noisy"):
      arr = getattr(self, name)
      if arr.shape != shape or arr.dtype != np.uint8:
        raise ValueError(f"PatchSet.{name} must be uint8 {shape}, "
                         f"got {arr.dtype} {arr.shape}")

  @property
  def num_labels(self) -> int:
    return int(self.offsets[-1])

  def counts(self) -> np.ndarray:
    """(S,) int64: number of labels (patch rows) per sequence."""
    return np.diff(self.offsets)

  def sequence_of_label(self) -> np.ndarray:
    """(L,) int32: index into `sequences` of each label."""
    return np.repeat(np.arange(len(self.sequences), dtype=np.int32), self.counts())

  def sequence_slice(self, name: str) -> slice:
    """Rows of sequence `name`; KeyError names the known sequences if absent."""
    try:
      s = self.sequences.index(name)
    except ValueError:
      raise KeyError(f"sequence {name!r} not in this PatchSet "
                     f"({len(self.sequences)} sequences: {', '.join(self.sequences[:5])}...)"
                     ) from None
    return slice(int(self.offsets[s]), int(self.offsets[s + 1]))


def from_arrays(per_sequence: dict[str, tuple[np.ndarray, np.ndarray]]) -> PatchSet:
  """Builds a PatchSet from {name: (clean, noisy)} with each (N_s, 16, 32, 32) uint8, in dict order."""
  names = tuple(per_sequence)
  counts = [per_sequence[n][0].shape[0] for n in names]
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  empty = np.zeros((0, layout.NUM_IMAGES, layout.PATCH_SIZE, layout.PATCH_SIZE), np.uint8)
  clean = np.concatenate([per_sequence[n][0] for n in names]) if names else empty
  noisy = np.concatenate([per_sequence[n][1] for n in names]) if names else empty
  return PatchSet(names, offsets, clean, noisy)


def take_labels(patches: PatchSet, labels: np.ndarray) -> PatchSet:
  """The PatchSet of the given labels (sorted, distinct), in memory; empty sequences dropped."""
  labels = np.asarray(labels, np.int64)
  seq = patches.sequence_of_label()[labels]
  keep = np.unique(seq)
  counts = np.bincount(seq, minlength=len(patches.sequences))[keep]
  return PatchSet(tuple(patches.sequences[s] for s in keep),
                  np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  np.asarray(patches.clean[labels]), np.asarray(patches.noisy[labels]))


def first_labels(patches: PatchSet, per_sequence: int) -> PatchSet:
  """The first `per_sequence` labels of every sequence (all of them for 0 or fewer)."""
  if per_sequence <= 0 or (patches.counts() <= per_sequence).all():
    return patches
  labels = np.concatenate([np.arange(patches.offsets[i],
                                     min(patches.offsets[i] + per_sequence, patches.offsets[i + 1]))
                           for i in range(len(patches.sequences))])
  return take_labels(patches, labels)
