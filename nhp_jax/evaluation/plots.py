"""Bar charts of benchmark mAPs: one group per task, one bar per compared pipeline.

Drawn with matplotlib's Agg canvas on a standalone Figure (no pyplot
global state), written atomically.
"""

import os
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from nhp_jax import atomic
from nhp_jax.evaluation import report


def plot_map_bars(maps: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                  title: str) -> None:
  """Grouped bars of mAP per task.

  Args:
    maps: {row label: (verification, matching, retrieval) mAPs in [0, 1]}.
    path: the PNG to write.
    title: figure title.
  """
  fig = Figure(figsize=(6.4, 3.6), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  tasks = report.TASKS
  width = 0.8 / max(len(maps), 1)
  x = np.arange(len(tasks))
  for i, (label, values) in enumerate(maps.items()):
    bars = ax.bar(x + (i - (len(maps) - 1) / 2) * width, values, width, label=label)
    ax.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=1)
  ax.set_xticks(x, tasks)
  ax.set_ylabel("mAP")
  ax.set_ylim(0, 1)
  ax.grid(True, axis="y", alpha=0.3)
  ax.legend(fontsize="small", loc="upper right")
  ax.set_title(title)
  fig.tight_layout()
  with atomic.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png")
