"""Descriptor folders in the HPatches benchmark's export layout: read (validated) and write.

Layout: `<root>/<seq>/<image>.csv` for the 16 images of `layout.IMAGE_TYPES`,
one row per patch (row i = patch i of the sequence), no header, values
separated by commas or semicolons (the official loader takes either, one per
run; here each file may use either). Reading validates everything before
anything is scored: missing folders or files, non-numeric cells, NaN/Inf,
rows missing or extra against the other images of the sequence, and
descriptor dimensions that differ between images or sequences, each named
by file, line, expected and found.

Parsing uses numpy's C `loadtxt` (since numpy 1.23 it is as fast as
`np.fromstring` and faster than pure-Python splitting); large folders are
parsed by several processes, one sequence per task.
"""

import concurrent.futures
import math
import multiprocessing
import os
import warnings
from collections.abc import Sequence

import numpy as np

from nhp_jax import atomic, progress
from nhp_jax.data import layout
from nhp_jax.errors import DescriptorError
from nhp_jax.evaluation import types

DELIMITERS = (",", ";")
WRITE_FORMAT = "%.9g"  # 9 significant digits: float32 values read back bit for bit
# Below this many bytes of CSV, starting worker processes costs more than it saves.
_PARALLEL_MIN_BYTES = 64 << 20
_MAX_WORKERS = 8


def image_path(root: str | os.PathLike, sequence: str, image: str) -> str:
  """`<root>/<sequence>/<image>.csv`."""
  return os.path.join(os.fspath(root), sequence, f"{image}.csv")


def _delimiter(path: str) -> str:
  """',' or ';', from the first non-blank line of `path`."""
  with open(path, "rb") as f:
    for line in f:
      if line.strip():
        return ";" if b";" in line else ","
  return ","


def _contents(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _locate_problem(data: bytes, delimiter: str) -> str:
  """Line-by-line diagnosis of a file the fast parser rejected: what is wrong and where."""
  dim = None
  for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
    if not line.strip():
      continue
    cells = line.split(delimiter)
    if dim is None:
      dim = len(cells)
    if len(cells) != dim:
      return (f"line {number}: expected {dim} values separated by {delimiter!r} (as on the "
              f"first line), found {len(cells)}")
    for col, cell in enumerate(cells, start=1):
      try:
        float(cell)
      except ValueError:
        return f"line {number}, column {col}: expected a number, found {cell.strip()[:40]!r}"
  if dim is None:  # whitespace-only lines, which the parser does not skip
    return "expected one row of descriptor values per patch, found an empty file (blank lines)"
  return "unparseable content"


def _line_number(data: bytes, row: int) -> int:
  """1-based file line of data row `row` (blank lines are skipped by the parser)."""
  seen = -1
  for number, line in enumerate(data.splitlines(), start=1):
    if line.strip():
      seen += 1
      if seen == row:
        return number
  return row + 1


def read_descriptor_file(path: str | os.PathLike) -> np.ndarray:
  """Reads one `<image>.csv` descriptor file.

  Args:
    path: the CSV file: one row per patch, values separated by ',' or ';'.

  Returns:
    (N, D) float32.

  Raises:
    DescriptorError: missing or empty file, a single column (wrong
      delimiter), rows of different lengths, non-numeric cells or NaN/Inf,
      naming the file, line and column.
  """
  path = os.fspath(path)
  try:
    delimiter = _delimiter(path)
  except FileNotFoundError:
    raise DescriptorError(f"{path}: descriptor file not found") from None
  except IsADirectoryError:
    raise DescriptorError(f"{path}: expected a descriptor CSV file, found a folder") from None
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
      values = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, comments=None, ndmin=2)
  except ValueError:
    raise DescriptorError(f"{path}: {_locate_problem(_contents(path), delimiter)}") from None
  if not values.size:
    raise DescriptorError(f"{path}: expected one row of descriptor values per patch, "
                          f"found an empty file")
  if values.shape[1] < 2:
    raise DescriptorError(f"{path}: expected descriptor values separated by ',' or ';', "
                          f"found 1 column per line (check the delimiter)")
  bad = ~np.isfinite(values)
  if bad.any():
    row, col = (int(i) for i in np.argwhere(bad)[0])
    raise DescriptorError(f"{path}: line {_line_number(_contents(path), row)}, column "
                          f"{col + 1}: expected a finite number, found {values[row, col]}")
  return values.astype(np.float32)


def _read_sequence(root: str, sequence: str) -> np.ndarray:
  """(N, 16, D) float32: the 16 files of one sequence, checked against each other."""
  arrays = []
  for image in layout.IMAGE_TYPES:
    path = image_path(root, sequence, image)
    a = read_descriptor_file(path)
    if arrays:
      first = arrays[0]
      if a.shape[0] != first.shape[0]:
        raise DescriptorError(f"{path}: expected {first.shape[0]} rows (one per patch, as in "
                              f"{layout.IMAGE_TYPES[0]}.csv), found {a.shape[0]}")
      if a.shape[1] != first.shape[1]:
        raise DescriptorError(f"{path}: expected {first.shape[1]}-d descriptors (as in "
                              f"{layout.IMAGE_TYPES[0]}.csv), found {a.shape[1]}-d")
    arrays.append(a)
  return np.stack(arrays, axis=1)


def _check_files(root: str, sequences: Sequence[str]) -> int:
  """Raises on a missing root, sequence folder or file; returns the total size in bytes."""
  if not os.path.isdir(root):
    raise DescriptorError(f"{root}: descriptor folder not found (expected <seq>/<image>.csv)")
  missing_dirs = [s for s in sequences if not os.path.isdir(os.path.join(root, s))]
  if missing_dirs:
    more = " ..." if len(missing_dirs) > 10 else ""
    raise DescriptorError(f"{root}: expected a folder per test sequence, missing "
                          f"{len(missing_dirs)} of {len(sequences)}: "
                          f"{', '.join(missing_dirs[:10])}{more}")
  total, missing = 0, []
  for s in sequences:
    for image in layout.IMAGE_TYPES:
      path = image_path(root, s, image)
      try:
        total += os.path.getsize(path)
      except OSError:
        missing.append(os.path.join(s, f"{image}.csv"))
  if missing:
    raise DescriptorError(f"{root}: expected {len(layout.IMAGE_TYPES)} files <image>.csv per "
                          f"sequence, missing {len(missing)}: {', '.join(missing[:10])}"
                          f"{' ...' if len(missing) > 10 else ''}")
  return total


def read_descriptor_folder(root: str | os.PathLike, sequences: Sequence[str],
                           workers: int | None = None) -> types.DescriptorSet:
  """Reads and validates the descriptors of `sequences` from an export folder.

  Args:
    root: folder holding `<seq>/<image>.csv`; other folders are ignored.
    sequences: the sequences to read (e.g. a split's test list), in the
      order of the returned set.
    workers: parsing processes; None picks min(CPU count, 8, sequences) for
      folders over 64 MiB and 1 below; 1 parses in this process.

  Returns:
    DescriptorSet with descs (L, 16, D) float32.

  Raises:
    DescriptorError: see `read_descriptor_file`; also a missing folder or
      file, images of one sequence with different row counts or
      dimensions, sequences of different dimensions, no sequences.
  """
  root = os.fspath(root)
  sequences = tuple(sequences)
  if not sequences:
    raise DescriptorError(f"{root}: expected at least one sequence to read, found none")
  repeated = sorted({s for s in sequences if sequences.count(s) > 1})
  if repeated:
    raise DescriptorError(f"{root}: expected distinct sequences to read, found "
                          f"{', '.join(repeated)} more than once")
  total = _check_files(root, sequences)
  if workers is None:
    workers = 1 if total < _PARALLEL_MIN_BYTES else min(os.cpu_count() or 1, _MAX_WORKERS)
  workers = max(1, min(workers, len(sequences)))
  if workers == 1:
    per_seq = [_read_sequence(root, s) for s in sequences]
  else:
    # spawn, not fork: the caller may already run JAX or TensorFlow threads.
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")) as pool:
      per_seq = list(pool.map(_read_sequence, [root] * len(sequences), sequences,
                              chunksize=max(1, math.ceil(len(sequences) / (4 * workers)))))
  dim = per_seq[0].shape[2]
  for s, a in zip(sequences, per_seq):
    if a.shape[2] != dim:
      raise DescriptorError(f"{image_path(root, s, layout.IMAGE_TYPES[0])}: expected {dim}-d "
                            f"descriptors (as in sequence {sequences[0]!r}), found {a.shape[2]}-d")
  counts = [a.shape[0] for a in per_seq]
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  descs = np.concatenate(per_seq) if per_seq else np.zeros((0, layout.NUM_IMAGES, dim), np.float32)
  return types.DescriptorSet(sequences, offsets, descs)


def _file_text(values: np.ndarray, delimiter: str) -> str:
  fmt = delimiter.join([WRITE_FORMAT] * values.shape[1]) + "\n"
  return "".join(fmt % tuple(row) for row in values.tolist())


def write_descriptor_folder(descs: types.DescriptorSet, root: str | os.PathLike,
                            delimiter: str = ",", overwrite: bool = False) -> None:
  """Writes `descs` as `<root>/<seq>/<image>.csv`, all or nothing.

  Everything is written into a temporary sibling folder that is renamed onto
  `root` when complete, so an interrupted export never leaves a partial
  folder under `root` (a replaced folder is swapped out the same way).

  Args:
    descs: descriptors (L, 16, D) float32, finite.
    root: destination folder; must not exist unless `overwrite`.
    delimiter: "," or ";".
    overwrite: replace an existing `root`.

  Raises:
    DescriptorError: NaN/Inf descriptors (naming sequence, image and row).
    FileExistsError: `root` exists and not `overwrite`.
    ValueError: an unknown delimiter.
  """
  if delimiter not in DELIMITERS:
    raise ValueError(f"delimiter must be one of {DELIMITERS}, got {delimiter!r}")
  bad = ~np.isfinite(descs.descs)
  if bad.any():
    label, image, col = (int(i) for i in np.argwhere(bad)[0])
    s = int(np.searchsorted(descs.offsets, label, side="right") - 1)
    raise DescriptorError(f"descriptor of sequence {descs.sequences[s]!r}, image "
                          f"{layout.IMAGE_TYPES[image]}, row {label - int(descs.offsets[s])}, "
                          f"value {col}: expected a finite number, found "
                          f"{descs.descs[label, image, col]}")
  root = os.path.abspath(os.fspath(root))
  if os.path.exists(root) and not overwrite:
    raise FileExistsError(f"{root}: already exists (pass overwrite to replace it)")
  with atomic.atomic_dir(root) as tmp, progress.Progress(
      len(descs.sequences), f"writing {root}", unit="sequences") as bar:
    for s, name in enumerate(descs.sequences):
      rows = descs.descs[descs.offsets[s]:descs.offsets[s + 1]]
      os.mkdir(os.path.join(tmp, name))
      for i, image in enumerate(layout.IMAGE_TYPES):
        with open(image_path(tmp, name, image), "w", encoding="ascii") as f:
          f.write(_file_text(rows[:, i], delimiter))
      bar.update()
