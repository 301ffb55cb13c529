"""Task files generated as the benchmark generates them: verification pairs, retrieval lists.

Files are generated for the dataset at hand with the draw stream of the
benchmark's generators (`gen_verif` and `gen_retrieval` in its
`python/utils/tasks.py`): numpy's legacy MT19937 seeded with 42, the same
calls in the same order, so the same sequences, counts (and, for retrieval,
pixels) give the rows the official generator writes, vectorised where numpy
allows (the notes below the constants say how).
"""

from collections.abc import Sequence

import numpy as np

from nhp_jax import progress
from nhp_jax.errors import DataError
from nhp_jax.evaluation import types

OFFICIAL_SEED = 42
OFFICIAL_N_PAIRS = 1_000_000
OFFICIAL_N_QUERIES = 10_000       # rows of the shipped query lists
OFFICIAL_N_DISTRACTORS = 20_000   # rows of the shipped distractor lists
# gen_retrieval draws 4 candidates per query and 10 per distractor before
# dropping untextured and repeated patches.
QUERY_DRAWS_PER_ROW = 4
DISTRACTOR_DRAWS_PER_ROW = 10
MIN_PATCH_STD = 10.0               # retrieval keeps patches whose pixel std is above this
NUM_TYPES = 5                      # gen_verif draws image types from 0..4 (0 = ref)

# Facts about numpy's legacy RandomState used below (its stream is frozen):
# `choice(a, n)` (replace, no p) is `randint(0, len(a), n)`; `choice(a, 2,
# replace=False)` is `permutation(len(a))[:2]`, a Fisher-Yates shuffle that
# draws j in 0..i for i = len-1 down to 1; every bounded draw below 2**32 is
# "next 32-bit output & mask, rejected while > bound", whether it comes from
# randint with scalar or per-element bounds or from the shuffle. So per-row
# `randint(k)` loops become one randint with an array of bounds, and the
# permutations of 5 types one randint with bounds (5, 4, 3, 2) per row. The
# permutations of the patch indices stay one C shuffle per row: their draw
# count per row is random (rejections), so no numpy expression yields their
# first two outputs faster than the shuffle itself.

# Rows between progress updates of the verification draw (about 1 s at 1M rows).
_PROGRESS_ROWS = 20_000


def _check_counts(counts: np.ndarray, minimum: int, what: str) -> None:
  if counts.ndim != 1 or not len(counts):
    raise DataError(f"{what}: expected patch counts of at least one sequence, found "
                    f"shape {counts.shape}")
  if counts.min() < minimum:
    s = int(np.argmin(counts))
    raise DataError(f"{what}: expected at least {minimum} patches per sequence, found "
                    f"{int(counts[s])} in sequence #{s}")


def _first_two_of_permutations(rs: np.random.RandomState, n: int, rows: int) -> np.ndarray:
  """(rows, 2) int64: `rs.permutation(n)[:2]` for each row in turn, in one draw call."""
  bounds = np.arange(n, 1, -1)                   # j in 0..i for i = n-1 .. 1
  draws = rs.randint(0, np.tile(bounds, rows)).reshape(rows, n - 1)
  perm = np.tile(np.arange(n, dtype=np.int64), (rows, 1))
  r = np.arange(rows)
  for step, i in enumerate(range(n - 1, 0, -1)):
    j = draws[:, step]
    held = perm[r, i].copy()
    perm[r, i] = perm[r, j]
    perm[r, j] = held
  return perm[:, :2]


def generate_verification(counts: Sequence[int] | np.ndarray,
                          n_pairs: int = OFFICIAL_N_PAIRS) -> types.VerificationTask:
  """The three pair files `gen_verif` writes for these test sequences.

  With HPatches' split-a counts this reproduces the first rows of the
  shipped split-a files that the benchmark's documentation prints (see
  tests/evaluation/test_task_files.py).

  Args:
    counts: (S,) int, patches per test sequence, in split order (the order
      `np.random.choice(split['test'], ...)` draws from).
    n_pairs: rows per file (official: 1,000,000).

  Returns:
    Positives (s, t1, i, s, t2, i), intra negatives (s, t1, i, s, t2, j) and
    inter negatives (s, t1, i, s', t2, r), t1 != t2 in 0..4, i != j.

  Raises:
    DataError: a sequence with fewer than 2 patches.
  """
  counts = np.asarray(counts, np.int64)
  _check_counts(counts, 2, "verification pairs")
  n = int(n_pairs)
  if n < 0:
    raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
  rs = np.random.RandomState(OFFICIAL_SEED)
  seq = rs.randint(0, len(counts), size=n)
  idx = np.empty((n, 2), np.int64)
  work = np.empty(int(counts.max()), np.int64)
  ramp = np.arange(int(counts.max()), dtype=np.int64)
  with progress.Progress(n, "verification pairs", unit="rows") as bar:
    for r, k in enumerate(counts[seq].tolist()):   # one shuffle per row, as gen_verif draws
      perm = work[:k]
      perm[:] = ramp[:k]
      rs.shuffle(perm)
      idx[r] = perm[:2]
      if r % _PROGRESS_ROWS == _PROGRESS_ROWS - 1:
        bar.update(_PROGRESS_ROWS)
    bar.update(n - bar.done)
  kinds = _first_two_of_permutations(rs, NUM_TYPES, n)
  seq_inter = rs.randint(0, len(counts), size=n)
  idx_inter = rs.randint(0, counts[seq_inter]) if n else np.zeros(0, np.int64)
  seq, seq_inter, idx_inter = (a.astype(np.int64) for a in (seq, seq_inter, idx_inter))
  t1, t2 = kinds[:, 0], kinds[:, 1]
  return types.VerificationTask(
      positives=types.PairList(seq, t1, idx[:, 0], seq, t2, idx[:, 0]),
      intra_negatives=types.PairList(seq, t1, idx[:, 0], seq, t2, idx[:, 1]),
      inter_negatives=types.PairList(seq, t1, idx[:, 0], seq_inter, t2, idx_inter))


def textured(patches: np.ndarray, min_std: float = MIN_PATCH_STD) -> np.ndarray:
  """Which patches have a pixel std above `min_std` (gen_retrieval's `np.std(p) > 10`).

  Decided exactly in integers: n * sum(x^2) - sum(x)^2 against
  (min_std * n)^2; only patches whose variance equals min_std^2 exactly, where
  float rounding decides, are passed to np.std as the benchmark does.

  Args:
    patches: (N, H, W) uint8, pixel values 0..255.
    min_std: threshold, grey levels.

  Returns:
    (N,) bool.
  """
  n_pix = patches.shape[1] * patches.shape[2]
  flat = patches.reshape(len(patches), n_pix).astype(np.int64)
  spread = n_pix * (flat * flat).sum(axis=1) - flat.sum(axis=1) ** 2  # n^2 * variance
  limit = (min_std * n_pix) ** 2
  keep = spread > limit
  for i in np.flatnonzero(spread == limit):
    keep[i] = np.std(patches[i]) > min_std
  return keep


def _first_unique(rows: np.ndarray, width: int) -> np.ndarray:
  """rows (M, 2) without repeats, first occurrences in order (pandas' drop_duplicates)."""
  keys = rows[:, 0] * width + rows[:, 1]
  _, first = np.unique(keys, return_index=True)
  return rows[np.sort(first)]


def generate_retrieval(ref_patches: Sequence[np.ndarray],
                       n_queries: int = OFFICIAL_N_QUERIES,
                       n_distractors: int = OFFICIAL_N_DISTRACTORS) -> types.RetrievalTask:
  """The query and distractor lists `gen_retrieval` writes for these test sequences.

  The shipped lists hold 10,000 queries, so the benchmark ran it with
  N_queries = 10,000 (its default is 5,000): 40,000 query and 200,000
  distractor candidates are drawn, untextured (pixel std <= 10) and repeated
  patches dropped, the first `n_queries` kept, then the first `n_distractors`
  distractors that are not queries.

  Args:
    ref_patches: per test sequence, in split order, its `ref` patches
      (N_s, H, W) uint8, 0..255 (the pixels the std test sees; HPatches used
      its 65x65 patches).
    n_queries, n_distractors: list lengths (at most; fewer when the data runs out).

  Returns:
    The two lists as (sequence index, patch row) rows.
  """
  counts = np.array([len(p) for p in ref_patches], np.int64)
  _check_counts(counts, 1, "retrieval lists")
  rs = np.random.RandomState(OFFICIAL_SEED)
  q_seq = rs.randint(0, len(counts), size=QUERY_DRAWS_PER_ROW * int(n_queries))
  q_idx = rs.randint(0, counts[q_seq]) if len(q_seq) else q_seq
  d_seq = rs.randint(0, len(counts), size=DISTRACTOR_DRAWS_PER_ROW * int(n_distractors))
  d_idx = rs.randint(0, counts[d_seq]) if len(d_seq) else d_seq
  offsets = np.concatenate([[0], np.cumsum(counts)])
  keep = np.concatenate([textured(p) for p in ref_patches])
  width = int(counts.max())

  def candidates(seq, idx):
    rows = np.stack([seq, idx], axis=1).astype(np.int64).reshape(-1, 2)
    return _first_unique(rows[keep[offsets[rows[:, 0]] + rows[:, 1]]], width)

  queries = candidates(q_seq, q_idx)[:int(n_queries)]
  distractors = candidates(d_seq, d_idx)
  taken = np.isin(distractors[:, 0] * width + distractors[:, 1],
                  queries[:, 0] * width + queries[:, 1])
  return types.RetrievalTask(queries=queries, distractors=distractors[~taken][:int(n_distractors)])


def retrieval_sizes(ref_patches: Sequence[np.ndarray]) -> tuple[int, int]:
  """(n_queries, n_distractors) for generated lists: official unless the data is too small.

  HPatches' test splits hold well over 30,000 textured `ref` patches, so they
  get the official 10,000 queries and 20,000 distractors (and the official
  rows). A smaller dataset would see every textured patch become a query and
  no distractor remain, making every retrieval AP 1; there a third of the
  textured patches become queries and the rest distractors.

  Args:
    ref_patches: per test sequence, its `ref` patches (N_s, H, W) uint8.
  """
  textured_count = int(sum(int(textured(p).sum()) for p in ref_patches))
  if textured_count >= OFFICIAL_N_QUERIES + OFFICIAL_N_DISTRACTORS:
    return OFFICIAL_N_QUERIES, OFFICIAL_N_DISTRACTORS
  n_queries = max(1, textured_count // 3)
  return n_queries, max(1, textured_count - n_queries)
