"""A picture of a few labels of a PatchSet: clean views, then noisy ones, one row per label."""

import numpy as np
from PIL import Image
from PIL import ImageDraw

from nhp_jax import atomic
from nhp_jax.data import layout
from nhp_jax.data import patchset
from nhp_jax.data import reader
from nhp_jax.data import splits

# Columns drawn: (image type, noisy?).
COLUMNS = (("ref", False), ("e1", False), ("h1", False), ("t1", False), ("e5", False),
           ("h5", False), ("t5", False), ("ref", True), ("e1", True), ("t1", True), ("t5", True))


def pick_sequences(names: list[str], rows: int) -> list[str]:
  """Up to `rows` names, alternating i_ and v_ sequences (then the rest), in list order."""
  kinds = [[n for n in names if n.startswith(k)] for k in ("i_", "v_")]
  order = [n for pair in zip(*kinds) for n in pair]
  order += [n for n in names if n not in order]
  return order[:rows]


def pick_labels(ps: patchset.PatchSet, rng: np.random.Generator) -> np.ndarray:
  """(S',) int64: one random label of each non-empty sequence of `ps`."""
  return np.array([rng.integers(lo, hi) for lo, hi in zip(ps.offsets[:-1], ps.offsets[1:])
                   if hi > lo], np.int64)


def mosaic(ps: patchset.PatchSet, labels: np.ndarray, zoom: int = 2, gap: int = 4) -> np.ndarray:
  """(H, W) uint8 picture: a header row of column names, then one row of patches per label.

  Args:
    ps: the patches.
    labels: (R,) int label indices into ps.
    zoom: integer upscaling of each 32x32 patch (nearest neighbour).
    gap: pixels between tiles; an extra gap separates clean from noisy.
  """
  tile = layout.PATCH_SIZE * zoom
  header = 14
  split_gap = 3 * gap
  width = len(COLUMNS) * (tile + gap) + split_gap
  height = header + len(labels) * (tile + gap)
  canvas = np.full((height, width), 255, np.uint8)
  xs = []
  x = 0
  for c, (_, noisy) in enumerate(COLUMNS):
    if noisy and not COLUMNS[c - 1][1]:
      x += split_gap
    xs.append(x)
    x += tile + gap
  for r, label in enumerate(labels):
    y = header + r * (tile + gap)
    for (tp, noisy), x in zip(COLUMNS, xs):
      arr = (ps.noisy if noisy else ps.clean)[label, layout.IMAGE_TYPES.index(tp)]
      canvas[y:y + tile, x:x + tile] = np.kron(arr, np.ones((zoom, zoom), np.uint8))
  image = Image.fromarray(canvas)
  draw = ImageDraw.Draw(image)
  for (tp, noisy), x in zip(COLUMNS, xs):
    draw.text((x + 2, 1), tp + ("~" if noisy else ""), fill=0)
  return np.asarray(image)


def save_mosaic(path: str, ps: patchset.PatchSet, labels: np.ndarray, zoom: int = 2) -> None:
  """Writes `mosaic(ps, labels, zoom)` as a greyscale PNG (atomically)."""
  with atomic.atomic_path(path, suffix=".png") as tmp:
    Image.fromarray(mosaic(ps, labels, zoom)).save(tmp, format="PNG", optimize=True)


def save_sample(root: str, path: str, rows: int = 8, seed: int = 0) -> np.ndarray:
  """Draws `rows` labels of the test sequences of a dataset root to the PNG at `path`.

  Returns:
    The labels drawn (indices into the PatchSet read from the picked sequences).
  """
  names = splits.split_sequences("full", "test", splits.splits_for_root(root))
  ps = reader.read_split(root, pick_sequences(names, rows))
  labels = pick_labels(ps, np.random.default_rng(seed))
  save_mosaic(path, ps, labels)
  return labels
