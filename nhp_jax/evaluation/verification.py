"""Patch verification: are two patches the same point? Scored as the official benchmark.

Per level (e, h, t) each pair's distance is taken between image t1 of
patch idx1 and image t2 of patch idx2 (t = 0 is `ref`, k is `<level>k`),
in float32 as the official code does (see `kernels`). Per level and
negative set (inter, intra) the official list is [negatives..., positives...]:
'auc' is the ROC AUC of the whole list (balanced protocol), 'ap' the AP of
its first len(pos) + int(0.2 len(pos)) entries (imbalanced protocol; with
equal file sizes: all negatives, then the first fifth of the positives).
On equal distances a negative ranks before a positive.

Distances and scores are exact work: they run on the exact (CPU) device,
`kernels.exact_device()`, whatever the backend.
"""

import numpy as np

from nhp_jax.data import layout
from nhp_jax.errors import TaskFileError
from nhp_jax.evaluation import kernels
from nhp_jax.evaluation import types

NEGATIVE_SETS = ("inter", "intra")


def imbalanced_list_size(num_positives: int) -> int:
  """Entries of [negatives..., positives...] kept for AP, as the official code cuts it."""
  return num_positives + int(num_positives * 0.2)


def _check_pairs(descs: types.DescriptorSet, pairs: types.PairList, name: str) -> None:
  counts = descs.counts()
  num_seq = len(descs.sequences)
  for side in ("1", "2"):
    seq = getattr(pairs, "seq" + side)
    t = getattr(pairs, "t" + side)
    idx = getattr(pairs, "idx" + side)
    if seq.size and (seq.min() < 0 or seq.max() >= num_seq):
      raise TaskFileError(f"verification {name}: s{side} must index the {num_seq} sequences, "
                          f"found values in [{seq.min()}, {seq.max()}]")
    if t.size and (t.min() < 0 or t.max() > 5):
      raise TaskFileError(f"verification {name}: t{side} must be in 0..5, "
                          f"found values in [{t.min()}, {t.max()}]")
    bad = np.flatnonzero((idx < 0) | (idx >= counts[seq])) if seq.size else []
    if len(bad):
      row = int(bad[0])
      raise TaskFileError(
          f"verification {name}: idx{side} must be a patch of its sequence; row {row} has "
          f"idx{side}={int(idx[row])} but {descs.sequences[int(seq[row])]} has "
          f"{int(counts[seq[row]])} patches ({len(bad)} such rows)")


def _level_rows(offsets: np.ndarray, seq: np.ndarray, t: np.ndarray,
                idx: np.ndarray) -> np.ndarray:
  """(N, 3) int32 rows of the (L * 16, D) descriptor table for levels e, h, t."""
  label = offsets[seq] + idx
  rows = np.empty((seq.shape[0], len(layout.LEVELS)), np.int64)
  for lv in range(len(layout.LEVELS)):
    image = np.where(t == 0, 0, 1 + 5 * lv + t - 1)
    rows[:, lv] = label * layout.NUM_IMAGES + image
  return rows.astype(np.int32)


def pair_distances(table, descs: types.DescriptorSet, pairs: types.PairList,
                   metric: str) -> np.ndarray:
  """(3, N) float32 distances of a pair file at levels e, h, t, in file order.

  Args:
    table: (L * 16, D) float32 array on `kernels.exact_device()`, `descs.descs`
      flattened.
    descs: the descriptor set (for its offsets).
    pairs: N pairs.
    metric: "l2" or "l1".
  """
  rows_a = _level_rows(descs.offsets, pairs.seq1, pairs.t1, pairs.idx1)
  rows_b = _level_rows(descs.offsets, pairs.seq2, pairs.t2, pairs.idx2)
  # Pairs are scored grouped by their two sequences, so each block reads a
  # few sequences' descriptors that stay in cache instead of the whole table.
  order = np.argsort(pairs.seq1.astype(np.int64) * len(descs.sequences) + pairs.seq2,
                     kind="stable")
  dist = kernels.paired_distances(table, rows_a[order].ravel(), rows_b[order].ravel(), metric)
  out = np.empty_like(dist.reshape(-1, len(layout.LEVELS)))
  out[order] = dist.reshape(-1, len(layout.LEVELS))
  return out.T


def evaluate_verification(descs: types.DescriptorSet, task: types.VerificationTask,
                          metric: str = "l2") -> dict:
  """Scores the verification benchmark.

  Args:
    descs: descriptors of the split's test sequences, (L, 16, D) float32.
    task: the positive, intra-negative and inter-negative pair files.
    metric: "l2" (official default) or "l1".

  Returns:
    {"mAP": mean imbalanced AP over levels x {inter, intra},
     "levels": {level: {"inter": {"ap", "auc"}, "intra": {"ap", "auc"}}}}.

  Raises:
    TaskFileError: pairs out of range, no positive pairs, or a negative file
      whose size differs from the positives'.
    DescriptorError: NaN/Inf descriptors, or distances overflowing float32.
    ConfigError: unknown metric.
  """
  kernels.check_metric(metric)
  kernels.check_finite(descs.descs)
  files = {"positives": task.positives, "inter": task.inter_negatives,
           "intra": task.intra_negatives}
  for name, pairs in files.items():
    _check_pairs(descs, pairs, name)
  if len(task.positives) == 0:
    raise TaskFileError("verification positives: expected at least one pair, found 0")
  for name in NEGATIVE_SETS:
    # The official code labels the list with len(positives) zeros: other
    # sizes misalign labels and distances there, so no official number exists.
    if len(files[name]) != len(task.positives):
      raise TaskFileError(f"verification {name} negatives: expected as many pairs as the "
                          f"positives ({len(task.positives)}), found {len(files[name])}")
  table = kernels.to_exact(np.asarray(descs.descs.reshape(-1, descs.dim), np.float32))
  dists = {name: pair_distances(table, descs, pairs, metric) for name, pairs in files.items()}
  del table
  for name, d in dists.items():
    kernels.check_finite(d, f"verification {name} distances (float32 overflow)")
  list_size = imbalanced_list_size(len(task.positives))
  levels = {}
  for lv, level in enumerate(layout.LEVELS):
    levels[level] = {}
    for neg in NEGATIVE_SETS:
      ap, auc = kernels.verification_ap_auc(dists[neg][lv], dists["positives"][lv], list_size)
      levels[level][neg] = {"ap": ap, "auc": auc}
  aps = [levels[lv][neg]["ap"] for lv in layout.LEVELS for neg in NEGATIVE_SETS]
  return {"mAP": float(np.mean(aps)), "levels": levels}

