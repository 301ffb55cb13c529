"""The official HPatches task CSV format: file names, headers, reading and writing.

Verification uses three pair files per split X (`verif_pos_split-X.csv`,
`verif_neg_intra_split-X.csv`, `verif_neg_inter_split-X.csv`; header
`s1,t1,idx1,s2,t2,idx2`), retrieval two lists (`retr_queries_split-X.csv`,
`retr_distractors_split-X.csv`; header `s,idx`). The official retrieval lists
of the six official splits ship in `resources/` (BSD-2-Clause, see
`resources/COPYING.hpatches-benchmark`); the official pair files are 1,000,000
rows each and are read from a `tasks_dir` when the user has them.
"""

import os
from collections.abc import Sequence

import numpy as np

from nhp_jax.errors import TaskFileError
from nhp_jax.evaluation import types
from nhp_jax.evaluation.task_files import validate

PAIR_HEADER = ("s1", "t1", "idx1", "s2", "t2", "idx2")
RETRIEVAL_HEADER = ("s", "idx")
PAIR_FILES = {"positives": "verif_pos_split-{}.csv",
              "intra_negatives": "verif_neg_intra_split-{}.csv",
              "inter_negatives": "verif_neg_inter_split-{}.csv"}
RETRIEVAL_FILES = {"queries": "retr_queries_split-{}.csv",
                   "distractors": "retr_distractors_split-{}.csv"}
# The evaluation package's resources/ folder (this file is one level below it).
VENDORED_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")
_MAX_IMAGE_TYPE = 5  # task files use 0 = ref and k = image <level>k, k in 1..5


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
  counts = validate._counts_array(sequences, counts)
  cells, numbers = _read_table(path, PAIR_HEADER)
  cols = {}
  for c, name in enumerate(PAIR_HEADER):
    if name.startswith("s"):
      cols[name] = validate._sequence_column(path, cells[:, c], numbers, name, sequences)
    else:
      cols[name] = validate._int_column(path, cells[:, c], numbers, name)
  for k in ("1", "2"):
    validate._check_range(path, numbers, "t" + k, cols["t" + k], 0, _MAX_IMAGE_TYPE + 1,
                          "0 = ref, k = image <level>k")
    validate._check_range(path, numbers, "idx" + k, cols["idx" + k], 0, counts[cols["s" + k]],
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
  counts = validate._counts_array(sequences, counts)
  cells, numbers = _read_table(path, RETRIEVAL_HEADER)
  seq = validate._sequence_column(path, cells[:, 0], numbers, "s", sequences)
  idx = validate._int_column(path, cells[:, 1], numbers, "idx")
  validate._check_range(path, numbers, "idx", idx, 0, counts[seq],
                        "the patch count of the row's sequence")
  rows = np.stack([seq, idx], axis=1).reshape(-1, 2)
  validate._check_unique(path, numbers, rows, sequences, "a retrieval list names each patch once")
  return rows


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
