"""HPatches task definitions: read the official CSV files, or generate them as the benchmark does.

Verification uses three pair files per split X (`verif_pos_split-X.csv`,
`verif_neg_intra_split-X.csv`, `verif_neg_inter_split-X.csv`; header
`s1,t1,idx1,s2,t2,idx2`), retrieval two lists (`retr_queries_split-X.csv`,
`retr_distractors_split-X.csv`; header `s,idx`). The official retrieval lists
of the six official splits ship in `resources/` (BSD-2-Clause, see
`resources/COPYING.hpatches-benchmark`); the official pair files are 1,000,000
rows each and are read from a `tasks_dir` when the user has them.

Otherwise the files are generated for the dataset at hand with the draw
stream of the benchmark's generators (`gen_verif` and `gen_retrieval` in its
`python/utils/tasks.py`): numpy's legacy MT19937 seeded with 42, the same
calls in the same order, so the same sequences, counts (and, for retrieval,
pixels) give the rows the official generator writes. Generated files are
cached as `.npz` plus CSVs in the official format (the official evaluator
can read them), keyed by split, sequences, counts, sizes and pixels.
"""

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence

from absl import logging
import numpy as np

from nhp_jax import atomic
from nhp_jax.errors import DataError, TaskFileError
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

PAIR_HEADER = ("s1", "t1", "idx1", "s2", "t2", "idx2")
RETRIEVAL_HEADER = ("s", "idx")
PAIR_FILES = {"positives": "verif_pos_split-{}.csv",
              "intra_negatives": "verif_neg_intra_split-{}.csv",
              "inter_negatives": "verif_neg_inter_split-{}.csv"}
RETRIEVAL_FILES = {"queries": "retr_queries_split-{}.csv",
                   "distractors": "retr_distractors_split-{}.csv"}
VENDORED_DIR = os.path.join(os.path.dirname(__file__), "resources")
TASKS = ("verification", "retrieval")

# Bump when generation or the cache layout changes: the cache keys on it.
CACHE_VERSION = 1
CACHE_SUBDIR = os.path.join(".nhp_cache", "tasks")

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_MAX_IMAGE_TYPE = 5  # task files use 0 = ref and k = image <level>k, k in 1..5


# ----------------------------------------------------------------------------
# Reading and writing the official CSV format.
# ----------------------------------------------------------------------------

def _lines_of(path: str) -> tuple[list[bytes], list[int]]:
  """Non-blank lines of a file (as pandas reads it) and their 1-based line numbers."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise TaskFileError(f"{path}: task file not found") from None
  except IsADirectoryError:
    raise TaskFileError(f"{path}: expected a CSV task file, found a folder") from None
  # A UTF-8 byte-order mark (spreadsheet exports) is not part of the header; pandas drops it too.
  lines = data.removeprefix(b"\xef\xbb\xbf").splitlines()
  if all(line.strip() for line in lines):
    return lines, list(range(1, len(lines) + 1))
  keep = [i for i, line in enumerate(lines) if line.strip()]
  return [lines[i] for i in keep], [i + 1 for i in keep]


def _read_table(path: str, header: tuple[str, ...]) -> tuple[np.ndarray, list[int]]:
  """Cells of a CSV file with the given header.

  Returns:
    (cells, line_numbers): cells (R, C) bytes array, C = len(header); the
    1-based file line of each row.
  """
  lines, numbers = _lines_of(path)
  if not lines:
    raise TaskFileError(f"{path}: expected header {','.join(header)}, found an empty file")
  found = tuple(c.strip().decode("utf-8", "replace") for c in lines[0].split(b","))
  if found != header:
    raise TaskFileError(f"{path}: line {numbers[0]}: expected header {','.join(header)}, "
                        f"found {','.join(found)}")
  body, numbers = lines[1:], numbers[1:]
  ncols = len(header)
  cells = b",".join(body).split(b",") if body else []
  if len(cells) != len(body) * ncols:
    for line, number in zip(body, numbers):
      if line.count(b",") != ncols - 1:
        raise TaskFileError(f"{path}: line {number}: expected {ncols} comma-separated "
                            f"columns ({','.join(header)}), found "
                            f"{line.count(b',') + 1}: {line[:80]!r}")
  return np.array(cells, dtype=bytes).reshape(len(body), ncols), numbers


def _int_column(path: str, cells: np.ndarray, numbers: list[int], name: str) -> np.ndarray:
  try:
    return cells.astype(np.int64)
  except (ValueError, OverflowError):
    for value, number in zip(cells.tolist(), numbers):
      text = value.decode("utf-8", "replace").strip()
      if not (text.lstrip("+-").isdigit() and text.isascii()):
        raise TaskFileError(f"{path}: line {number}: expected an integer in column "
                            f"{name!r}, found {text!r}") from None
    raise TaskFileError(f"{path}: column {name!r}: expected 64-bit integers") from None


def _sequence_column(path: str, cells: np.ndarray, numbers: list[int], name: str,
                     sequences: Sequence[str]) -> np.ndarray:
  """Indices into `sequences` of a column of sequence names."""
  names, inverse = np.unique(cells, return_inverse=True)
  index = {s: i for i, s in enumerate(sequences)}
  lookup = np.empty(len(names), np.int64)
  for u, raw in enumerate(names.tolist()):
    seq = raw.decode("utf-8", "replace").strip()
    if seq not in index:
      row = int(np.argmax(inverse == u))
      shown = ", ".join(sequences[:6]) + (" ..." if len(sequences) > 6 else "")
      raise TaskFileError(f"{path}: line {numbers[row]}: column {name!r} names sequence "
                          f"{seq!r}, expected one of the {len(sequences)} sequences "
                          f"being scored ({shown})")
    lookup[u] = index[seq]
  return lookup[inverse.reshape(-1)]


def _check_range(path: str, numbers: list[int], name: str, values: np.ndarray,
                 low: int | np.ndarray, high: int | np.ndarray, what: str) -> None:
  """Raises unless low <= values < high (elementwise; high may depend on the row)."""
  bad = (values < low) | (values >= high)
  if bad.any():
    row = int(np.argmax(bad))
    hi = int(np.broadcast_to(high, values.shape)[row])
    lo = int(np.broadcast_to(low, values.shape)[row])
    raise TaskFileError(f"{path}: line {numbers[row]}: column {name!r} expected "
                        f"{lo} <= {name} < {hi} ({what}), found {int(values[row])}")


def _counts_array(sequences: Sequence[str], counts: Sequence[int] | np.ndarray) -> np.ndarray:
  counts = np.asarray(counts, np.int64)
  if counts.shape != (len(sequences),):
    raise ValueError(f"counts must be ({len(sequences)},) like sequences, got {counts.shape}")
  return counts


def read_pair_file(path: str | os.PathLike, sequences: Sequence[str],
                   counts: Sequence[int] | np.ndarray) -> types.PairList:
  """Reads one official verification pair file.

  Args:
    path: a `verif_*_split-X.csv` file (header `s1,t1,idx1,s2,t2,idx2`).
    sequences: the S sequence names the descriptors hold; the file's names
      are mapped to indices into this list.
    counts: (S,) int, patches per sequence (bounds idx1/idx2).

  Returns:
    The pairs, in file order.

  Raises:
    TaskFileError: missing file, wrong header or column count, non-integer
      cells, an unknown sequence, a type outside 0..5 or an index out of
      range (naming the file, line, expected and found).
  """
  path = os.fspath(path)
  counts = _counts_array(sequences, counts)
  cells, numbers = _read_table(path, PAIR_HEADER)
  cols = {}
  for c, name in enumerate(PAIR_HEADER):
    if name.startswith("s"):
      cols[name] = _sequence_column(path, cells[:, c], numbers, name, sequences)
    else:
      cols[name] = _int_column(path, cells[:, c], numbers, name)
  for k in ("1", "2"):
    _check_range(path, numbers, "t" + k, cols["t" + k], 0, _MAX_IMAGE_TYPE + 1,
                 "0 = ref, k = image <level>k")
    _check_range(path, numbers, "idx" + k, cols["idx" + k], 0, counts[cols["s" + k]],
                 "the patch count of the row's sequence")
  return types.PairList(cols["s1"], cols["t1"], cols["idx1"], cols["s2"], cols["t2"],
                        cols["idx2"])


def read_retrieval_file(path: str | os.PathLike, sequences: Sequence[str],
                        counts: Sequence[int] | np.ndarray) -> np.ndarray:
  """Reads one official retrieval list (queries or distractors).

  Args:
    path: a `retr_*_split-X.csv` file (header `s,idx`).
    sequences, counts: as in `read_pair_file`.

  Returns:
    (M, 2) int64 rows (sequence index, patch row), in file order.

  Raises:
    TaskFileError: as in `read_pair_file`; also a patch listed twice.
  """
  path = os.fspath(path)
  counts = _counts_array(sequences, counts)
  cells, numbers = _read_table(path, RETRIEVAL_HEADER)
  seq = _sequence_column(path, cells[:, 0], numbers, "s", sequences)
  idx = _int_column(path, cells[:, 1], numbers, "idx")
  _check_range(path, numbers, "idx", idx, 0, counts[seq], "the patch count of the row's sequence")
  rows = np.stack([seq, idx], axis=1).reshape(-1, 2)
  _check_unique(path, numbers, rows, sequences, "a retrieval list names each patch once")
  return rows


def _check_unique(path: str, numbers: list[int], rows: np.ndarray, sequences: Sequence[str],
                  why: str) -> None:
  """Raises on the first repeated row of `rows` (R, 2) int64, naming both file lines."""
  seen: dict[tuple[int, int], int] = {}
  for row, key in enumerate(map(tuple, rows.tolist())):
    if key in seen:
      raise TaskFileError(f"{path}: line {numbers[row]}: patch ({sequences[key[0]]}, "
                          f"{key[1]}) repeats line {numbers[seen[key]]}; {why}")
    seen[key] = row


def _csv_text(header: tuple[str, ...], columns: list[list], names: Sequence[str],
              name_columns: tuple[int, ...]) -> str:
  for c in name_columns:
    columns[c] = [names[i] for i in columns[c]]
  body = "".join(",".join(map(str, row)) + "\n" for row in zip(*columns))
  return ",".join(header) + "\n" + body


def pair_file_text(pairs: types.PairList, sequences: Sequence[str]) -> str:
  """The official CSV text of a pair list (what pandas' `to_csv(index=False)` wrote)."""
  cols = [a.tolist() for a in (pairs.seq1, pairs.t1, pairs.idx1, pairs.seq2, pairs.t2,
                               pairs.idx2)]
  return _csv_text(PAIR_HEADER, cols, sequences, (0, 3))


def retrieval_file_text(rows: np.ndarray, sequences: Sequence[str]) -> str:
  """The official CSV text of a retrieval list; rows (M, 2) int (sequence index, patch row)."""
  rows = np.asarray(rows).reshape(-1, 2)
  return _csv_text(RETRIEVAL_HEADER, [rows[:, 0].tolist(), rows[:, 1].tolist()], sequences, (0,))


# ----------------------------------------------------------------------------
# Generation: the official draw stream, vectorised where numpy allows.
# ----------------------------------------------------------------------------
#
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
  for r, k in enumerate(counts[seq].tolist()):
    perm = work[:k]
    perm[:] = ramp[:k]
    rs.shuffle(perm)
    idx[r] = perm[:2]
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


# ----------------------------------------------------------------------------
# Cache of generated files.
# ----------------------------------------------------------------------------

def default_cache_dir(data_dir: str | os.PathLike | None) -> str:
  """`<data_dir>/.nhp_cache/tasks` when writable, else the user's cache folder."""
  if data_dir is not None:
    data_dir = os.fspath(data_dir)
    folder = os.path.join(data_dir, CACHE_SUBDIR)
    with contextlib.suppress(OSError):
      os.makedirs(folder, exist_ok=True)
    if os.path.isdir(folder) and os.access(folder, os.W_OK):
      return folder
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "nhp_jax", "tasks")


def _cache_key(kind: str, split: str, sequences: Sequence[str], counts: np.ndarray,
               **extra) -> str:
  spec = {"version": CACHE_VERSION, "kind": kind, "split": split, "sequences": list(sequences),
          "counts": counts.tolist(), **extra}
  digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
  return f"{kind}-split-{split}-{digest}"


def _write_cache(folder: str, arrays: dict[str, np.ndarray], csvs: dict[str, str],
                 spec: dict) -> None:
  """Writes a cache entry into a temporary sibling, renamed onto `folder` when complete."""
  with atomic.atomic_dir(folder, replace=False) as tmp:
    np.savez(os.path.join(tmp, "arrays.npz"), **arrays)
    for name, text in csvs.items():
      with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(tmp, "spec.json"), "w", encoding="utf-8") as f:
      json.dump(spec, f, indent=1)


def _read_cache(folder: str) -> dict[str, np.ndarray] | None:
  path = os.path.join(folder, "arrays.npz")
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path) as z:
      return {k: z[k] for k in z.files}
  except (OSError, ValueError) as e:
    raise TaskFileError(f"{path}: cached task file is unreadable ({e}); delete "
                        f"{folder} to regenerate it") from None


def _check_cached(path: str, rows: np.ndarray, counts: np.ndarray) -> None:
  """Guards against a cache edited or written by other code: every row must be in range."""
  seq, idx = rows[:, 0], rows[:, 1]
  if ((seq < 0) | (seq >= len(counts))).any() or ((idx < 0) | (idx >= counts[seq])).any():
    raise TaskFileError(f"{path}: cached rows out of range of the current patch counts; "
                        f"delete {os.path.dirname(path)} to regenerate them")


def cached_verification(split: str, sequences: Sequence[str], counts: np.ndarray,
                        n_pairs: int, cache_dir: str) -> tuple[types.VerificationTask, str]:
  """Generated verification pairs, from the cache or generated and cached now.

  Returns:
    (task, folder of the cache entry, holding the official-format CSVs).
  """
  folder = os.path.join(cache_dir, _cache_key("verification", split, sequences, counts,
                                              n_pairs=int(n_pairs)))
  arrays = _read_cache(folder)
  if arrays is None:
    logging.info("generating verification pairs for split %s (%d per file, %d sequences)",
                 split, n_pairs, len(sequences))
    task = generate_verification(counts, n_pairs)
    # int32 halves the cache; every value is a patch or sequence index.
    arrays = {k: np.stack([getattr(getattr(task, k), f) for f in
                           ("seq1", "t1", "idx1", "seq2", "t2", "idx2")], axis=1).astype(np.int32)
              for k in PAIR_FILES}
    csvs = {PAIR_FILES[k].format(split): pair_file_text(getattr(task, k), sequences)
            for k in PAIR_FILES}
    _write_cache(folder, arrays, csvs, {"split": split, "sequences": list(sequences),
                                        "counts": counts.tolist(), "n_pairs": int(n_pairs)})
    logging.info("cached verification pairs in %s", folder)
    return task, folder
  pairs = {}
  for k in PAIR_FILES:
    a = arrays.get(k)
    if a is None or a.ndim != 2 or a.shape[1] != 6:
      raise TaskFileError(f"{folder}: cached pairs {k!r} missing or malformed; delete the "
                          f"folder to regenerate them")
    for cols in ((0, 2), (3, 5)):
      _check_cached(os.path.join(folder, "arrays.npz"), a[:, cols], counts)
    pairs[k] = types.PairList(*(a[:, c].astype(np.int64) for c in range(6)))
  return types.VerificationTask(**pairs), folder


def _pixels_digest(ref_patches: Sequence[np.ndarray]) -> str:
  h = hashlib.sha256()
  for p in ref_patches:
    h.update(str(p.shape).encode())
    h.update(np.ascontiguousarray(p).tobytes())
  return h.hexdigest()


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


def cached_retrieval(split: str, sequences: Sequence[str], ref_patches: Sequence[np.ndarray],
                     cache_dir: str) -> tuple[types.RetrievalTask, str]:
  """Generated retrieval lists (`retrieval_sizes`), from the cache or generated and cached now."""
  counts = np.array([len(p) for p in ref_patches], np.int64)
  n_queries, n_distractors = retrieval_sizes(ref_patches)
  folder = os.path.join(cache_dir, _cache_key(
      "retrieval", split, sequences, counts, n_queries=n_queries,
      n_distractors=n_distractors, pixels=_pixels_digest(ref_patches)))
  arrays = _read_cache(folder)
  if arrays is None:
    logging.info("generating retrieval lists for split %s (%d sequences): %d queries, "
                 "%d distractors at most", split, len(sequences), n_queries, n_distractors)
    task = generate_retrieval(ref_patches, n_queries, n_distractors)
    csvs = {RETRIEVAL_FILES["queries"].format(split): retrieval_file_text(task.queries, sequences),
            RETRIEVAL_FILES["distractors"].format(split):
                retrieval_file_text(task.distractors, sequences)}
    _write_cache(folder, {"queries": task.queries, "distractors": task.distractors}, csvs,
                 {"split": split, "sequences": list(sequences), "counts": counts.tolist()})
    logging.info("cached retrieval lists in %s", folder)
    return task, folder
  for k in ("queries", "distractors"):
    a = arrays.get(k)
    if a is None or a.ndim != 2 or a.shape[1] != 2:
      raise TaskFileError(f"{folder}: cached list {k!r} missing or malformed; delete the "
                          f"folder to regenerate it")
    _check_cached(os.path.join(folder, "arrays.npz"), a, counts)
  return types.RetrievalTask(arrays["queries"].astype(np.int64),
                             arrays["distractors"].astype(np.int64)), folder


# ----------------------------------------------------------------------------
# Choosing official or generated files.
# ----------------------------------------------------------------------------

def _present(folder: str | None, names: Mapping[str, str], split: str) -> dict[str, str] | None:
  """Paths of the files named by `names` in `folder`: all, none (None), or an error if partial."""
  if folder is None:
    return None
  paths = {k: os.path.join(folder, v.format(split)) for k, v in names.items()}
  have = {k: os.path.isfile(p) for k, p in paths.items()}
  if not any(have.values()):
    return None
  if not all(have.values()):
    missing = [os.path.basename(paths[k]) for k in paths if not have[k]]
    raise TaskFileError(f"{folder}: found some task files of split {split!r} but not "
                        f"{', '.join(missing)}")
  return paths


def _vendored_names(split: str) -> set[str] | None:
  """Sequence names of the vendored retrieval lists of `split`, None if none ship."""
  paths = _present(VENDORED_DIR, RETRIEVAL_FILES, split)
  if paths is None:
    return None
  names = set()
  for path in paths.values():
    with open(path, "rb") as f:
      names.update(line.split(b",")[0].decode() for line in f.read().splitlines()[1:] if line)
  return names


def _check_ref_patches(patches: list[np.ndarray], sequences: Sequence[str],
                       counts: np.ndarray) -> None:
  if len(patches) != len(sequences):
    raise DataError(f"ref patches: expected {len(sequences)} sequences, found {len(patches)}")
  for name, p, n in zip(sequences, patches, counts.tolist()):
    if p.ndim != 3 or p.dtype != np.uint8 or len(p) != n:
      raise DataError(f"sequence {name!r}: expected ref patches ({n}, H, W) uint8 as many "
                      f"as its descriptors, found {p.dtype} {p.shape}")


def _sequences_and_counts(descs_or_counts) -> tuple[tuple[str, ...], np.ndarray]:
  if isinstance(descs_or_counts, types.DescriptorSet):
    return descs_or_counts.sequences, descs_or_counts.counts().astype(np.int64)
  names = tuple(descs_or_counts)
  return names, np.array([int(descs_or_counts[n]) for n in names], np.int64)


def load_tasks(split: str,
               descs_or_counts: types.DescriptorSet | Mapping[str, int],
               tasks_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None,
               n_pairs: int = OFFICIAL_N_PAIRS,
               ref_patches: Callable[[], Sequence[np.ndarray]] | None = None,
               cache_dir: str | os.PathLike | None = None,
               tasks: Sequence[str] = TASKS,
               ) -> tuple[types.VerificationTask | None, types.RetrievalTask | None]:
  """The verification pairs and retrieval lists of a split, validated against the descriptors.

  Verification: the three official files from `tasks_dir` when there, else
  generated (`n_pairs` per file) and cached. Retrieval: the official lists
  from `tasks_dir` when there, else the vendored official lists when the
  descriptors hold exactly the sequences they name, else generated from
  the `ref` pixels (`ref_patches`) and cached.

  Args:
    split: split name, e.g. "a" (part of the file names).
    descs_or_counts: the descriptors to score, or {sequence: patch count} in
      split order.
    tasks_dir: folder that may hold official task CSVs of `split`.
    data_dir: the dataset root; its `.nhp_cache/tasks` caches generated files.
    n_pairs: rows per generated verification file.
    ref_patches: called only when retrieval lists must be generated; returns
      per sequence (in the order of `descs_or_counts`) its `ref` patches
      (N_s, H, W) uint8.
    cache_dir: overrides the cache folder (default `default_cache_dir(data_dir)`).
    tasks: which of "verification", "retrieval" to load; the other is None.

  Returns:
    (verification task or None, retrieval task or None).

  Raises:
    TaskFileError: a bad split name, a partial or invalid task file, or
      retrieval lists that must be generated without `ref_patches`.
    DataError: `ref_patches` that disagree with the patch counts.
  """
  unknown = sorted(set(tasks) - set(TASKS))
  if unknown:
    raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
  if not isinstance(split, str) or not _SPLIT_NAME.match(split):
    raise TaskFileError(f"split name: expected letters, digits, '_', '-' or '.', found {split!r}")
  sequences, counts = _sequences_and_counts(descs_or_counts)
  tasks_dir = None if tasks_dir is None else os.fspath(tasks_dir)
  if tasks_dir is not None and not os.path.isdir(tasks_dir):
    raise TaskFileError(f"{tasks_dir}: task folder not found")

  def cache() -> str:  # resolved only when generating: it may create a folder
    return os.fspath(cache_dir) if cache_dir is not None else default_cache_dir(data_dir)

  verification = retrieval = None
  if "verification" in tasks:
    paths = _present(tasks_dir, PAIR_FILES, split)
    if paths is not None:
      logging.info("verification pairs: official files in %s", tasks_dir)
      verification = types.VerificationTask(
          **{k: read_pair_file(p, sequences, counts) for k, p in paths.items()})
    else:
      verification, _ = cached_verification(split, sequences, counts, n_pairs, cache())
  if "retrieval" in tasks:
    paths = _present(tasks_dir, RETRIEVAL_FILES, split)
    if paths is None and _vendored_names(split) == set(sequences):
      paths = _present(VENDORED_DIR, RETRIEVAL_FILES, split)
    if paths is not None:
      logging.info("retrieval lists: official files %s", ", ".join(paths.values()))
      retrieval = types.RetrievalTask(
          **{k: read_retrieval_file(p, sequences, counts) for k, p in paths.items()})
    else:
      if ref_patches is None:
        raise TaskFileError(
            f"split {split!r}: no official retrieval lists for these {len(sequences)} "
            f"sequences (tasks_dir={tasks_dir}); generating them needs the ref patches "
            f"of the dataset (pass its data_dir)")
      patches = list(ref_patches())
      _check_ref_patches(patches, sequences, counts)
      retrieval, _ = cached_retrieval(split, sequences, patches, cache())
  return verification, retrieval
