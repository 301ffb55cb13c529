"""The numbers of an evaluation: headline mAPs, and the rows the official results printer shows.

`headline` gives the three numbers of the project's results document.
`verification_rows`, `matching_row` and `retrieval_rows` give the numbers
of the tables of the official benchmark's printer (hpatches-benchmark,
`python/utils/results.py`, called by `hpatches_results.py`), computed with
its arithmetic so that printed digits agree:

* verification: per variant, in its order (balanced = ROC AUC, then
  imbalanced = AP), rows Easy, Hard, Tough with the inter and intra value
  (from the official pickle's entries when the result holds them: an AUC
  is a ratio of integers, often exactly halfway between two 6-digit
  values, where the last bits decide the printed digit).
* matching: one row Easy, Hard, Tough, mean: per level the sum of the AP of
  every (sequence, k) in sequence order then k = 1..5, added one after
  another, divided by their count; the mean is Python's `sum` of the three
  over 3, as the printer takes it.
* retrieval: rows Easy, Hard, Tough with one column per pool size (sorted):
  the sum over queries, in query order, of each query's AP, divided by the
  number of queries; then a `mean` row, the mean over the three levels taken
  in float32, as the printer casts its table to float32 first.

Where a result holds no per-item values (per-sequence matching APs,
per-query retrieval APs), its means are used as they are.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from nhp_jax.evaluation import types

LEVELS = ("e", "h", "t")
LEVEL_NAMES = {"e": "Easy", "h": "Hard", "t": "Tough"}
NEGATIVES = ("inter", "intra")
# hpatches_results.py iterates {'balanced': 'auc', 'imbalanced': 'ap'}: balanced first
# (insertion order in Python 3; in Python 2 both keys hash to slot 0 and
# 'balanced', inserted first, keeps it).
VARIANTS = (("balanced", "auc"), ("imbalanced", "ap"))


def headline(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
  """{"verification": x, "matching": y, "retrieval": z}: each task's mAP.

  Args:
    results: {task: the dict its `evaluate_*` returned}; tasks not scored
      are left out of the answer.
  """
  return {task: float(results[task]["mAP"]) for task in types.BENCHMARKS if task in results}


def _added_in_order(values) -> float:
  """0 + v0 + v1 + ...: the official printer's running sums (no pairwise summation)."""
  total = 0.0
  for v in values:
    total += float(v)
  return total


def verification_rows(result: Mapping[str, Any]) -> dict[str, list[list]]:
  """{variant: [[level name, inter, intra] for e, h, t]}, variants in the printer's order.

  Args:
    result: a verification result ({"levels": {lv: {neg: {"ap", "auc"}}}});
      where levels[lv][neg] holds the official "balanced"/"imbalanced"
      entries (`score.verification_curves`), their auc/ap are shown.
  """
  levels = result["levels"]

  def value(d, variant, key):
    # The official pickle's entry (the official arithmetic) when the result holds it.
    return float(d[variant][key] if isinstance(d.get(variant), Mapping) else d[key])

  return {variant: [[LEVEL_NAMES[lv]] + [value(levels[lv][neg], variant, key)
                                         for neg in NEGATIVES] for lv in LEVELS]
          for variant, key in VARIANTS}


def matching_row(result: Mapping[str, Any]) -> list[float]:
  """[Easy, Hard, Tough, mean] mAP as the official printer computes them.

  Args:
    result: a matching result; with "levels"[lv]["per_sequence"] ({name:
      [ap_k1..ap_k5]}) the sums follow "sequences" (the split's order) or,
      without it, the per_sequence order; else levels[lv]["ap"] is used.
  """
  levels = result["levels"]
  row = []
  for lv in LEVELS:
    per_seq = levels[lv].get("per_sequence")
    if per_seq:
      names = result.get("sequences") or list(per_seq)
      values = [ap for name in names for ap in per_seq[name]]
      # The printer divides by (count over all levels) / 3.0: this level's count.
      row.append(_added_in_order(values) / float(len(values)))
    else:
      row.append(float(levels[lv]["ap"]))
  row.append(sum(row) / float(len(row)))  # the printer's builtin sum (compensated from Python 3.12)
  return row


def pool_sizes(result: Mapping[str, Any]) -> list[int]:
  """The pool sizes of a retrieval result, ascending (the printer's column order)."""
  return sorted(int(p) for p in result["levels"][LEVELS[0]]["per_pool"])


def retrieval_rows(result: Mapping[str, Any]) -> tuple[list[int], list[list]]:
  """(pool sizes, rows) of the official retrieval table.

  Args:
    result: a retrieval result; with levels[lv]["per_query"] ({str(P):
      [AP of each query]}) each cell is the printer's sum over queries in
      order over their count; else levels[lv]["per_pool"] is used.

  Returns:
    pools ascending; rows [name, value per pool] for Easy, Hard, Tough as
    float, then ["mean", value per pool] as numpy float32, the mean of the
    three rows in float32 as the printer computes it.
  """
  pools = pool_sizes(result)
  rows = []
  for lv in LEVELS:
    level = result["levels"][lv]
    per_query = level.get("per_query")
    if per_query:
      cells = [_added_in_order(per_query[str(p)]) / float(len(per_query[str(p)]))
               for p in pools]
    else:
      cells = [float(level["per_pool"][str(p)]) for p in pools]
    rows.append([LEVEL_NAMES[lv]] + cells)
  # The printer builds a (mixed string/float) array, so the floats pass
  # through their shortest repr before the float32 cast: do the same.
  table = np.array(rows)[:, 1:].astype(np.float32)
  rows.append(["mean"] + list(np.mean(table, axis=0)))
  return pools, rows


def num_queries(result: Mapping[str, Any]) -> int | None:
  """Queries of a retrieval result, when it lists them (per-query APs or "queries")."""
  if "queries" in result:
    return len(result["queries"])
  per_query = result["levels"][LEVELS[0]].get("per_query")
  return len(next(iter(per_query.values()))) if per_query else None


def official_numbers(task: str, result: Mapping[str, Any]) -> dict:
  """The numbers of one task's official table(s), as a JSON-ready dict.

  verification: {variant: {level: {"inter", "intra"}}}; matching: {"Easy",
  "Hard", "Tough", "mean"}; retrieval: {row name: {str(P): value}}.
  """
  if task == "verification":
    return {variant: {row[0]: dict(zip(NEGATIVES, row[1:])) for row in rows}
            for variant, rows in verification_rows(result).items()}
  if task == "matching":
    return dict(zip([LEVEL_NAMES[lv] for lv in LEVELS] + ["mean"], matching_row(result)))
  if task == "retrieval":
    pools, rows = retrieval_rows(result)
    return {row[0]: {str(p): float(v) for p, v in zip(pools, row[1:])} for row in rows}
  raise ValueError(f"unknown task {task!r}; known: {', '.join(types.BENCHMARKS)}")


def bar_values(task: str, result: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
  """(bar length, {marker label: value}) of one task for the benchmark's bar figure.

  The bar is the task's mean (verification: mean imbalanced AP over levels x
  inter/intra, the headline; matching: the printer's mean; retrieval: the
  headline mAP); markers: each level's value (verification per negative set).
  """
  if task == "verification":
    markers = {f"{LEVEL_NAMES[lv]} {neg}": float(result["levels"][lv][neg]["ap"])
               for neg in NEGATIVES for lv in LEVELS}
    return float(result["mAP"]), markers
  if task == "matching":
    row = matching_row(result)
    return row[3], dict(zip([LEVEL_NAMES[lv] for lv in LEVELS], row[:3]))
  if task == "retrieval":
    return float(result["mAP"]), {LEVEL_NAMES[lv]: float(result["levels"][lv]["ap"])
                                  for lv in LEVELS}
  raise ValueError(f"unknown task {task!r}; known: {', '.join(types.BENCHMARKS)}")
