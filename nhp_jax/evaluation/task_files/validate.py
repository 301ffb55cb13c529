"""Checks of task-file cells: integers, known sequence names, index ranges, no repeated patch.

`csv_io` reads the official CSVs through these; each failure is a
TaskFileError naming the file, the line, what was expected and what was
found.
"""

from collections.abc import Sequence

import numpy as np

from nhp_jax.errors import TaskFileError


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


def _check_unique(path: str, numbers: list[int], rows: np.ndarray, sequences: Sequence[str],
                  why: str) -> None:
  """Raises on the first repeated row of `rows` (R, 2) int64, naming both file lines."""
  seen: dict[tuple[int, int], int] = {}
  for row, key in enumerate(map(tuple, rows.tolist())):
    if key in seen:
      raise TaskFileError(f"{path}: line {numbers[row]}: patch ({sequences[key[0]]}, "
                          f"{key[1]}) repeats line {numbers[seen[key]]}; {why}")
    seen[key] = row
