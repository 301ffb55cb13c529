"""Results of the three benchmarks: one JSON document and the tables the official printer shows.

`results_json` gathers the kernels' result dicts into
`{"verification": x, "matching": y, "retrieval": z, "details": {...}}`
(x, y, z: headline mAP, None for a task not run; details: per level, per
inter/intra, per pool size, wall time per task, and how the run was set
up). `format_tables` renders it like the benchmark's `hpatches_results.py`:
verification as Inter/Intra x Easy/Hard/Tough for the imbalanced (AP) and
balanced (AUC) variants, matching as Easy/Hard/Tough/mean, retrieval as
levels x pool sizes with a mean row.
"""

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from nhp_jax import atomic
from nhp_jax.data import layout
from nhp_jax.evaluation import summary

TASKS = ("verification", "matching", "retrieval")
LEVEL_NAMES = {"e": "Easy", "h": "Hard", "t": "Tough"}
NEGATIVES = ("inter", "intra")


def _plain(x: Any) -> Any:
  """JSON-ready copy: numpy scalars and arrays to Python, keys to strings."""
  if isinstance(x, Mapping):
    return {str(k): _plain(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_plain(v) for v in x]
  if isinstance(x, np.ndarray):
    return _plain(x.tolist())
  if isinstance(x, np.generic):
    return x.item()
  return x


def results_json(results: Mapping[str, Mapping[str, Any]],
                 wall_times: Mapping[str, float] | None = None,
                 meta: Mapping[str, Any] | None = None) -> dict:
  """The results document of one evaluation.

  Args:
    results: {task: result dict of its kernel}, tasks among `TASKS`; each
      dict has "mAP" and "levels".
    wall_times: {task: seconds spent scoring it}.
    meta: how the run was set up (split, metric, task sources, ...), kept
      under details["meta"].

  Returns:
    {"verification": mAP or None, "matching": ..., "retrieval": ...,
     "details": {task: {"mAP", "levels", "wall_time_s"}, "meta": {...}}}.
  """
  unknown = sorted(set(results) - set(TASKS))
  if unknown:
    raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
  wall_times = wall_times or {}
  doc = {task: None for task in TASKS}
  doc.update(summary.headline(results))
  details = {}
  for task, result in results.items():
    details[task] = _plain(result)
    if task in wall_times:
      details[task]["wall_time_s"] = round(float(wall_times[task]), 3)
  details["meta"] = _plain(dict(meta or {}))
  doc["details"] = details
  return doc


def write_results(path: str | os.PathLike, doc: Mapping[str, Any]) -> None:
  """Writes a `results_json` document atomically."""
  atomic.write_json(path, _plain(doc))


def _fmt(x: Any) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  return f"{float(x):.4f}" if isinstance(x, (int, float)) else str(x)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
  cells = [headers] + [[_fmt(c) if i else str(c) for i, c in enumerate(r)] for r in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
  lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def _verification_tables(d: Mapping[str, Any]) -> list[str]:
  out = []
  for variant, key in (("Imbalanced", "ap"), ("Balanced", "auc")):
    rows = [[LEVEL_NAMES[lv]] + [d["levels"][lv][neg].get(key) for neg in NEGATIVES]
            for lv in layout.LEVELS]
    out.append(f"{variant} variant ({key.upper()})\n" + _table(["Noise", "Inter", "Intra"], rows))
  return out


def _matching_tables(d: Mapping[str, Any]) -> list[str]:
  levels = [d["levels"][lv] for lv in layout.LEVELS]
  rows = [["mAP"] + [lv["ap"] for lv in levels] + [d["mAP"]]]
  if all("success" in lv for lv in levels):
    rates = [lv["success"] for lv in levels]
    rows.append(["success rate"] + rates + [float(np.mean(rates))])
  return [_table(["", "Easy", "Hard", "Tough", "mean"], rows)]


def _retrieval_tables(d: Mapping[str, Any]) -> list[str]:
  pools = sorted(d["levels"][layout.LEVELS[0]]["per_pool"], key=int)
  rows = [[LEVEL_NAMES[lv]] + [d["levels"][lv]["per_pool"][p] for p in pools]
          + [d["levels"][lv]["ap"]] for lv in layout.LEVELS]
  means = np.mean(np.array([r[1:] for r in rows], np.float64), axis=0)
  rows.append(["mean"] + means.tolist())
  return [_table(["Noise"] + [str(p) for p in pools] + ["mean"], rows)]


_TABLES = {"verification": _verification_tables, "matching": _matching_tables,
           "retrieval": _retrieval_tables}


def format_tables(doc: Mapping[str, Any]) -> str:
  """Readable tables of a `results_json` document, one block per task that ran."""
  details = doc.get("details", {})
  meta = details.get("meta", {})
  blocks = []
  if meta:
    blocks.append("  ".join(f"{k}={meta[k]}" for k in ("split", "metric", "descriptors")
                            if k in meta))
  for task in TASKS:
    if doc.get(task) is None:
      continue
    d = details[task]
    title = f"{task.capitalize()}: mAP {_fmt(doc[task])}"
    if "wall_time_s" in d:
      title += f"  ({d['wall_time_s']:.1f} s)"
    blocks.append("\n\n".join([title] + _TABLES[task](d)))
  blocks.append("Headline: " + "  ".join(f"{t} {_fmt(doc.get(t))}" for t in TASKS))
  return "\n\n".join(blocks) + "\n"
