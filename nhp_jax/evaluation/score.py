"""Descriptors in memory -> results document: the HPatches benchmarks, inputs validated first.

`evaluate_descriptor_set` scores a DescriptorSet on the benchmarks it is
asked for (`types.BENCHMARKS`) and returns the results document
(`report.results_json`). Every input (splits, task files) is read and
validated before the first kernel runs, so a malformed file fails in
seconds, not after an hour of scoring.

Scorers: `default_scorers` gives the kernels' result dicts (verification
with the official code's own auc/ap beside the kernels', for the tables);
`detail_scorers` (descriptor folders) adds what the official result
pickles hold beyond the tables, computed from the same kernels and
distances, so every number is unchanged:

* verification, per level and negative set, the official pickle's
  entries: "balanced" = the ROC curve of the whole list (fpr, tpr, auc) and
  "imbalanced" = the precision/recall curve of the cut list (pr, rc, ap),
  the official `metrics.roc` / `metrics.pr` arrays (one point per rank,
  from rank 0) sampled at at most `curve_points` evenly spaced ranks, first
  and last included ("rank": which; "points": the official array's
  length), auc and ap by the official arithmetic (`verification_curves`);
* matching: "sequences", the split order the per-sequence APs are summed in;
* retrieval: levels[lv]["per_query"][str(P)], the AP of every query (in
  file order; "queries" names them [sequence, patch]).
"""

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from absl import logging
import numpy as np

from nhp_jax.data import layout
from nhp_jax.data import reader
from nhp_jax.data import splits as splits_lib
from nhp_jax.errors import ConfigError, TaskFileError
from nhp_jax.evaluation import report
from nhp_jax.evaluation import task_files
from nhp_jax.evaluation import types

METRICS = ("l1", "l2")     # the kernels' names; the official --dist says L1, L2
DEFAULT_CURVE_POINTS = 1001
Scorer = Callable[..., dict]


def normalize_metric(metric: str, what: str = "metric") -> str:
  """"l1" or "l2" from any case of it ("L2" as the official --dist); ConfigError otherwise."""
  name = metric.lower() if isinstance(metric, str) else metric
  if name not in METRICS:
    raise ConfigError(f"{what}: expected one of {', '.join(METRICS)} in any case (L2, L1 as "
                      f"the official --dist), found {metric!r}")
  return name


def default_scorers(metric: str) -> dict[str, Scorer]:
  """The JAX kernels of the three tasks, after checking that they know `metric`.

  Verification also keeps the official code's own auc and ap of every list
  (`verification_curves` without the arrays), which the printed tables show.
  Imported on first use: they pull in JAX, which reading and validating
  inputs does not need.

  Raises:
    ConfigError: an unknown metric (naming the known ones).
  """
  # pylint: disable=g-import-not-at-top
  from nhp_jax.evaluation import kernels, matching, retrieval
  kernels.check_metric(metric)
  return {
      "verification": lambda descs, verif, retr, metric: verification_with_curves(
          descs, verif, metric, curve_points=0),
      "matching": lambda descs, verif, retr, metric: matching.evaluate_matching(descs, metric),
      "retrieval": lambda descs, verif, retr, metric: retrieval.evaluate_retrieval(
          descs, retr, types.RETRIEVAL_POOL_SIZES, metric),
  }


# ---------------------------------------------------------------- detail scorers


def curve_ranks(points: int, max_points: int) -> np.ndarray:
  """The ranks of a `points`-long curve that are kept: all, or `max_points` evenly spaced
  (first and last included)."""
  if max_points >= points:
    return np.arange(points)
  return np.unique(np.round(np.linspace(0, points - 1, max_points)).astype(np.int64))


def _ranked_counts(dist: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The official `tpfp` of a list of finite distances: (tp, fp), each (N + 1,) from rank 0.

  Ranked by descending score = ascending distance, stable (the official
  mergesort of -scores), so on equal distance the earlier entry comes first.
  """
  ranked = positive[np.argsort(dist, kind="stable")]
  tp = np.concatenate([[0], np.cumsum(ranked)])
  fp = np.concatenate([[0], np.cumsum(~ranked)])
  return tp, fp


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
  """numpy's trapezoid rule: the official `np.trapz` (renamed in numpy 2), the same sums."""
  return float(np.trapezoid(y, x))


def verification_curves(neg: np.ndarray, pos: np.ndarray, list_size: int,
                        max_points: int) -> dict[str, dict[str, Any]]:
  """One level and negative set as the official result pickle holds it.

  The official `eval_verification` keeps, per level and negative set,
  "balanced": {fpr, tpr, auc} (`metrics.roc` of the whole list) and
  "imbalanced": {pr, rc, ap} (`metrics.pr` of its first `list_size`
  entries); the same here, with its float arithmetic: tpr = tp / p, fpr =
  fp / n, rc = tp / p, pr = max(tp, 1e-10) / max(tp + fp, 1e-10), one value
  per rank from rank 0, and auc / ap = numpy's trapezoid over the whole
  curve. So auc and ap are the official code's own values, which may differ
  from the kernels' in the last bits (they sum in another order); the
  printed tables use these. The arrays are kept at `curve_ranks(points,
  max_points)` ("rank"; "points": the official array's length); max_points
  0 keeps none.

  Args:
    neg: (Nn,) float32 negative-pair distances, file order.
    pos: (Np,) float32 positive-pair distances, file order.
    list_size: entries of [negatives..., positives...] kept for "imbalanced".
    max_points: most points kept per curve; 0: no arrays.

  Returns:
    {"balanced": {"auc", "fpr", "tpr", "rank", "points"},
     "imbalanced": {"ap", "pr", "rc", "rank", "points"}}.
  """
  tiny = 1e-10
  dist = np.concatenate([np.asarray(neg, np.float32), np.asarray(pos, np.float32)])
  positive = np.concatenate([np.zeros(len(neg), bool), np.ones(len(pos), bool)])
  tp, fp = _ranked_counts(dist, positive)
  tpr = tp / float(max(len(pos), tiny))
  fpr = fp / float(max(len(neg), tiny))
  balanced = {"auc": _trapezoid(tpr, fpr), "points": int(tp.size)}
  tp, fp = _ranked_counts(dist[:list_size], positive[:list_size])
  rc = tp / float(max(int(positive[:list_size].sum()), tiny))
  pr = np.maximum(tp, tiny) / np.maximum(tp + fp, tiny)
  imbalanced = {"ap": _trapezoid(pr, rc), "points": int(tp.size)}
  if max_points:
    keep = curve_ranks(tpr.size, max_points)
    balanced.update(fpr=fpr[keep].tolist(), tpr=tpr[keep].tolist(), rank=keep.tolist())
    keep = curve_ranks(pr.size, max_points)
    imbalanced.update(pr=pr[keep].tolist(), rc=rc[keep].tolist(), rank=keep.tolist())
  return {"balanced": balanced, "imbalanced": imbalanced}


def verification_with_curves(descs: types.DescriptorSet, task: types.VerificationTask,
                             metric: str, curve_points: int = DEFAULT_CURVE_POINTS) -> dict:
  """`verification.evaluate_verification`, plus what the official result pickle holds.

  The same checks, distances (`verification.pair_distances`) and AP/AUC
  kernel (`kernels.verification_ap_auc`) as `evaluate_verification`, so
  "ap", "auc" and "mAP" are its numbers; levels[lv][neg] also holds the
  official "balanced" (ROC) and "imbalanced" (PR) entries of
  `verification_curves`, with at most curve_points points per curve (0:
  their auc and ap only).

  Raises:
    As `evaluate_verification`.
  """
  # pylint: disable=g-import-not-at-top,protected-access
  from nhp_jax.evaluation import kernels, verification
  kernels.check_metric(metric)
  kernels.check_finite(descs.descs)
  files = {"positives": task.positives, "inter": task.inter_negatives,
           "intra": task.intra_negatives}
  for name, pairs in files.items():
    verification._check_pairs(descs, pairs, name)
  if len(task.positives) == 0:
    raise TaskFileError("verification positives: expected at least one pair, found 0")
  for name in verification.NEGATIVE_SETS:
    if len(files[name]) != len(task.positives):
      raise TaskFileError(f"verification {name} negatives: expected as many pairs as the "
                          f"positives ({len(task.positives)}), found {len(files[name])}")
  table = kernels.to_exact(np.asarray(descs.descs.reshape(-1, descs.dim), np.float32))
  dists = {name: verification.pair_distances(table, descs, pairs, metric)
           for name, pairs in files.items()}
  del table
  for name, d in dists.items():
    kernels.check_finite(d, f"verification {name} distances (float32 overflow)")
  list_size = verification.imbalanced_list_size(len(task.positives))
  levels = {}
  for lv, level in enumerate(layout.LEVELS):
    levels[level] = {}
    for neg in verification.NEGATIVE_SETS:
      ap, auc = kernels.verification_ap_auc(dists[neg][lv], dists["positives"][lv], list_size)
      levels[level][neg] = {"ap": ap, "auc": auc, **verification_curves(
          dists[neg][lv], dists["positives"][lv], list_size, curve_points)}
  aps = [levels[lv][neg]["ap"] for lv in layout.LEVELS for neg in verification.NEGATIVE_SETS]
  return {"mAP": float(np.mean(aps)), "levels": levels}


def matching_with_order(descs: types.DescriptorSet, metric: str) -> dict:
  """`matching.evaluate_matching`, plus "sequences": the order its per-sequence APs follow."""
  # pylint: disable-next=g-import-not-at-top
  from nhp_jax.evaluation import matching
  result = matching.evaluate_matching(descs, metric)
  result["sequences"] = list(descs.sequences)
  return result


def retrieval_with_queries(descs: types.DescriptorSet, task: types.RetrievalTask,
                           pool_sizes: Sequence[int] = types.RETRIEVAL_POOL_SIZES,
                           metric: str = "l2") -> dict:
  """`retrieval.evaluate_retrieval`, plus every query's AP.

  One `retrieval.query_ap` call, averaged as `evaluate_retrieval` does (the
  same numbers); levels[lv]["per_query"][str(P)] lists the (Q,) APs and
  "queries" the (sequence name, patch) of each query.

  Raises:
    As `evaluate_retrieval`.
  """
  # pylint: disable=g-import-not-at-top,protected-access
  from nhp_jax.evaluation import kernels, retrieval
  kernels.check_metric(metric)
  kernels.check_finite(descs.descs)
  pool_sizes = tuple(int(p) for p in pool_sizes)
  if not pool_sizes or min(pool_sizes) < 1:
    raise ConfigError(f"pool_sizes: expected sizes >= 1, found {pool_sizes}")
  retrieval._check_task(descs, task)
  per_query = retrieval.query_ap(descs, task, pool_sizes, metric)  # (Q, 3, P)
  ap = per_query.mean(axis=0)
  levels = {}
  for lv, level in enumerate(layout.LEVELS):
    levels[level] = {"ap": float(ap[lv].mean()),
                     "per_pool": {str(p): float(ap[lv, i]) for i, p in enumerate(pool_sizes)},
                     "per_query": {str(p): per_query[:, lv, i].tolist()
                                   for i, p in enumerate(pool_sizes)}}
  return {"mAP": float(np.mean([levels[lv]["ap"] for lv in layout.LEVELS])), "levels": levels,
          "queries": [[descs.sequences[int(s)], int(i)] for s, i in task.queries]}


def detail_scorers(metric: str, curve_points: int = DEFAULT_CURVE_POINTS) -> dict[str, Scorer]:
  """Scorers whose results also hold curves and per-query APs (see the module docstring).

  Raises:
    ConfigError: an unknown metric, or curve_points that is neither 0 nor >= 2.
  """
  # pylint: disable-next=g-import-not-at-top
  from nhp_jax.evaluation import kernels
  kernels.check_metric(metric)
  check_curve_points(curve_points)
  return {
      "verification": lambda descs, verif, retr, metric: verification_with_curves(
          descs, verif, metric, curve_points),
      "matching": lambda descs, verif, retr, metric: matching_with_order(descs, metric),
      "retrieval": lambda descs, verif, retr, metric: retrieval_with_queries(
          descs, retr, types.RETRIEVAL_POOL_SIZES, metric),
  }


def check_curve_points(curve_points: int, what: str = "curve_points") -> int:
  """`curve_points` if 0 (no curves) or >= 2 (both ends kept); ConfigError otherwise."""
  if not isinstance(curve_points, (int, np.integer)) or (curve_points != 0 and curve_points < 2):
    raise ConfigError(f"{what}: expected 0 (no curves) or at least 2 points per curve, "
                      f"found {curve_points}")
  return int(curve_points)


# ---------------------------------------------------------------- scoring


def check_options(tasks: Sequence[str], n_pairs: int) -> tuple[str, ...]:
  """The requested tasks in benchmark order; ConfigError on unknown tasks or n_pairs < 1."""
  tasks = tuple(tasks)
  unknown = [t for t in tasks if t not in types.BENCHMARKS]
  if unknown or not tasks:
    raise ConfigError(f"tasks: expected a non-empty subset of {', '.join(types.BENCHMARKS)}, "
                      f"found {', '.join(tasks) or 'none'}")
  if "verification" in tasks and n_pairs < 1:
    raise ConfigError(f"n_pairs: expected at least 1 pair per verification file, found {n_pairs}")
  return tuple(t for t in types.BENCHMARKS if t in tasks)


def ref_patches_reader(data_dir: str | os.PathLike,
                       sequences: Sequence[str]) -> Callable[[], list[np.ndarray]]:
  """A function reading the `ref` patches of `sequences` at their stored size.

  Retrieval lists are generated from these pixels (their std decides which
  patches count as textured), so the HPatches release gives its 65x65
  patches, as for the official lists, and N-HPatches its 32x32 ones.
  """
  def read() -> list[np.ndarray]:
    source = reader.open_source(data_dir)
    reader.check_sequences(source, list(sequences))
    out = []
    for name in sequences:
      image = reader.read_png(os.path.join(source.sequence_dir(name), "ref.png"))
      side = source.width
      out.append(image[:image.shape[0] // side * side].reshape(-1, side, side))
    return out
  return read


def _run_info(descs: types.DescriptorSet, split: str, metric: str, tasks: Sequence[str],
              verif: types.VerificationTask | None, retr: types.RetrievalTask | None) -> dict:
  info = {"split": split, "metric": metric, "tasks": list(tasks),
          "sequences": len(descs.sequences), "patches": int(descs.offsets[-1]),
          "dim": descs.dim}
  if verif is not None:
    info["verification_pairs"] = len(verif.positives)
  if retr is not None:
    info["retrieval_queries"] = int(len(retr.queries))
    info["retrieval_distractors"] = int(len(retr.distractors))
  return info


def evaluate_descriptor_set(descs: types.DescriptorSet,
                            split: str,
                            tasks_dir: str | os.PathLike | None = None,
                            data_dir: str | os.PathLike | None = None,
                            tasks: Sequence[str] = types.BENCHMARKS,
                            n_pairs: int = task_files.OFFICIAL_N_PAIRS,
                            metric: str = "l2",
                            cache_dir: str | os.PathLike | None = None,
                            scorers: Mapping[str, Scorer] | None = None,
                            meta: Mapping[str, Any] | None = None,
                            ref_patches: Callable[[], list[np.ndarray]] | None = None) -> dict:
  """Scores descriptors of a split's test sequences on the chosen benchmarks.

  Args:
    descs: descriptors (L, 16, D) float32 of the split's test sequences.
    split: split name (names the task files).
    tasks_dir: folder that may hold official task CSVs (see
      `task_files.load_tasks`).
    data_dir: dataset root: caches generated task files and gives the
      `ref` pixels when retrieval lists must be generated.
    tasks: subset of ("verification", "matching", "retrieval").
    n_pairs: rows per generated verification file (official 1,000,000).
    metric: descriptor distance, passed to the kernels ("l2" as the benchmark).
    cache_dir: overrides where generated task files are cached.
    scorers: {task: fn(descs, verification_task, retrieval_task, metric) ->
      result dict}; default `default_scorers(metric)` (`detail_scorers` for
      curves and per-query APs).
    meta: extra entries for details["meta"] of the document.
    ref_patches: returns the `ref` patches (N_s, H, W) uint8 per sequence of
      `descs`, from which retrieval lists are generated when needed;
      default: read from `data_dir` (required for a subset of a sequence's
      labels, which the files on disk do not match).

  Returns:
    The `report.results_json` document.

  Raises:
    TaskFileError, DataError, ConfigError: bad inputs, before any scoring.
  """
  tasks = check_options(tasks, n_pairs)
  scorers = scorers if scorers is not None else default_scorers(metric)
  start = time.perf_counter()
  wanted = tuple(t for t in task_files.FILE_BENCHMARKS if t in tasks)
  if ref_patches is None and data_dir is not None:
    ref_patches = ref_patches_reader(data_dir, descs.sequences)
  verif, retr = task_files.load_tasks(split, descs, tasks_dir=tasks_dir, data_dir=data_dir,
                                      n_pairs=n_pairs, ref_patches=ref_patches,
                                      cache_dir=cache_dir, tasks=wanted)
  logging.info("task files ready in %.1f s", time.perf_counter() - start)
  results, wall = {}, {}
  for task in tasks:
    logging.info("scoring %s: %d sequences, %d patches, %d-d descriptors", task,
                 len(descs.sequences), int(descs.offsets[-1]), descs.dim)
    t0 = time.perf_counter()
    results[task] = scorers[task](descs, verif, retr, metric)
    wall[task] = time.perf_counter() - t0
    logging.info("%s: mAP %.4f (%.1f s)", task, results[task]["mAP"], wall[task])
  info = _run_info(descs, split, metric, tasks, verif, retr)
  info.update(meta or {})
  return report.results_json(results, wall, info)


def splits_file(tasks_dir: str | None, data_dir: str | None) -> str | None:
  """The splits.json to use: the task folder's, else the dataset's, else None (vendored)."""
  candidates = []
  if tasks_dir is not None:
    candidates += [os.path.join(tasks_dir, splits_lib.SPLITS_FILENAME),
                   os.path.join(tasks_dir, "splits", splits_lib.SPLITS_FILENAME)]
  if data_dir is not None:
    candidates.append(os.path.join(data_dir, splits_lib.SPLITS_FILENAME))
  return next((c for c in candidates if os.path.isfile(c)), None)
