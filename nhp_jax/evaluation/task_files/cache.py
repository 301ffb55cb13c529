"""The cache of generated task files.

Generated files are cached as `.npz` plus CSVs in the official format (the
official evaluator can read them), keyed by split, sequences, counts, sizes
and pixels.
"""

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence

from absl import logging
import numpy as np

from nhp_jax import atomic
from nhp_jax.errors import TaskFileError
from nhp_jax.evaluation import types
from nhp_jax.evaluation.task_files import csv_io, generate

# Bump when generation or the cache layout changes: the cache keys on it.
CACHE_VERSION = 1
CACHE_SUBDIR = os.path.join(".nhp_cache", "tasks")


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
    task = generate.generate_verification(counts, n_pairs)
    # int32 halves the cache; every value is a patch or sequence index.
    arrays = {k: np.stack([getattr(getattr(task, k), f) for f in
                           ("seq1", "t1", "idx1", "seq2", "t2", "idx2")], axis=1).astype(np.int32)
              for k in csv_io.PAIR_FILES}
    csvs = {csv_io.PAIR_FILES[k].format(split): csv_io.pair_file_text(getattr(task, k), sequences)
            for k in csv_io.PAIR_FILES}
    _write_cache(folder, arrays, csvs, {"split": split, "sequences": list(sequences),
                                        "counts": counts.tolist(), "n_pairs": int(n_pairs)})
    logging.info("cached verification pairs in %s", folder)
    return task, folder
  pairs = {}
  for k in csv_io.PAIR_FILES:
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


def cached_retrieval(split: str, sequences: Sequence[str], ref_patches: Sequence[np.ndarray],
                     cache_dir: str) -> tuple[types.RetrievalTask, str]:
  """Generated retrieval lists (`retrieval_sizes`), from the cache or generated and cached now."""
  counts = np.array([len(p) for p in ref_patches], np.int64)
  n_queries, n_distractors = generate.retrieval_sizes(ref_patches)
  folder = os.path.join(cache_dir, _cache_key(
      "retrieval", split, sequences, counts, n_queries=n_queries,
      n_distractors=n_distractors, pixels=_pixels_digest(ref_patches)))
  arrays = _read_cache(folder)
  if arrays is None:
    logging.info("generating retrieval lists for split %s (%d sequences): %d queries, "
                 "%d distractors at most", split, len(sequences), n_queries, n_distractors)
    task = generate.generate_retrieval(ref_patches, n_queries, n_distractors)
    csvs = {csv_io.RETRIEVAL_FILES["queries"].format(split):
                csv_io.retrieval_file_text(task.queries, sequences),
            csv_io.RETRIEVAL_FILES["distractors"].format(split):
                csv_io.retrieval_file_text(task.distractors, sequences)}
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
