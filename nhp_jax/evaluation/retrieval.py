"""Patch retrieval: find a query's 5 positives among distractors, as the official benchmark.

Per query (a `ref` patch) and level: the list is [its 5 positives (the
same patch in `<level>1..5`), then the distractors not from the query's
sequence, in file order], with float64 cdist distances. For each pool size
P the list is cut to its first P entries (file order, not nearest) and
ranked; on equal distance the earlier entry (a positive before any
distractor) ranks first. AP per (query, level, P); level AP = mean over P
of the mean over queries; mAP = mean over levels.

Instead of sorting every pool of every query, each positive's rank is
counted: 1 + closer positives + distractors of the pool strictly closer.
Distractor counts for all pools come from one pass over the distractors
(chunk sums of the comparisons, then prefix sums at each pool's end), on
float64 Gram distances whose error is bounded; queries where the bound
leaves a comparison undecided are recounted with exact distances.

All of it is float64 work, so every kernel here runs on the exact (CPU)
device, `kernels.exact_device()`, whatever the backend (`kernels.run_exact`).
"""

import functools
from collections.abc import Sequence

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from nhp_jax.data import layout
from nhp_jax.errors import ConfigError, TaskFileError
from nhp_jax.evaluation import kernels
from nhp_jax.evaluation import types

NUM_POSITIVES = 5
QUERY_BLOCK = 32   # queries per screening call
EXACT_BLOCK = 4    # queries per exact call
CHUNK = 128        # distractors per partial sum


def pool_ends(dist_seq: np.ndarray, query_seq: np.ndarray,
              pool_sizes: Sequence[int]) -> np.ndarray:
  """Where each pool ends in the distractor file, per query.

  Pool P holds the 5 positives and the first P - 5 distractors that are not
  from the query's sequence (all of them if fewer).

  Args:
    dist_seq: (M,) int sequence index of each distractor, file order.
    query_seq: (Q,) int sequence index of each query.
    pool_sizes: P values, each >= 1.

  Returns:
    (Q, len(pool_sizes)) int32 e: the pool's distractors are the kept
    ones among file rows [0, e).
  """
  sizes = np.asarray(pool_sizes, np.int64)
  seqs, inverse = np.unique(query_seq, return_inverse=True)
  ends = np.zeros((seqs.size, sizes.size), np.int64)
  for i, s in enumerate(seqs):
    kept = np.cumsum(dist_seq != s)
    wanted = np.clip(sizes - NUM_POSITIVES, 0, kept[-1] if kept.size else 0)
    ends[i] = np.where(wanted > 0, np.searchsorted(kept, wanted, side="left") + 1, 0)
  return ends[inverse].astype(np.int32).reshape(query_seq.shape[0], sizes.size)


def _row_counts(values, thresholds, ends, chunk):
  """Entries of each prefix [0, end) of one query's list below each threshold.

  Args:
    values: (M,) distances (or screened squared distances), +inf where the
      distractor is from the query's sequence; M a multiple of chunk.
    thresholds: (T,) same units.
    ends: (P,) int prefix lengths <= M.
    chunk: partial-sum length.

  Returns:
    counts: (T, P) int32.
    totals: (T,) int32 counts over all M entries.
  """
  m = values.shape[0]
  less = values[None, :] < thresholds[:, None]
  chunk_sums = jnp.sum(less.reshape(-1, m // chunk, chunk), axis=-1, dtype=jnp.int32)
  cum = jnp.concatenate([jnp.zeros((thresholds.shape[0], 1), jnp.int32),
                         jnp.cumsum(chunk_sums, axis=-1)], axis=-1)
  whole = ends // chunk  # chunks entirely inside each prefix
  pos = whole[:, None] * chunk + jnp.arange(chunk)  # (P, chunk) the rest of the prefix
  tail = jnp.where(pos < ends[:, None], values[jnp.minimum(pos, m - 1)], jnp.inf)
  counts = cum[:, whole] + jnp.sum(tail[None] < thresholds[:, None, None], axis=-1,
                                   dtype=jnp.int32)
  return counts, cum[:, -1]


@functools.partial(jax.jit, static_argnames="chunk")
def _screen_block(queries, positives, query_seq, ends, dists, dist_norms, dist_seq,
                  dist_norm_max, zero, chunk):
  """Counts from float64 Gram distances (L2), and which queries they may get wrong.

  Exact-device work (float64 throughout).

  queries (B, D) f32, positives (B, 15, D) f32, dists (M, D) f64 (the
  float32 distractors, cast once) with dist_norms (M,) f64 (+inf on
  padding) -> counts (B, 15, P), undecided (B,).
  """
  dim = queries.shape[1]
  pos_sums = kernels.exact_sums(queries[:, None, :], positives, "l2", zero)  # (B, 15)
  q64 = queries.astype(jnp.float64)
  query_norms = jnp.sum(q64 * q64, axis=1)
  keys = query_norms[:, None] + dist_norms[None, :] - 2.0 * (q64 @ dists.T)
  err = kernels.gram_error_bound(query_norms, dist_norm_max, dim, kernels.F64_EPS)[:, None]
  # Surely closer: the exact sum is below the positive's by > 4 ulps, so the
  # rounded roots differ too. Possibly closer: not surely farther.
  sure = pos_sums * (1.0 - 4.0 * kernels.F64_EPS) - err
  maybe = pos_sums + err

  def one(args):  # one query at a time keeps the (15, M) comparisons small
    key, lo, hi, seq, end = args
    key = jnp.where(dist_seq != seq, key, jnp.inf)
    counts, totals = _row_counts(key, lo, end, chunk)
    return counts, jnp.any(jnp.sum(key[None] < hi[:, None], axis=1, dtype=jnp.int32) != totals)
  return lax.map(one, (keys, sure, maybe, query_seq, ends))


@functools.partial(jax.jit, static_argnames=("chunk", "metric"))
def _exact_block(queries, positives, query_seq, ends, dists, dist_seq, zero, chunk, metric):
  """Counts from exact official distances: (B, 15, P) int32."""
  pos_dist = kernels.sums_to_distances(
      kernels.exact_sums(queries[:, None, :], positives, metric, zero), metric)
  dist = kernels.exact_distances(queries, dists, metric, zero)

  def one(args):
    row, thr, seq, end = args
    return _row_counts(jnp.where(dist_seq != seq, row, jnp.inf), thr, end, chunk)[0]
  return lax.map(one, (dist, pos_dist, query_seq, ends))


@jax.jit
def _ap_from_counts(counts):
  """(Q, 3, 5, P) closer-distractor counts per positive -> (Q, 3, P) AP.

  A farther positive never has fewer closer distractors, so sorting the
  counts orders the positives; r-th positive: tp = r, rank = r + count.
  """
  ordered = jnp.sort(counts, axis=2)
  tp = jnp.arange(1, NUM_POSITIVES + 1)[None, None, :, None]
  return jnp.sum(kernels.trapezoid_terms(tp, tp + ordered), axis=2) / NUM_POSITIVES


def _check_task(descs: types.DescriptorSet, task: types.RetrievalTask) -> None:
  counts = descs.counts()
  for name, rows in (("queries", task.queries), ("distractors", task.distractors)):
    if rows.ndim != 2 or rows.shape[1] != 2:
      raise TaskFileError(f"retrieval {name}: expected (n, 2) rows (sequence, patch), "
                          f"found shape {rows.shape}")
    if not rows.size:
      continue
    seq, idx = rows[:, 0], rows[:, 1]
    if seq.min() < 0 or seq.max() >= len(descs.sequences):
      raise TaskFileError(f"retrieval {name}: sequence indices must be in "
                          f"[0, {len(descs.sequences)}), found [{seq.min()}, {seq.max()}]")
    bad = np.flatnonzero((idx < 0) | (idx >= counts[seq]))
    if bad.size:
      row = int(bad[0])
      raise TaskFileError(f"retrieval {name}: row {row} asks patch {int(idx[row])} of "
                          f"{descs.sequences[int(seq[row])]}, which has "
                          f"{int(counts[seq[row]])} patches ({bad.size} such rows)")
  if not task.queries.shape[0]:
    raise TaskFileError("retrieval queries: expected at least one query, found 0")


@kernels.x64
def query_ap(descs: types.DescriptorSet, task: types.RetrievalTask,
             pool_sizes: Sequence[int] = types.RETRIEVAL_POOL_SIZES, metric: str = "l2",
             block: int = QUERY_BLOCK, exact_block: int = EXACT_BLOCK,
             chunk: int = CHUNK, force_exact: bool = False) -> np.ndarray:
  """AP of every query, level and pool size (inputs already validated), on the exact device.

  Args:
    descs: descriptors (L, 16, D) float32, finite.
    task: Q queries and M distractors, file order.
    pool_sizes: P list lengths, each >= 1.
    metric: "l2" (Gram screen, then exact where undecided) or "l1" (exact).
    block: queries per screening call.
    exact_block: queries per exact call.
    chunk: distractors per partial sum.
    force_exact: skip the screen (tests compare both paths).

  Returns:
    (Q, 3, P) float64 AP, levels e, h, t.
  """
  queries = np.asarray(task.queries, np.int64)
  distractors = np.asarray(task.distractors, np.int64)
  q_label = descs.offsets[queries[:, 0]] + queries[:, 1]
  d_label = descs.offsets[distractors[:, 0]] + distractors[:, 1]
  q_desc = descs.descs[q_label, 0]
  q_pos = descs.descs[q_label, 1:]
  query_seq = queries[:, 0].astype(np.int32)
  ends = pool_ends(distractors[:, 0], queries[:, 0], pool_sizes)
  m = max(chunk, -(-distractors.shape[0] // chunk) * chunk)
  d_desc = kernels.pad_rows(descs.descs[d_label, 0], m)
  d_seq = kernels.pad_rows(distractors[:, 0].astype(np.int32), m)
  num_q = queries.shape[0]
  counts = np.zeros((num_q, q_pos.shape[1], len(pool_sizes)), np.int32)
  undecided = np.ones(num_q, bool)
  d_desc_dev, d_seq_dev = kernels.to_exact(d_desc), kernels.to_exact(d_seq)
  if metric == "l2" and not force_exact:
    norms = np.full(m, np.inf)
    real = d_desc[:distractors.shape[0]].astype(np.float64)
    norms[:distractors.shape[0]] = np.einsum("md,md->m", real, real)
    norm_max = norms[:distractors.shape[0]].max(initial=0.0)
    norms, d64 = kernels.to_exact(norms), kernels.to_exact(d_desc.astype(np.float64))
    outs = []
    for start in range(0, num_q, block):
      sl = slice(start, start + block)
      outs.append(kernels.run_exact(
          "retrieval_screen_block", _screen_block,
          kernels.pad_rows(q_desc[sl], block), kernels.pad_rows(q_pos[sl], block),
          kernels.pad_rows(query_seq[sl], block), kernels.pad_rows(ends[sl], block),
          d64, norms, d_seq_dev, norm_max, kernels.opaque_zero(), chunk=chunk))
    counts = np.concatenate([np.asarray(o[0]) for o in outs])[:num_q]
    undecided = np.concatenate([np.asarray(o[1]) for o in outs])[:num_q]
  redo = np.flatnonzero(undecided)
  for start in range(0, redo.size, exact_block):
    sel = redo[start:start + exact_block]
    c = kernels.run_exact(
        "retrieval_exact_block", _exact_block,
        kernels.pad_rows(q_desc[sel], exact_block), kernels.pad_rows(q_pos[sel], exact_block),
        kernels.pad_rows(query_seq[sel], exact_block), kernels.pad_rows(ends[sel], exact_block),
        d_desc_dev, d_seq_dev, kernels.opaque_zero(), chunk=chunk, metric=metric)
    counts[sel] = np.asarray(c)[:sel.size]
  counts = counts.reshape(num_q, len(layout.LEVELS), NUM_POSITIVES, len(pool_sizes))
  return np.asarray(kernels.run_exact("retrieval_ap_from_counts", _ap_from_counts, counts))


def evaluate_retrieval(descs: types.DescriptorSet, task: types.RetrievalTask,
                       pool_sizes: Sequence[int] = types.RETRIEVAL_POOL_SIZES,
                       metric: str = "l2") -> dict:
  """Scores the retrieval benchmark.

  Args:
    descs: descriptors of the split's test sequences, (L, 16, D) float32.
    task: queries and distractors, file order.
    pool_sizes: list lengths P (>= 1) to score, official
      `types.RETRIEVAL_POOL_SIZES`.
    metric: "l2" (official default) or "l1".

  Returns:
    {"mAP": mean over levels, "levels": {level: {"ap": mean over pool sizes
     of the mean over queries, "per_pool": {str(P): mean over queries}}}}.

  Raises:
    TaskFileError: rows out of range, or no queries.
    DescriptorError: NaN/Inf descriptors.
    ConfigError: unknown metric or a pool size < 1.
  """
  kernels.check_metric(metric)
  kernels.check_finite(descs.descs)
  pool_sizes = tuple(int(p) for p in pool_sizes)
  if not pool_sizes or min(pool_sizes) < 1:
    raise ConfigError(f"pool_sizes: expected sizes >= 1, found {pool_sizes}")
  _check_task(descs, task)
  ap = query_ap(descs, task, pool_sizes, metric).mean(axis=0)  # (3, P)
  levels = {}
  for lv, level in enumerate(layout.LEVELS):
    levels[level] = {"ap": float(ap[lv].mean()),
                     "per_pool": {str(p): float(ap[lv, i]) for i, p in enumerate(pool_sizes)}}
  return {"mAP": float(np.mean([levels[lv]["ap"] for lv in layout.LEVELS])), "levels": levels}
