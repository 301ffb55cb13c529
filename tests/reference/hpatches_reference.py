"""The HPatches evaluation protocol restated slowly in plain NumPy (tests only).

It follows the official benchmark's Python code (hpatches-benchmark,
`python/utils/tasks.py` and `metrics.py`, CPU path) step by step: per-pair
loops, explicit stable sorts, the trapezoid rule written out. Nothing here
is fast or clever, so that the fast kernels of `nhp_jax.evaluation` can be
checked against it.

Precision, as in the official code:
* verification: scipy `euclidean` of two float32 rows = float32 difference,
  norm accumulated in float64 (BLAS snrm2), rounded to float32; `cityblock`
  = numpy float32 `abs(u - v).sum()`.
* matching, retrieval: scipy `cdist` = float64, coordinates summed in order.
"""

import math

import numpy as np

from nhp_jax.evaluation import types

LEVELS = ("e", "h", "t")
POOL_SIZES = (100, 500, 1000, 5000, 10000, 15000, 20000)


def image_index(level: str, t: int) -> int:
  """Axis-1 index of image type t (0 = ref, k = `<level>k`) in DescriptorSet.descs."""
  return 0 if t == 0 else 1 + 5 * LEVELS.index(level) + (t - 1)


def verification_distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.float32:
  """One official verification distance; a, b (D,) float32."""
  diff = a - b  # float32, as scipy subtracts the float32 vectors
  if metric == "l2":
    total = 0.0
    for x in diff.astype(np.float64):
      total += x * x
    return np.float32(math.sqrt(total))
  return np.abs(diff).sum()  # numpy's float32 sum, what scipy's cityblock returns


def cdist(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
  """scipy's cdist: (n, D), (m, D) float32 -> (n, m) float64, coordinates summed in order."""
  a = a.astype(np.float64)
  b = b.astype(np.float64)
  total = np.zeros((a.shape[0], b.shape[0]))
  for k in range(a.shape[1]):
    diff = a[:, None, k] - b[None, :, k]
    total += diff * diff if metric == "l2" else np.abs(diff)
  return np.sqrt(total) if metric == "l2" else total


def _ranked_counts(scores, labels, numpos=None):
  """The official `tpfp`: stable sort by descending score, -inf never retrieved."""
  scores = np.asarray(scores, np.float64).ravel()
  labels = np.asarray(labels).ravel().astype(np.int64)
  p = int(labels.sum())
  n = labels.size - p
  if numpos is not None:
    assert numpos >= p
    scores = np.concatenate([scores, np.full(numpos - p, -np.inf)])
    labels = np.concatenate([labels, np.ones(numpos - p, np.int64)])
    p = numpos
  order = np.argsort(-scores, kind="stable")
  order = order[scores[order] > -np.inf]
  ranked = labels[order]
  tp = np.concatenate([[0], np.cumsum(ranked == 1)])
  fp = np.concatenate([[0], np.cumsum(ranked == 0)])
  return tp, fp, p, n


def _trapezoid(y, x):
  area = 0.0
  for k in range(1, len(x)):
    area += (x[k] - x[k - 1]) * (y[k] + y[k - 1]) / 2.0
  return area


def average_precision(scores, labels, numpos=None) -> float:
  """The official `metrics.pr(...)[2]`."""
  tp, fp, p, _ = _ranked_counts(scores, labels, numpos)
  recall = tp / max(p, 1e-10)
  precision = np.maximum(tp, 1e-10) / np.maximum(tp + fp, 1e-10)
  return _trapezoid(precision, recall)


def roc_auc(scores, labels) -> float:
  """The official `metrics.roc(...)[2]`."""
  tp, fp, p, n = _ranked_counts(scores, labels)
  return _trapezoid(tp / max(p, 1e-10), fp / max(n, 1e-10))


def _sequence_image(descs: types.DescriptorSet, s: int, image: int) -> np.ndarray:
  return descs.descs[descs.offsets[s]:descs.offsets[s + 1], image]


def _pair_file_distances(descs, pairs, metric):
  out = {lv: np.empty(len(pairs)) for lv in LEVELS}
  for i in range(len(pairs)):
    for lv in LEVELS:
      a = _sequence_image(descs, pairs.seq1[i], image_index(lv, pairs.t1[i]))[pairs.idx1[i]]
      b = _sequence_image(descs, pairs.seq2[i], image_index(lv, pairs.t2[i]))[pairs.idx2[i]]
      out[lv][i] = verification_distance(a, b, metric)
  return out


def verification(descs: types.DescriptorSet, task: types.VerificationTask,
                 metric: str = "l2") -> dict:
  """The official `eval_verification`, in the result layout of nhp_jax."""
  pos = _pair_file_distances(descs, task.positives, metric)
  negs = {"inter": _pair_file_distances(descs, task.inter_negatives, metric),
          "intra": _pair_file_distances(descs, task.intra_negatives, metric)}
  n_pos = len(task.positives)
  cut = n_pos + int(n_pos * 0.2)
  levels = {}
  for lv in LEVELS:
    levels[lv] = {}
    for name, neg in negs.items():
      dist = np.concatenate([neg[lv], pos[lv]])
      labels = np.concatenate([np.zeros(len(neg[lv])), np.ones(n_pos)])
      levels[lv][name] = {"auc": roc_auc(-dist, labels),
                          "ap": average_precision(-dist[:cut], labels[:cut])}
  aps = [levels[lv][name]["ap"] for lv in LEVELS for name in ("inter", "intra")]
  return {"mAP": float(np.mean(aps)), "levels": levels}


def matching(descs: types.DescriptorSet, metric: str = "l2") -> dict:
  """The official `eval_matching` and its results table, in the layout of nhp_jax."""
  levels = {lv: {"ap": [], "success": [], "per_sequence": {}} for lv in LEVELS}
  for s, name in enumerate(descs.sequences):
    ref = _sequence_image(descs, s, 0)
    truth = np.arange(ref.shape[0])
    for lv in LEVELS:
      aps = []
      for k in range(1, 6):
        dist = cdist(ref, _sequence_image(descs, s, image_index(lv, k)), metric)
        nearest = np.argmin(dist, axis=1)
        correct = nearest == truth
        aps.append(average_precision(-dist[truth, nearest], correct, numpos=ref.shape[0]))
        levels[lv]["success"].append(correct.mean())
      levels[lv]["per_sequence"][name] = aps
      levels[lv]["ap"] += aps
  for lv in LEVELS:
    levels[lv]["ap"] = float(np.mean(levels[lv]["ap"]))
    levels[lv]["success"] = float(np.mean(levels[lv]["success"]))
  return {"mAP": float(np.mean([levels[lv]["ap"] for lv in LEVELS])), "levels": levels}


def retrieval_query_aps(descs: types.DescriptorSet, task: types.RetrievalTask,
                        pool_sizes=POOL_SIZES, metric: str = "l2") -> np.ndarray:
  """The official `eval_retrieval`: (Q, 3, P) AP per query, level and pool size."""
  def ref_desc(rows):
    return np.stack([_sequence_image(descs, s, 0)[i] for s, i in rows]).astype(np.float32)
  queries = ref_desc(task.queries)
  distractors = (ref_desc(task.distractors) if len(task.distractors)
                 else np.zeros((0, descs.dim), np.float32))
  all_dist = cdist(queries, distractors, metric)
  aps = np.zeros((len(task.queries), len(LEVELS), len(pool_sizes)))
  for q, (s, i) in enumerate(task.queries):
    others = all_dist[q][task.distractors[:, 0] != s] if len(task.distractors) else np.zeros(0)
    for lv, level in enumerate(LEVELS):
      positives = [cdist(queries[q:q + 1],
                         _sequence_image(descs, s, image_index(level, k))[i:i + 1], metric)[0, 0]
                   for k in range(1, 6)]
      dist = np.concatenate([positives, others])
      labels = np.concatenate([np.ones(5), np.zeros(others.size)])
      for j, p in enumerate(pool_sizes):
        aps[q, lv, j] = average_precision(-dist[:p], labels[:p])
  return aps


def retrieval(descs: types.DescriptorSet, task: types.RetrievalTask,
              pool_sizes=POOL_SIZES, metric: str = "l2") -> dict:
  """`retrieval_query_aps` averaged as the official results table, in the layout of nhp_jax."""
  aps = retrieval_query_aps(descs, task, pool_sizes, metric).mean(axis=0)
  levels = {}
  for lv, level in enumerate(LEVELS):
    per_pool = {str(p): float(aps[lv, j]) for j, p in enumerate(pool_sizes)}
    levels[level] = {"ap": float(np.mean(list(per_pool.values()))), "per_pool": per_pool}
  return {"mAP": float(np.mean([levels[lv]["ap"] for lv in LEVELS])), "levels": levels}


# ---------------------------------------------------------------- random inputs


def descriptor_set(counts, dim, rng: np.random.Generator, kind: str = "float",
                   ) -> types.DescriptorSet:
  """Random descriptors: kind "float" (normal), or "ties" (integers 0..2: distances tie often)."""
  total = int(sum(counts))
  if kind == "ties":
    descs = rng.integers(0, 3, (total, 16, dim)).astype(np.float32)
  else:
    descs = rng.normal(size=(total, 16, dim)).astype(np.float32)
  return types.DescriptorSet(
      sequences=tuple(f"seq_{i}" for i in range(len(counts))),
      offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), descs=descs)


def pair_list(counts, n, rng: np.random.Generator, same_sequence: bool,
              same_patch: bool = False) -> types.PairList:
  """n random pairs over sequences with `counts` patches (t in 0..5)."""
  counts = np.asarray(counts)
  seq1 = rng.integers(0, counts.size, n)
  seq2 = seq1 if same_sequence else rng.integers(0, counts.size, n)
  idx1 = rng.integers(0, counts[seq1])
  idx2 = idx1 if same_patch else rng.integers(0, counts[seq2])
  return types.PairList(seq1=seq1, t1=rng.integers(0, 6, n), idx1=idx1,
                        seq2=seq2.copy(), t2=rng.integers(0, 6, n), idx2=idx2.copy())


def verification_task(counts, n, rng: np.random.Generator) -> types.VerificationTask:
  return types.VerificationTask(
      positives=pair_list(counts, n, rng, same_sequence=True, same_patch=True),
      intra_negatives=pair_list(counts, n, rng, same_sequence=True),
      inter_negatives=pair_list(counts, n, rng, same_sequence=False))


def retrieval_task(counts, num_queries, num_distractors,
                   rng: np.random.Generator) -> types.RetrievalTask:
  """Distinct random patches: the first num_queries are queries, the rest distractors."""
  counts = np.asarray(counts)
  every = np.array([(s, i) for s in range(counts.size) for i in range(counts[s])], np.int64)
  rows = every[rng.permutation(len(every))[:num_queries + num_distractors]]
  return types.RetrievalTask(queries=rows[:num_queries], distractors=rows[num_queries:])
