"""Arrays exchanged between task files, kernels and reports.

Sequence references are integer indices into `DescriptorSet.sequences`;
image types t follow the official task files: 0 = `ref`, k in 1..5 = image
`<level>k` of the level being scored (e, h or t).
"""

import dataclasses

import numpy as np

# The three HPatches benchmarks, in the order every table and document lists them.
BENCHMARKS = ("verification", "matching", "retrieval")


@dataclasses.dataclass(frozen=True)
class DescriptorSet:
  """Descriptors of every patch of the test sequences of a split.

  Attributes:
    sequences: sequence names, in split order.
    offsets: (S + 1,) int64; rows offsets[s]:offsets[s + 1] belong to sequence s.
    descs: (L, 16, D) float32; axis 1 follows `layout.IMAGE_TYPES`.
  """
  sequences: tuple[str, ...]
  offsets: np.ndarray
  descs: np.ndarray

  def __post_init__(self):
    n = len(self.sequences)
    if self.offsets.shape != (n + 1,) or (n and self.offsets[0] != 0):
      raise ValueError(f"offsets must have shape ({n + 1},) starting at 0, got {self.offsets}")
    if self.descs.ndim != 3 or self.descs.shape[:2] != (int(self.offsets[-1]), 16):
      raise ValueError(f"descs must be (L={int(self.offsets[-1])}, 16, D), "
                       f"got {self.descs.shape}")

  @property
  def dim(self) -> int:
    return int(self.descs.shape[2])

  def counts(self) -> np.ndarray:
    """(S,) int64: patches per sequence."""
    return np.diff(self.offsets)


@dataclasses.dataclass(frozen=True)
class PairList:
  """One verification pair file (positives, intra or inter negatives), N rows.

  All fields (N,) int64: seq1/seq2 index `DescriptorSet.sequences`, t1/t2 in
  0..5, idx1/idx2 are patch rows within their sequence.
  """
  seq1: np.ndarray
  t1: np.ndarray
  idx1: np.ndarray
  seq2: np.ndarray
  t2: np.ndarray
  idx2: np.ndarray

  def __len__(self) -> int:
    return int(self.seq1.shape[0])


@dataclasses.dataclass(frozen=True)
class VerificationTask:
  """The three official verification files of a split."""
  positives: PairList
  intra_negatives: PairList
  inter_negatives: PairList


@dataclasses.dataclass(frozen=True)
class RetrievalTask:
  """The official retrieval lists of a split, in file order.

  Attributes:
    queries: (Q, 2) int64 rows (sequence index, patch row), `ref` patches.
    distractors: (M, 2) int64 rows (sequence index, patch row), `ref` patches.
  """
  queries: np.ndarray
  distractors: np.ndarray


RETRIEVAL_POOL_SIZES = (100, 500, 1000, 5000, 10000, 15000, 20000)
