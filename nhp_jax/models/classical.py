"""Classical patch descriptors with no parameters: raw pixels, SIFT and RootSIFT.

The baselines beside every learned row. All are pure `jnp` functions of a
batch of square grey patches, jittable, float32 out:

* `raw_pixels`: the patch itself, flattened, zero mean, unit L2 norm.
* `sift`: one SIFT descriptor for the whole patch (the patch is the
  keypoint's measurement region, as in VLFeat's `vl_sift` descriptor of a
  keypoint and kornia's `SIFTDescriptor`): 4 x 4 spatial cells x 8
  orientation bins = 128 values.
* `sift(..., root=True)`: RootSIFT (Arandjelovic & Zisserman, "Three things
  everyone should know to improve object retrieval", CVPR 2012).

`CLASSICAL` maps names to these functions and `describe(name, patches)`
runs one jitted in fixed-size blocks, returning numpy arrays the evaluator
scores like any network's descriptors.

SIFT conventions (Lowe, IJCV 2004, section 6.1; VLFeat's descriptor
geometry), for a P x P patch, pixel (y, x) with y the row (downwards) and
x the column (rightwards), both 0..P-1:

* Gradients: central differences in the interior, gx = (I[y, x+1] -
  I[y, x-1]) / 2 and likewise gy along rows; one-sided differences on the
  border rows and columns (gx = I[y, 1] - I[y, 0] at x = 0, ...), which is
  `numpy.gradient`'s scheme. Units: pixel values per pixel.
* Magnitude sqrt(gx^2 + gy^2) (no epsilon: a flat region adds nothing);
  angle atan2(gy, gx) in [0, 2 pi), measured from the +x axis towards +y
  (clockwise on screen, since y points down).
* Gaussian window on the magnitudes, centred on the patch centre
  ((P - 1) / 2, (P - 1) / 2), sigma = `window_sigma` x P pixels; the
  default 0.5 is Lowe's "one half the width of the descriptor window" and
  VLFeat's window of NBP / 2 = 2 cells (kornia uses P / sqrt(2), i.e.
  window_sigma=0.7071).
* Trilinear soft binning: each pixel's weighted magnitude is shared
  bilinearly between the 2 x 2 nearest cell centres and linearly between
  the 2 nearest orientation centres. Cells are P / 4 pixels wide, centred
  at (j + 0.5) P / 4 - 0.5 for j = 0..3 (symmetric about the patch centre;
  for P = 32: 3.5, 11.5, 19.5, 27.5); a pixel at distance d from a centre
  along one axis gives it the weight max(0, 1 - d / (P / 4)), so pixels
  outside the outer centres still feed the outer cells, fading out half a
  cell beyond the patch edge. Orientation centres are at k 2 pi / 8, k =
  0..7; an angle exactly on a centre goes wholly to it, so ties need no
  rule (the weights are continuous in the angle).
* Normalisation (VLFeat): unit L2 norm, clip at `clip` (0.2), unit L2 norm
  again. RootSIFT then divides by the L1 norm and takes the elementwise
  square root, so it stays non-negative with unit L2 norm.
* Layout: value index (row_cell * 4 + col_cell) * 8 + orientation_bin.
* A histogram with no energy (a constant patch: every gradient is exactly
  0) gives the zero vector, for SIFT and RootSIFT alike, rather than NaN.

What differs from kornia's `SIFTDescriptor(patch_size=32)` (0.9.0; its
default patch_size is 41, and 32 still gives 4 x 4 cells): the same cell
centres (3.5 .. 27.5, from 12-pixel triangles at stride 8 with 2 pixels of
padding; older releases padded 3 pixels, one pixel up and left of the
patch centre) but triangles of half-width 6 instead of 8, so pixels between
two centres or near the border weigh less; replicate-padded central
differences on the border (half the one-sided difference); sigma = P /
sqrt(2); 1e-10 added under the square roots of the magnitude and of
RootSIFT; values ordered orientation-major. The slow reference in the
tests, given kornia's cells, window and border rule, matches kornia 0.9.0
to 2e-7 (SIFT) on the embedded dataset's patches and on uniform noise;
with the defaults here the two descriptors have a mean cosine similarity
of 0.98 on the embedded dataset's patches.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nhp_jax.errors import ConfigError, DataError, NumericsError

NUM_SPATIAL_BINS = 4   # cells per side
NUM_ANGLE_BINS = 8     # orientation bins over 2 pi
SIFT_DIM = NUM_SPATIAL_BINS * NUM_SPATIAL_BINS * NUM_ANGLE_BINS  # 128
DEFAULT_WINDOW_SIGMA = 0.5  # Gaussian sigma / patch side (Lowe 2004, VLFeat)
DEFAULT_CLIP = 0.2          # Lowe 2004, VLFeat
DEFAULT_BATCH_SIZE = 1024
MIN_PATCH_SIZE = NUM_SPATIAL_BINS


def _patch_shape(shape: tuple[int, ...], dtype) -> tuple[int, int, int]:
  """(N, P, P) of patches shaped (N, P, P) or (N, P, P, 1) uint8/float; DataError otherwise."""
  dtype, found = np.dtype(dtype), tuple(shape)
  if len(shape) == 4 and shape[3] == 1:
    shape = shape[:3]
  if (len(shape) != 3 or shape[1] != shape[2] or shape[1] < MIN_PATCH_SIZE
      or not (dtype == np.uint8 or np.issubdtype(dtype, np.floating))):
    raise DataError(f"classical descriptors expect (N, P, P) or (N, P, P, 1) uint8 or float "
                    f"patches with P >= {MIN_PATCH_SIZE}, found {dtype} {found}")
  return tuple(shape)


def _as_patches(patches: jax.Array | np.ndarray) -> jax.Array:
  """(N, P, P) or (N, P, P, 1) uint8/float -> (N, P, P) float32; DataError on anything else."""
  shape = _patch_shape(patches.shape, patches.dtype)
  return jnp.reshape(jnp.asarray(patches), shape).astype(jnp.float32)


def _unit_l2(v: jax.Array) -> jax.Array:
  """Rows of v (N, D) divided by their L2 norm; rows of norm 0 stay 0."""
  norm = jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))
  return jnp.where(norm > 0, v / jnp.where(norm > 0, norm, 1.0), 0.0)


def raw_pixels(patches: jax.Array | np.ndarray) -> jax.Array:
  """The patch as a vector: flattened row-major, zero mean, unit L2 norm.

  Invariant to brightness offsets and to contrast scaling by a positive
  factor, so the pixel scale (0..255 or 0..1) does not matter.

  Args:
    patches: (N, P, P) or (N, P, P, 1) uint8 or float pixels, any range.

  Returns:
    (N, P * P) float32 ((N, 1024) for 32 x 32 patches). A constant patch
    (max == min) gives the zero vector: its centred pixels would only be
    the rounding error of the mean, blown up to unit norm. NaN pixels give
    NaN values (`describe` rejects them first).

  Shape:
    - Input: (N, P, P) or (N, P, P, 1)
    - Output: (N, P * P)

  Example:
    >>> import numpy as np
    >>> raw_pixels(np.arange(2 * 32 * 32, dtype=np.uint8).reshape(2, 32, 32)).shape
    (2, 1024)

  Raises:
    DataError: wrong rank, non-square patches or a non-numeric dtype.
  """
  x = _as_patches(patches)
  v = x.reshape(x.shape[0], -1)
  v = v - jnp.mean(v, axis=1, keepdims=True)
  flat = (jnp.max(x, axis=(1, 2)) == jnp.min(x, axis=(1, 2)))[:, None]
  return jnp.where(flat, 0.0, _unit_l2(v))


def gradients(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Image gradients by central differences, one-sided on the border (`numpy.gradient`).

  Args:
    x: (N, P, P) float32 pixels, P >= 2.

  Returns:
    (gx, gy), each (N, P, P) float32: derivatives along columns (x, to the
    right) and rows (y, downwards), in pixel values per pixel.
  """
  def along(a, axis):
    n = a.shape[axis]
    take = functools.partial(jax.lax.slice_in_dim, a, axis=axis)
    interior = (take(2, n) - take(0, n - 2)) * 0.5
    first = take(1, 2) - take(0, 1)
    last = take(n - 1, n) - take(n - 2, n - 1)
    return jnp.concatenate([first, interior, last], axis=axis)
  return along(x, 2), along(x, 1)


def gaussian_window(size: int, window_sigma: float = DEFAULT_WINDOW_SIGMA) -> np.ndarray:
  """(P, P) float32 Gaussian weights exp(-r^2 / (2 s^2)), s = window_sigma * P pixels.

  r is the distance in pixels from the patch centre ((P - 1) / 2, (P - 1) / 2).

  Unnormalised (peak < 1 for even P, whose centre falls between pixels): the
  descriptor is normalised afterwards, so only the shape matters.
  """
  c = (size - 1) / 2.0
  s = window_sigma * size
  d = np.arange(size, dtype=np.float64) - c
  return np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2.0 * s * s)).astype(np.float32)


def cell_weights(size: int) -> np.ndarray:
  """(4, P) float32 bilinear weights of the 4 cells along one axis for pixel coordinates 0..P-1.

  Entry [j, x] = max(0, 1 - |x - c_j| / w) with w = P / 4 pixels and
  c_j = (j + 0.5) w - 0.5 (see the module docstring).
  """
  w = size / NUM_SPATIAL_BINS
  centres = (np.arange(NUM_SPATIAL_BINS) + 0.5) * w - 0.5
  x = np.arange(size, dtype=np.float64)
  return np.maximum(0.0, 1.0 - np.abs(x[None, :] - centres[:, None]) / w).astype(np.float32)


def orientation_weights(gx: jax.Array, gy: jax.Array) -> jax.Array:
  """Gradient magnitude split linearly between the two nearest of 8 orientation centres.

  Args:
    gx, gy: (...,) float32 gradients.

  Returns:
    (..., 8) float32; entry k is the magnitude's share of orientation centre
    k 2 pi / 8 (the shares of one pixel sum to its magnitude).
  """
  mag = jnp.sqrt(gx * gx + gy * gy)
  theta = jnp.mod(jnp.arctan2(gy, gx), 2.0 * np.pi)
  o = theta * (NUM_ANGLE_BINS / (2.0 * np.pi))
  lower = jnp.floor(o)
  frac = o - lower
  b0 = lower.astype(jnp.int32) % NUM_ANGLE_BINS  # theta rounding up to 2 pi lands on bin 0
  b1 = (b0 + 1) % NUM_ANGLE_BINS
  return mag[..., None] * ((1.0 - frac)[..., None] * jax.nn.one_hot(b0, NUM_ANGLE_BINS)
                           + frac[..., None] * jax.nn.one_hot(b1, NUM_ANGLE_BINS))


def sift_histograms(patches: jax.Array | np.ndarray,
                    window_sigma: float = DEFAULT_WINDOW_SIGMA) -> jax.Array:
  """The unnormalised SIFT histograms of whole patches.

  Args:
    patches: (N, P, P) or (N, P, P, 1) uint8 or float pixels.
    window_sigma: Gaussian window sigma as a fraction of P.

  Returns:
    (N, 4, 4, 8) float32: [n, row cell, column cell, orientation bin],
    in (Gaussian-weighted) pixel values per pixel.
  """
  x = _as_patches(patches)
  size = x.shape[1]
  gx, gy = gradients(x)
  window = jnp.asarray(gaussian_window(size, window_sigma))
  contrib = orientation_weights(gx, gy) * window[..., None]
  w = jnp.asarray(cell_weights(size))
  # Separable in space: the 2 x 2 cell weights of a pixel are products of 1-D weights.
  return jnp.einsum("iy,jx,nyxk->nijk", w, w, contrib, precision=jax.lax.Precision.HIGHEST)


def sift(patches: jax.Array | np.ndarray, root: bool = False, *,
         window_sigma: float = DEFAULT_WINDOW_SIGMA, clip: float = DEFAULT_CLIP) -> jax.Array:
  """SIFT (or RootSIFT) descriptors of whole patches (conventions in the module docstring).

  Args:
    patches: (N, P, P) or (N, P, P, 1) uint8 or float pixels, any range
      (the descriptor is invariant to brightness offsets and positive
      contrast scaling); P >= 4, 32 for N-HPatches.
    root: RootSIFT: L1-normalise the clipped SIFT vector, then take the
      elementwise square root.
    window_sigma: Gaussian window sigma as a fraction of P (0.5: Lowe,
      VLFeat; 1 / sqrt(2): kornia).
    clip: upper bound on each value after the first L2 normalisation.

  Returns:
    (N, 128) float32, unit L2 norm, non-negative; the zero vector for a
    patch with no gradient (a constant patch); NaN values for NaN pixels
    (`describe` rejects them first).

  Shape:
    - Input: (N, P, P) or (N, P, P, 1)
    - Output: (N, 128)

  Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    >>> sift(x).shape, sift(x, root=True).dtype
    ((3, 128), dtype('float32'))

  Raises:
    ConfigError: window_sigma or clip not a positive number.
    DataError: wrong rank, non-square or too small patches, or a
      non-numeric dtype.
  """
  for field, value in (("window_sigma", window_sigma), ("clip", clip)):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
      raise ConfigError(f"sift: {field} must be a positive number, found {value!r}")
  h = sift_histograms(patches, window_sigma).reshape(-1, SIFT_DIM)
  v = _unit_l2(jnp.minimum(_unit_l2(h), clip))
  if root:
    l1 = jnp.sum(v, axis=-1, keepdims=True)
    v = jnp.sqrt(jnp.where(l1 > 0, v / jnp.where(l1 > 0, l1, 1.0), 0.0))
  return v


CLASSICAL: dict[str, Callable[[jax.Array], jax.Array]] = {
    "raw": raw_pixels,
    "sift": sift,
    "rootsift": functools.partial(sift, root=True),
}


@functools.cache
def _jitted(name: str) -> Callable[[jax.Array], jax.Array]:
  return jax.jit(CLASSICAL[name])


def describe(name: str, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Descriptors of any number of patches by a classical descriptor, jitted, in fixed-size blocks.

  Every block has `batch_size` rows (the last is zero-padded), so each
  descriptor compiles once per patch size. Blocks go to the device as uint8
  when the input is uint8, and block i is fetched after block i + 1 is
  dispatched.

  Args:
    name: a key of `CLASSICAL` ("raw", "sift", "rootsift").
    patches: (..., P, P) or (N, P, P, 1) uint8 or float pixels; leading
      axes are kept, e.g. a PatchSet's (L, 16, 32, 32) -> (L, 16, D).
    batch_size: patches per compiled block.

  Returns:
    (..., D) numpy float32: D = P * P for "raw", 128 for "sift" and "rootsift".

  Raises:
    ConfigError: unknown name (lists the known ones) or batch_size < 1.
    DataError: malformed patches.
    NumericsError: NaN or Inf pixels.
  """
  if name not in CLASSICAL:
    raise ConfigError(f"classical descriptor: unknown name {name!r}; "
                      f"known: {', '.join(sorted(CLASSICAL))}")
  if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
    raise ConfigError(f"classical descriptor batch_size must be a positive int, "
                      f"found {batch_size!r}")
  x = np.asarray(patches)
  if x.ndim == 4 and x.shape[-1] == 1 and x.shape[1] == x.shape[2]:
    lead, x = x.shape[:1], x[..., 0]
  else:
    lead = x.shape[:-2]
  if x.ndim < 2:
    raise DataError(f"classical descriptors expect (..., P, P) patches, found {x.dtype} {x.shape}")
  x = x.reshape((-1,) + x.shape[-2:])
  _patch_shape((1,) + x.shape[1:], x.dtype)  # shape and dtype at the door
  if x.dtype != np.uint8:
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if bad.any():
      raise NumericsError(f"classical descriptor input: {int(bad.sum())} of {len(bad)} patches "
                          f"hold NaN or Inf pixels, the first is patch {int(np.argmax(bad))}")
  fn = _jitted(name)
  block_shape = (batch_size,) + x.shape[1:]
  dim = jax.eval_shape(fn, jax.ShapeDtypeStruct(block_shape, x.dtype)).shape[-1]
  n = x.shape[0]
  out = np.empty((n, dim), np.float32)
  in_flight = []

  def fetch():
    start, stop, result = in_flight.pop(0)
    out[start:stop] = np.asarray(result)[:stop - start]

  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    block = np.zeros(block_shape, x.dtype)
    block[:stop - start] = x[start:stop]
    in_flight.append((start, stop, fn(jax.device_put(block))))
    if len(in_flight) > 1:
      fetch()
  while in_flight:
    fetch()
  return out.reshape(lead + (dim,))
