"""Learning curves: train and validation metrics per epoch, as the seed's Figs. 2, 3, 9, 14, 15.

Drawn with matplotlib's Agg canvas on a standalone Figure (no pyplot global
state, safe in threads and without a display), written atomically.
"""

import math
import os
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nhp_jax import atomic


def plot_learning_curves(records: Sequence[Mapping[str, float]], path: str | os.PathLike, *,
                         metrics: Sequence[tuple[str, str]], title: str) -> None:
  """One panel per metric: its train and validation values against the epoch.

  Args:
    records: one dict per epoch with "epoch" (1-based) and, per metric m,
      "train_<m>" and/or "val_<m>" (missing or non-finite values are skipped).
    path: the PNG to write.
    metrics: (m, axis label) per panel, e.g. [("loss", "MAE loss (pixels)")].
    title: figure title.
  """
  fig = Figure(figsize=(5.0 * len(metrics), 3.6), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(metrics), squeeze=False)[0]
  for ax, (name, label) in zip(axes, metrics):
    for split, style in (("train", "o-"), ("val", "s--")):
      points = [(r["epoch"], r[f"{split}_{name}"]) for r in records
                if f"{split}_{name}" in r and math.isfinite(r[f"{split}_{name}"])]
      if points:
        x, y = zip(*points)
        ax.plot(x, y, style, markersize=3, label="train" if split == "train" else "validation")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    if ax.lines:
      ax.legend()
  fig.suptitle(title)
  fig.tight_layout()
  with atomic.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png")


def plot_run_curves(records_by_run: Mapping[str, Sequence[Mapping[str, float]]],
                    path: str | os.PathLike, *, metric: str, label: str, title: str) -> None:
  """Several runs' curves of one metric on shared axes: validation solid, train dashed.

  Args:
    records_by_run: {run name: its per-epoch records (as `plot_learning_curves`)}.
    path: the PNG to write.
    metric: m, drawn from "val_<m>" and "train_<m>".
    label: the y-axis label.
    title: figure title.
  """
  fig = Figure(figsize=(6.4, 4.0), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  for color, (run, records) in enumerate(records_by_run.items()):
    for split, style in (("val", "s-"), ("train", "o--")):
      points = [(r["epoch"], r[f"{split}_{metric}"]) for r in records
                if f"{split}_{metric}" in r and math.isfinite(r[f"{split}_{metric}"])]
      if points:
        x, y = zip(*points)
        ax.plot(x, y, style, color=f"C{color}", markersize=3,
                alpha=1.0 if split == "val" else 0.5,
                label=f"{run} ({'validation' if split == 'val' else 'train'})")
  ax.set_xlabel("epoch")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_ylabel(label)
  ax.grid(True, alpha=0.3)
  if ax.lines:
    ax.legend(fontsize="small")
  ax.set_title(title)
  fig.tight_layout()
  with atomic.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png")
