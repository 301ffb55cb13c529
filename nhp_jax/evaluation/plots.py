"""Bar charts of benchmark results, with legends placed where they cover no bar.

* `plot_map_bars`: one group per task, one bar per compared pipeline (the
  studies' results.png); the legend sits outside the axes, to the right.
* `plot_benchmark_bars`: the HPatches benchmark's familiar figure (its
  `matlab/+rproc/bar_plot.m`, the paper's result plots): one panel per task,
  a horizontal bar per descriptor (its mean mAP in %, written beside the
  axes; descriptors sorted ascending from the top, as there), a marker per
  Easy/Hard/Tough value on it (verification: * inter, diamond intra), in
  the benchmark's green/purple/red; the legend below each panel.

Drawn with matplotlib's Agg canvas on a standalone Figure (no pyplot
global state) with constrained layout, written atomically; each function
returns the Figure, so tests can measure where its artists are.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib import colormaps
from matplotlib import transforms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from nhp_jax import atomic
from nhp_jax.evaluation import summary
from nhp_jax.evaluation import types

# The benchmark's colours of the three levels (res_article.m's task_clrs).
LEVEL_COLOURS = {"Easy": (0 / 256, 136 / 256, 55 / 256), "Hard": (94 / 256, 60 / 256, 153 / 256),
                 "Tough": (202 / 256, 0 / 256, 32 / 256)}
_MARKERS = {"inter": ("*", 7), "intra": ("D", 4), "": ("o", 5)}
AXIS_LABELS = {"verification": "Patch Verification mAP [%]",
               "matching": "Image Matching mAP [%]",
               "retrieval": "Patch Retrieval mAP [%]"}


def _save(fig: Figure, path: str | os.PathLike) -> None:
  with atomic.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png", bbox_inches="tight")


def plot_map_bars(maps: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                  title: str) -> Figure:
  """Grouped bars of mAP per task, legend outside the axes.

  Args:
    maps: {row label: (verification, matching, retrieval) mAPs in [0, 1]}.
    path: the PNG to write.
    title: figure title.

  Returns:
    The drawn Figure.
  """
  tasks = types.BENCHMARKS
  n = max(len(maps), 1)
  upright = n > 3  # narrow bars: value labels turned upright so neighbours do not collide
  fig = Figure(figsize=(max(6.4, 2.0 + 0.3 * n * len(tasks)), 3.8), dpi=100,
               layout="constrained")
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  width = 0.8 / n
  x = np.arange(len(tasks))
  for i, (label, values) in enumerate(maps.items()):
    bars = ax.bar(x + (i - (n - 1) / 2) * width, values, width, label=label)
    ax.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=1,
                 rotation=90 if upright else 0)
  ax.set_xticks(x, tasks)
  ax.set_ylabel("mAP")
  ax.set_ylim(0, 1.12 if upright else 1.0)  # room for upright labels of bars near 1
  ax.set_yticks(np.linspace(0, 1, 6))
  ax.grid(True, axis="y", alpha=0.3)
  ax.set_title(title)
  ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
  _save(fig, path)
  return fig


def plot_benchmark_bars(results: Mapping[str, Mapping[str, Mapping[str, Any]]],
                        path: str | os.PathLike, *, tasks: Sequence[str] = types.BENCHMARKS,
                        title: str | None = None) -> Figure:
  """The benchmark's bar figure for several descriptors.

  Args:
    results: {descriptor name: {task: result}} (results documents' details
      or cache entries' results).
    path: the PNG to write.
    tasks: one panel per task, left to right.
    title: figure title (none by default).

  Returns:
    The drawn Figure. Bars are the task's mean (`summary.bar_values`, in
    %), markers the per-level values; each panel's legend is below its
    x-axis label, outside the axes.
  """
  names = list(results)
  cmap = colormaps["tab10"]
  colours = {name: cmap(i % 10) for i, name in enumerate(names)}
  fig = Figure(figsize=(4.6 * len(tasks), 1.9 + 0.4 * len(names)), dpi=100,
               layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(tasks), squeeze=False)[0]
  # Below the tick labels and the axis label: one tick label and one axis label of
  # the default font, their pads and the ticks.
  below = 2.4 * 10 + 16
  for ax, task in zip(axes, tasks):
    values = {name: summary.bar_values(task, results[name][task]) for name in names}
    order = sorted(names, key=lambda nm: values[nm][0])  # ascending, drawn from the top
    handles = {}
    for pos, name in enumerate(order):
      mean, markers = values[name]
      ax.barh(pos, 100 * mean, height=0.7, color=colours[name], alpha=0.55, zorder=1)
      ax.text(101, pos, f"{100 * mean:.2f}%", ha="left", va="center", fontsize="small",
              clip_on=False)
      for label, v in markers.items():
        level, _, negatives = label.partition(" ")
        marker, size = _MARKERS[negatives]
        (line,) = ax.plot([100 * v], [pos], linestyle="none", marker=marker, markersize=size,
                          color=LEVEL_COLOURS[level], zorder=3)
        handles.setdefault(label, line)
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.5, -0.5)  # first (lowest) at the top
    ax.set_xlim(0, 100)
    ax.set_xlabel(AXIS_LABELS[task])
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    offset = transforms.ScaledTranslation(0, -below / 72, fig.dpi_scale_trans)
    # Column-major legend of 3 columns: verification's inter row above its intra row.
    labels = sorted(handles, key=lambda lb: (list(LEVEL_COLOURS).index(lb.partition(" ")[0]),
                                             lb.partition(" ")[2] != "inter"))
    ax.legend([handles[lb] for lb in labels], labels, loc="upper center",
              bbox_to_anchor=(0.5, 0.0), bbox_transform=ax.transAxes + offset,
              ncol=3, fontsize="small", frameon=False, borderaxespad=0, handletextpad=0.3)
  if title:
    fig.suptitle(title)
  _save(fig, path)
  return fig
