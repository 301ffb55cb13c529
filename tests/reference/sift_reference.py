"""SIFT, RootSIFT and raw-pixel patch descriptors restated slowly in plain NumPy (tests only).

One pixel, one cell, one orientation bin at a time, in float64, with every
weight written as its defining formula, so that the fast `jnp` path of
`nhp_jax.models.classical` can be checked against it. The conventions are
those of `nhp_jax.models.classical`'s module docstring; the formulations
differ on purpose where they can:

* orientation weights come from the circular distance between the angle
  and each bin centre, max(0, 1 - dist / (2 pi / 8)), not from floor and
  fraction;
* cell weights from the distance between the pixel and each cell centre,
  evaluated per (pixel, cell) pair, not from a separable matrix product;
* the border gradients are written out case by case.

The cell geometry, the window and the border rule are arguments, so the
same loops can describe other SIFT variants (e.g. kornia's pooling).
"""

import math

import numpy as np

NUM_SPATIAL_BINS = 4
NUM_ANGLE_BINS = 8


def gradient_at(img: np.ndarray, y: int, x: int, border: str = "one_sided") -> tuple[float, float]:
  """(gx, gy) at pixel (y, x) of a (P, P) float64 image.

  Interior: central differences (I[y, x + 1] - I[y, x - 1]) / 2 and likewise
  along y. Border, `border="one_sided"`: the forward (first row/column) or
  backward (last) difference; `border="replicate"`: the central difference
  of the image padded by repeating its edge pixels.
  """
  p = img.shape[0]

  def diff(get, i):
    if 0 < i < p - 1:
      return (get(i + 1) - get(i - 1)) / 2.0
    if border == "replicate":
      return (get(min(i + 1, p - 1)) - get(max(i - 1, 0))) / 2.0
    if border != "one_sided":
      raise ValueError(f"unknown border rule {border!r}")
    return get(1) - get(0) if i == 0 else get(p - 1) - get(p - 2)

  gx = diff(lambda j: float(img[y, j]), x)
  gy = diff(lambda i: float(img[i, x]), y)
  return gx, gy


def orientation_weight(theta: float, k: int) -> float:
  """Share of orientation bin k (centre k 2 pi / 8) for an angle theta in radians."""
  width = 2.0 * math.pi / NUM_ANGLE_BINS
  d = abs(theta - k * width) % (2.0 * math.pi)
  d = min(d, 2.0 * math.pi - d)
  return max(0.0, 1.0 - d / width)


def default_cells(size: int) -> tuple[list[float], float]:
  """Cell centres and half-width in pixels: P / 4 wide cells, symmetric about the patch centre."""
  w = size / NUM_SPATIAL_BINS
  return [(j + 0.5) * w - 0.5 for j in range(NUM_SPATIAL_BINS)], w


def sift_histograms(patch: np.ndarray, window_sigma: float = 0.5,
                    cells: tuple[list[float], float] | None = None,
                    border: str = "one_sided") -> np.ndarray:
  """(4, 4, 8) float64 unnormalised histograms [row cell, column cell, bin] of one (P, P) patch.

  Args:
    patch: (P, P) pixels, any numeric dtype.
    window_sigma: Gaussian sigma / P, centred at ((P - 1) / 2, (P - 1) / 2).
    cells: (centres, half_width) in pixels, the same along both axes;
      default `default_cells(P)`.
    border: gradient rule on the border (see `gradient_at`).
  """
  img = np.asarray(patch, np.float64)
  p = img.shape[0]
  centres, half = cells if cells is not None else default_cells(p)
  c = (p - 1) / 2.0
  sigma = window_sigma * p
  hist = np.zeros((NUM_SPATIAL_BINS, NUM_SPATIAL_BINS, NUM_ANGLE_BINS))
  for y in range(p):
    for x in range(p):
      gx, gy = gradient_at(img, y, x, border)
      mag = math.sqrt(gx * gx + gy * gy)
      if mag == 0.0:
        continue
      theta = math.atan2(gy, gx)
      window = math.exp(-((y - c) ** 2 + (x - c) ** 2) / (2.0 * sigma * sigma))
      for i in range(NUM_SPATIAL_BINS):
        wy = max(0.0, 1.0 - abs(y - centres[i]) / half)
        for j in range(NUM_SPATIAL_BINS):
          wx = max(0.0, 1.0 - abs(x - centres[j]) / half)
          for k in range(NUM_ANGLE_BINS):
            hist[i, j, k] += window * mag * wy * wx * orientation_weight(theta, k)
  return hist


def normalise_sift(hist: np.ndarray, root: bool = False, clip: float = 0.2) -> np.ndarray:
  """(128,) float64: L2 normalise, clip, L2 normalise; RootSIFT: then L1 normalise and sqrt.

  A histogram with no energy gives the zero vector.
  """
  v = np.asarray(hist, np.float64).reshape(-1).copy()
  total = math.sqrt(sum(a * a for a in v))
  if total == 0.0:
    return np.zeros_like(v)
  v = np.array([min(a / total, clip) for a in v])
  total = math.sqrt(sum(a * a for a in v))
  v = v / total
  if root:
    l1 = sum(abs(a) for a in v)
    v = np.array([math.sqrt(a / l1) for a in v])
  return v


def sift(patches: np.ndarray, root: bool = False, window_sigma: float = 0.5,
         clip: float = 0.2, cells: tuple[list[float], float] | None = None,
         border: str = "one_sided") -> np.ndarray:
  """(N, 128) float64 SIFT (RootSIFT with root) of (N, P, P) patches, one at a time."""
  return np.stack([normalise_sift(sift_histograms(p, window_sigma, cells, border), root, clip)
                   for p in np.asarray(patches)]) if len(patches) else np.zeros((0, 128))


def raw_pixels(patches: np.ndarray) -> np.ndarray:
  """(N, P * P) float64: each patch flattened row-major minus its mean, over its L2 norm.

  A patch whose pixels are all equal gives the zero vector.
  """
  out = []
  for patch in np.asarray(patches):
    v = [float(a) for a in np.asarray(patch).reshape(-1)]
    if max(v) == min(v):
      out.append(np.zeros(len(v)))
      continue
    mean = math.fsum(v) / len(v)
    centred = [a - mean for a in v]
    norm = math.sqrt(math.fsum(a * a for a in centred))
    out.append(np.array([a / norm for a in centred]))
  return np.stack(out)
