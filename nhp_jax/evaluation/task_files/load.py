"""Choosing official or generated task files for a split (`load_tasks`).

Official files from a `tasks_dir` when there; for retrieval, else the
vendored official lists when the descriptors hold exactly their sequences;
else generated (`generate`) and cached (`cache`).
"""

import os
import re
from collections.abc import Callable, Mapping, Sequence

from absl import logging
import numpy as np

from nhp_jax.errors import DataError, TaskFileError
from nhp_jax.evaluation import types
from nhp_jax.evaluation.task_files import cache as cache_lib
from nhp_jax.evaluation.task_files import csv_io, generate

# The benchmarks that read task files (matching reads none: every ref patch against each image).
FILE_BENCHMARKS = ("verification", "retrieval")

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


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
  paths = _present(csv_io.VENDORED_DIR, csv_io.RETRIEVAL_FILES, split)
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
               n_pairs: int = generate.OFFICIAL_N_PAIRS,
               ref_patches: Callable[[], Sequence[np.ndarray]] | None = None,
               cache_dir: str | os.PathLike | None = None,
               tasks: Sequence[str] = FILE_BENCHMARKS,
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
  unknown = sorted(set(tasks) - set(FILE_BENCHMARKS))
  if unknown:
    raise ValueError(f"unknown tasks {unknown}; known: {', '.join(FILE_BENCHMARKS)}")
  if not isinstance(split, str) or not _SPLIT_NAME.match(split):
    raise TaskFileError(f"split name: expected letters, digits, '_', '-' or '.', found {split!r}")
  sequences, counts = _sequences_and_counts(descs_or_counts)
  tasks_dir = None if tasks_dir is None else os.fspath(tasks_dir)
  if tasks_dir is not None and not os.path.isdir(tasks_dir):
    raise TaskFileError(f"{tasks_dir}: task folder not found")

  def cache() -> str:  # resolved only when generating: it may create a folder
    return os.fspath(cache_dir) if cache_dir is not None else cache_lib.default_cache_dir(data_dir)

  verification = retrieval = None
  if "verification" in tasks:
    paths = _present(tasks_dir, csv_io.PAIR_FILES, split)
    if paths is not None:
      logging.info("verification pairs: official files in %s", tasks_dir)
      verification = types.VerificationTask(
          **{k: csv_io.read_pair_file(p, sequences, counts) for k, p in paths.items()})
    else:
      verification, _ = cache_lib.cached_verification(split, sequences, counts, n_pairs, cache())
  if "retrieval" in tasks:
    paths = _present(tasks_dir, csv_io.RETRIEVAL_FILES, split)
    if paths is None and _vendored_names(split) == set(sequences):
      paths = _present(csv_io.VENDORED_DIR, csv_io.RETRIEVAL_FILES, split)
    if paths is not None:
      logging.info("retrieval lists: official files %s", ", ".join(paths.values()))
      retrieval = types.RetrievalTask(
          **{k: csv_io.read_retrieval_file(p, sequences, counts) for k, p in paths.items()})
    else:
      if ref_patches is None:
        raise TaskFileError(
            f"split {split!r}: no official retrieval lists for these {len(sequences)} "
            f"sequences (tasks_dir={tasks_dir}); generating them needs the ref patches "
            f"of the dataset (pass its data_dir)")
      patches = list(ref_patches())
      _check_ref_patches(patches, sequences, counts)
      retrieval, _ = cache_lib.cached_retrieval(split, sequences, patches, cache())
  return verification, retrieval
