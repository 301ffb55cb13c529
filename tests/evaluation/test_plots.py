"""Bar charts: the PNG is written and no legend covers a bar, marker or label (artists' boxes)."""

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from PIL import Image

from nhp_jax.evaluation import plots

LABELS = ["seed proposal", "+ HardNet loss", "+ HardNet + SOS", "+ Adam (descriptor)",
          "+ full UNet, Adam (denoiser)", "+ flip/rot augmentation", "+ joint fine-tuning",
          "HardNet, shallow UNet", "HardNet + joint, shallow UNet", "HardNet + joint, DnCNN"]


def _boxes(fig):
  fig.canvas.draw()
  return fig.canvas.get_renderer()


def _legend_clear_of(fig, legend, renderer):
  box = legend.get_window_extent(renderer)
  for ax in fig.axes:
    assert not box.overlaps(ax.get_window_extent(renderer)), "legend inside an axes"
    for artist in ax.patches + ax.lines + ax.texts:
      if isinstance(artist, (Rectangle, Line2D)) or artist.get_text():
        assert not box.overlaps(artist.get_window_extent(renderer)), artist
    for label in [ax.xaxis.label] + ax.get_xticklabels() + ax.get_yticklabels():
      if label.get_text():
        assert not box.overlaps(label.get_window_extent(renderer)), label.get_text()


def test_map_bars_legend_covers_no_bar(tmp_path):
  rng = np.random.default_rng(0)
  for n in (2, len(LABELS)):
    maps = {label: rng.uniform(0.2, 0.95, 3).tolist() for label in LABELS[:n]}
    path = tmp_path / f"bars{n}.png"
    fig = plots.plot_map_bars(maps, path, title="Beyond the seed")
    renderer = _boxes(fig)
    (ax,) = fig.axes
    assert len(ax.patches) == 3 * n
    _legend_clear_of(fig, ax.get_legend(), renderer)
    with Image.open(path) as image:
      assert image.format == "PNG" and image.size[0] > 300
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # atomic


def _result(rng):
  levels = {lv: {neg: {"ap": rng.uniform(0.3, 0.9), "auc": rng.uniform(0.8, 1.0)}
                 for neg in ("inter", "intra")} for lv in "eht"}
  aps = [levels[lv][neg]["ap"] for lv in "eht" for neg in ("inter", "intra")]
  matching = {lv: {"ap": rng.uniform(0.1, 0.6)} for lv in "eht"}
  retrieval = {lv: {"ap": rng.uniform(0.3, 0.8), "per_pool": {"100": 0.5}} for lv in "eht"}
  return {"verification": {"mAP": float(np.mean(aps)), "levels": levels},
          "matching": {"mAP": float(np.mean([v["ap"] for v in matching.values()])),
                       "levels": matching},
          "retrieval": {"mAP": float(np.mean([v["ap"] for v in retrieval.values()])),
                        "levels": retrieval}}


def test_benchmark_bars_panels_markers_and_legends_below(tmp_path):
  rng = np.random.default_rng(1)
  results = {name: _result(rng) for name in ("sift", "hardnet", "tfeat-margin-star")}
  path = tmp_path / "compare.png"
  fig = plots.plot_benchmark_bars(results, path, title="HPatches split a")
  renderer = _boxes(fig)
  assert [ax.get_xlabel() for ax in fig.axes] == list(plots.AXIS_LABELS.values())
  for ax, task in zip(fig.axes, plots.AXIS_LABELS):
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 3
    widths = [b.get_width() for b in bars]
    assert widths == sorted(widths)  # ascending from the top, as the benchmark's figure
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(names) == sorted(results)
    markers = 6 if task == "verification" else 3
    assert len(ax.lines) == markers * len(results)
    legend = ax.get_legend()
    assert len(legend.get_texts()) == markers
    # Below its axes, clear of every panel's bars, markers, value labels and tick labels.
    assert legend.get_window_extent(renderer).y1 < ax.xaxis.label.get_window_extent(renderer).y0
    _legend_clear_of(fig, legend, renderer)
  verification = fig.axes[0]
  texts = {t.get_text() for t in verification.texts}
  assert f"{100 * results['sift']['verification']['mAP']:.2f}%" in texts
  with Image.open(path) as image:
    assert image.format == "PNG"
