"""Results of the three benchmarks: one JSON document and the tables the official printer shows.

`results_json` gathers the kernels' result dicts into
`{"verification": x, "matching": y, "retrieval": z, "details": {...}}`
(x, y, z: headline mAP, None for a task not run; details: per level, per
inter/intra, per pool size, wall time per task, and how the run was set
up; with the detail scorers of `runner` also the verification PR and ROC
curves, per-sequence matching APs and per-query retrieval APs).

`format_official` prints what the benchmark's `hpatches_results.py` prints,
in its order: per task "<Task> task results:", then per descriptor
verification's balanced (AUC) table then its imbalanced (AP) table, rows
Easy/Hard/Tough x Inter/Intra; matching's one row Easy/Hard/Tough/mean;
retrieval's rows Easy/Hard/Tough/mean x pool sizes. The numbers come from
`summary` (the printer's arithmetic) and are shown as it shows them
(6 significant digits). `format_tables` is one document's tables plus what
only nhp_jax reports (success rates, headline mAPs, timings).
"""

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nhp_jax import atomic
from nhp_jax.evaluation import summary
from nhp_jax.evaluation import types

types.BENCHMARKS = types.BENCHMARKS
LEVEL_NAMES = summary.LEVEL_NAMES
NEGATIVES = summary.NEGATIVES
LAYOUTS = ("official", "side_by_side")  # of `format_official`


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
    results: {task: result dict of its kernel}, tasks among `types.BENCHMARKS`; each
      dict has "mAP" and "levels".
    wall_times: {task: seconds spent scoring it}.
    meta: how the run was set up (split, metric, task sources, ...), kept
      under details["meta"].

  Returns:
    {"verification": mAP or None, "matching": ..., "retrieval": ...,
     "details": {task: {"mAP", "levels", "wall_time_s"}, "meta": {...}}}.
  """
  unknown = sorted(set(results) - set(types.BENCHMARKS))
  if unknown:
    raise ValueError(f"unknown tasks {unknown}; known: {', '.join(types.BENCHMARKS)}")
  wall_times = wall_times or {}
  doc = {task: None for task in types.BENCHMARKS}
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


# ---------------------------------------------------------------- tables


def official_number(x: Any) -> str:
  """A number as the official printer shows it (tabulate's default "g": 6 significant digits)."""
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  return format(float(x), "g")


def _is_number(x: Any) -> bool:
  return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _decimals(cell: str) -> int:
  """Characters after the decimal point (or exponent mark); -1 for an integer."""
  pos = cell.rfind(".")
  if pos < 0:
    pos = cell.lower().rfind("e")
  return len(cell) - pos - 1 if pos >= 0 else -1


def simple_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
  """A table laid out like tabulate's "simple" format, as the official printer uses it.

  Numeric columns: values formatted by `official_number`, decimal points
  aligned, right-justified under a right-justified header; other columns
  left-justified. Each column is at least its header plus 2 wide; columns
  are separated by two spaces, the header by a line of dashes.
  """
  headers = [str(h) for h in headers]
  columns = []
  for i, header in enumerate(headers):
    values = [r[i] for r in rows]
    numeric = bool(values) and all(_is_number(v) for v in values)
    if numeric:
      cells = [official_number(v) for v in values]
      most = max(_decimals(c) for c in cells)
      cells = [c + " " * (most - _decimals(c)) for c in cells]
    else:
      cells = [str(v) for v in values]
    width = max([len(header) + 2] + [len(c) for c in cells])
    just = str.rjust if numeric else str.ljust
    columns.append([just(header, width), "-" * width] + [just(c, width) for c in cells])
  return "\n".join("  ".join(col[k] for col in columns).rstrip()
                   for k in range(len(rows) + 2))


def official_blocks(task: str, result: Mapping[str, Any], name: str) -> list[str]:
  """One descriptor's blocks (title line + table) of one task, as hpatches_results.py prints them.

  verification: "<NAME> - Balanced variant (auc)" then "... Imbalanced
  variant (ap)", rows Easy/Hard/Tough x Inter/Intra; matching: "<NAME> -
  mAP", one row Easy/Hard/Tough/mean; retrieval: "<NAME> - mAP <Q>
  queries" (the printer's "10K" for 10,000), rows Easy/Hard/Tough/mean x
  pool sizes. Numbers from `summary` (the printer's arithmetic).
  """
  label = name.upper()
  if task == "verification":
    rows = summary.verification_rows(result)
    return [f"{label} - {variant.capitalize()} variant ({key})\n"
            + simple_table(["Noise", "Inter", "Intra"], rows[variant])
            for variant, key in summary.VARIANTS]
  if task == "matching":
    heads = [summary.LEVEL_NAMES[lv] for lv in summary.LEVELS] + ["mean"]
    return [f"{label} - mAP\n" + simple_table(heads, [summary.matching_row(result)])]
  if task == "retrieval":
    pools, rows = summary.retrieval_rows(result)
    q = summary.num_queries(result)
    queries = "10K" if q == 10000 else (f"{q}" if q is not None else "all")
    return [f"{label} - mAP {queries} queries\n" + simple_table(["Noise"] + pools, rows)]
  raise ValueError(f"unknown task {task!r}; known: {', '.join(types.BENCHMARKS)}")


def _side_by_side(columns: Sequence[str], width: int, gap: int = 4) -> str:
  """Text blocks placed next to each other, wrapped into rows at most `width` wide."""
  cols = [c.split("\n") for c in columns]
  widths = [max(len(line) for line in c) for c in cols]
  groups, current, used = [], [], 0
  for i, w in enumerate(widths):
    if current and used + gap + w > width:
      groups.append(current)
      current, used = [], 0
    used += (gap if current else 0) + w
    current.append(i)
  if current:
    groups.append(current)
  out = []
  for group in groups:
    height = max(len(cols[i]) for i in group)
    lines = [(" " * gap).join((cols[i][k] if k < len(cols[i]) else "").ljust(widths[i])
                              for i in group).rstrip()
             for k in range(height)]
    out.append("\n".join(lines))
  return "\n\n".join(out)


def format_official(results: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    tasks: Sequence[str] = types.BENCHMARKS, layout: str = "official",
                    width: int = 160) -> str:
  """The official printer's output for several descriptors.

  Args:
    results: {descriptor name: {task: result}}, descriptors in print order.
    tasks: tasks in print order (hpatches_results.py prints them in the
      order of its --task flags); each must be in every descriptor's results.
    layout: "official": per task "<Task> task results:" then each
      descriptor's blocks one below the other, as hpatches_results.py;
      "side_by_side": the same blocks, descriptors next to each other
      (wrapped at `width` characters).
    width: line width of the side-by-side layout.

  Returns:
    The text, ending with a newline.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, found {layout!r}")
  out = []
  for task in tasks:
    per_descriptor = ["\n\n".join(official_blocks(task, res[task], name))
                      for name, res in results.items()]
    if layout == "official":
      body = "\n\n".join(per_descriptor)
    else:
      body = _side_by_side(per_descriptor, width)
    out.append(f"{task.capitalize()} task results:\n{body}")
  return "\n\n\n".join(out) + "\n"


def descriptor_label(doc: Mapping[str, Any]) -> str:
  """The name a results document's tables are printed under."""
  meta = doc.get("details", {}).get("meta", {})
  for key in ("descriptor_name", "input"):
    if meta.get(key):
      return str(meta[key])
  if meta.get("descriptors"):
    return os.path.basename(os.path.normpath(str(meta["descriptors"])))
  return "descriptors"


def format_tables(doc: Mapping[str, Any], name: str | None = None) -> str:
  """The tables of a `results_json` document: the official printer's, then a summary.

  First a line with the set-up (split, metric, descriptors), then for each
  task that ran, in benchmark order, exactly what hpatches_results.py prints
  for it (`format_official`, numbers as the official code prints them),
  then what only nhp_jax reports: matching success rates, each task's
  headline mAP and its scoring time, and which tasks came from the results
  cache.

  Args:
    doc: a `results_json` document.
    name: the descriptor name in the block titles; default from its meta
      (`descriptor_label`).
  """
  details = doc.get("details", {})
  meta = details.get("meta", {})
  tasks = [t for t in types.BENCHMARKS if doc.get(t) is not None]
  blocks = []
  if meta:
    blocks.append("  ".join(f"{k}={meta[k]}" for k in ("split", "metric", "descriptors")
                            if k in meta))
  if tasks:
    name = name or descriptor_label(doc)
    blocks.append(format_official({name: {t: details[t] for t in tasks}}, tasks).rstrip("\n"))
  extra = []
  matching = details.get("matching", {}).get("levels", {})
  if doc.get("matching") is not None and all("success" in matching[lv] for lv in summary.LEVELS):
    extra.append("Matching success rate: " + "  ".join(
        f"{LEVEL_NAMES[lv]} {official_number(matching[lv]['success'])}" for lv in summary.LEVELS))
  for t in tasks:
    seconds = details[t].get("wall_time_s")
    notes = ([f"{seconds:.1f} s"] if seconds is not None else []) + (
        ["from the results cache"] if t in meta.get("cached_tasks", ()) else [])
    extra.append(f"{t.capitalize()}: mAP {official_number(doc[t])}"
                 + (f"  ({', '.join(notes)})" if notes else ""))
  blocks.append("\n".join(["nhp_jax summary (not printed by hpatches_results.py):"] + extra
                          + ["Headline: " + "  ".join(f"{t} {official_number(doc.get(t))}"
                                                       for t in types.BENCHMARKS)]))
  return "\n\n".join(blocks) + "\n"


def comparison_table(docs: Mapping[str, Mapping]) -> str:
  """Markdown, the seed's Fig. 4 layout: one row per benchmark, one column per document.

  Args:
    docs: {column name (an input kind, a pipeline, a descriptor): results document}.
  """
  names = list(docs)
  lines = ["| task | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for task in types.BENCHMARKS:
    cells = [docs[k].get(task) for k in names]
    lines.append(f"| {task} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells)
                 + " |")
  return "\n".join(lines) + "\n"


def input_tables(doc: Mapping) -> str:
  """The tables of each input kind of a checkpoint evaluation (`runner.evaluate_workdir`),
  then their comparison table."""
  docs = doc["details"]["inputs"]
  parts = [f"== {kind} inputs ==\n" + format_tables(d) for kind, d in docs.items()]
  return "\n".join(parts) + "\n" + comparison_table(docs)
