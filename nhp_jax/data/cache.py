"""Decode a split once into uint8 .npy arrays, memory-map them on later runs.

An entry is a folder `<cache_dir>/splits/<root id>-<split>-<subset>-<key>/` with
`clean.npy` and `noisy.npy` ((L, 16, 32, 32) uint8) and `index.json`
(sequences, offsets, key, source). The key hashes the data root, split,
subset, sequence list, layout, reader / noise / cache versions, the noise
settings where noise is synthesised, and (path, size, mtime_ns) of every PNG
read, so a changed source file gives a new key. Entries are built in a
temporary folder and renamed into place when complete; `index.json` is
checked against the key and the arrays' shapes before an entry is trusted.

Cache location, first that applies: the `cache_dir` argument,
`$NHP_CACHE_DIR`, `<data_dir>/.nhp_cache` when writable,
`~/.cache/nhp_jax/cache`.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time

import numpy as np

from nhp_jax import atomic
from nhp_jax.data import layout as layout_lib
from nhp_jax.data import noise
from nhp_jax.data import patchset
from nhp_jax.data import reader
from nhp_jax.data import splits as splits_lib
from nhp_jax.errors import DataError, TaskFileError

CACHE_VERSION = 1
SUBFOLDER = "splits"  # this module owns <cache_dir>/splits/ (other caches may sit beside it)
INDEX = "index.json"
_ARRAYS = ("clean", "noisy")
_STALE_TMP_SECONDS = 24 * 3600  # temporary folders older than this are from dead runs
_VENDORED_SPLITS = "the vendored official splits.json"   # splits of a root without its own


def default_cache_dir(data_dir: str) -> str:
  """$NHP_CACHE_DIR, else `<data_dir>/.nhp_cache` if writable, else ~/.cache/nhp_jax/cache."""
  if os.environ.get("NHP_CACHE_DIR"):
    return os.environ["NHP_CACHE_DIR"]
  local = os.path.join(data_dir, ".nhp_cache")
  try:
    os.makedirs(local, exist_ok=True)
    if os.access(local, os.W_OK):
      return local
  except OSError:
    pass
  return os.path.join(os.path.expanduser("~"), ".cache", "nhp_jax", "cache")


def fingerprint(source: reader.Source, split: str, subset: str, sequences: list[str]) -> dict:
  """Everything the cached arrays depend on, as JSON-able data.

  Raises:
    DataError: a sequence folder or image is missing.
  """
  files = []
  for name in sequences:
    for path in source.files(name):
      try:
        st = os.stat(path)
      except FileNotFoundError:
        raise DataError(f"{path}: image not found (expected an 8-bit grey PNG here)") from None
      files.append([os.path.relpath(path, source.root), st.st_size, st.st_mtime_ns])
  fp = {"cache_version": CACHE_VERSION, "reader_version": reader.READER_VERSION,
        "root": os.path.abspath(source.root), "layout": source.layout, "split": split,
        "subset": subset, "sequences": list(sequences), "files": files}
  if source.layout == "hpatches":  # noise is synthesised: its settings shape the arrays
    fp["noise"] = {"version": noise.NOISE_VERSION, "seed": source.noise_seed,
                   "config": dataclasses.asdict(source.noise_config)}
  return fp


def _digest(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _shape(offsets: np.ndarray) -> tuple[int, int, int, int]:
  """(L, 16, 32, 32): the array shape of a split with label offsets `offsets`."""
  p = layout_lib.PATCH_SIZE
  return int(offsets[-1]), layout_lib.NUM_IMAGES, p, p


def _open_entry(entry: str, key: str) -> patchset.PatchSet | None:
  """The entry's memory-mapped PatchSet, or None if it is incomplete, stale or corrupt."""
  try:
    with open(os.path.join(entry, INDEX), encoding="utf-8") as f:
      index = json.load(f)
    if index.get("key") != key:
      return None
    offsets = np.asarray(index["offsets"], np.int64)
    shape = _shape(offsets)
    arrays = [np.load(os.path.join(entry, f"{a}.npy"), mmap_mode="r") for a in _ARRAYS]
    if any(a.shape != shape or a.dtype != np.uint8 for a in arrays):
      return None
    return patchset.PatchSet(tuple(index["sequences"]), offsets, *arrays)
  except (OSError, ValueError, KeyError, TypeError, IndexError):
    return None


def _build_entry(entry: str, key: str, source: reader.Source, sequences: list[str],
                 workers: int | None) -> None:
  """Decodes the split into a temporary folder and renames it onto `entry`."""
  offsets = reader.count_labels(source, sequences, workers)  # all headers checked first
  shape = _shape(offsets)
  with atomic.atomic_dir(entry, replace=False) as tmp:
    arrays = [np.lib.format.open_memmap(os.path.join(tmp, f"{a}.npy"), mode="w+",
                                        dtype=np.uint8, shape=shape) for a in _ARRAYS]
    reader.read_into(source, sequences, offsets, *arrays, workers=workers)
    for a in arrays:
      a.flush()
    del arrays
    index = {"key": key, "sequences": list(sequences), "offsets": offsets.tolist(),
             "root": os.path.abspath(source.root), "layout": source.layout}
    with open(os.path.join(tmp, INDEX), "w", encoding="utf-8") as f:
      json.dump(index, f)
    if os.path.exists(entry):  # an untrusted leftover under the same key
      shutil.rmtree(entry)


def _tidy(cache_dir: str, prefix: str, keep: str) -> None:
  """Removes superseded entries of this root/split/subset and stale temporary folders."""
  now = time.time()
  for name in os.listdir(cache_dir):
    path = os.path.join(cache_dir, name)
    try:
      stale_tmp = ".tmp-" in name and now - os.path.getmtime(path) > _STALE_TMP_SECONDS
    except FileNotFoundError:  # another run renamed or removed it meanwhile
      continue
    superseded = name.startswith(prefix) and name != keep
    if stale_tmp or superseded:
      shutil.rmtree(path, ignore_errors=True)


def load_split(data_dir: str | os.PathLike, split: str = "a", subset: str = "train",
               cache_dir: str | os.PathLike | None = None, splits_file: str | None = None,
               layout: str | None = None, noise_config: noise.NoiseConfig = noise.DEFAULT,
               noise_seed: int = 0, workers: int | None = None) -> patchset.PatchSet:
  """One subset of one split as a PatchSet of read-only memory-mapped arrays.

  Args:
    data_dir: an N-HPatches or HPatches root (see reader.open_source).
    split: split name in the splits file, e.g. "a".
    subset: "train" or "test".
    cache_dir: where entries live (see the module docstring for the default).
    splits_file: splits.json to use; default `<data_dir>/splits.json` if it
      exists, else the vendored official file.
    layout, noise_config, noise_seed: see reader.open_source.
    workers: decoding threads on a cache miss.

  Raises:
    DataError: bad or missing data files (see reader).
    TaskFileError: bad splits file, unknown split or subset.
  """
  data_dir = os.path.abspath(os.fspath(data_dir))
  source = reader.open_source(data_dir, layout, noise_config, noise_seed)
  if not splits_file:
    own = os.path.join(data_dir, splits_lib.SPLITS_FILENAME)
    splits_file = own if os.path.isfile(own) else None
  all_splits = splits_lib.load_splits(splits_file)
  try:
    sequences = splits_lib.split_sequences(split, subset, all_splits)
  except TaskFileError as e:   # name the file the splits came from
    raise TaskFileError(f"{splits_file or _VENDORED_SPLITS}: {e}") from None
  reader.check_sequences(source, sequences, listed_in=(
      f"split {split!r} {subset} of {splits_file}" if splits_file else
      f"split {split!r} {subset} of {_VENDORED_SPLITS}: "
      f"{data_dir} has no {splits_lib.SPLITS_FILENAME}"))
  key = _digest(fingerprint(source, split, subset, sequences))
  cache_dir = os.path.abspath(os.fspath(cache_dir) if cache_dir else default_cache_dir(data_dir))
  cache_dir = os.path.join(cache_dir, SUBFOLDER)
  os.makedirs(cache_dir, exist_ok=True)
  prefix = f"{_digest(os.path.abspath(source.root))[:10]}-{split}-{subset}-"
  entry = os.path.join(cache_dir, prefix + key[:20])
  ps = _open_entry(entry, key)
  if ps is None:
    _build_entry(entry, key, source, sequences, workers)
    _tidy(cache_dir, prefix, os.path.basename(entry))
    ps = _open_entry(entry, key)
    if ps is None:
      raise DataError(f"{entry}: cache entry unreadable right after writing it")
  return ps
