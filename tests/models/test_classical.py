"""Classical descriptors (raw pixels, SIFT, RootSIFT) against the slow NumPy reference."""

import math

import jax
import numpy as np
import pytest

from nhp_jax.errors import ConfigError, DataError, NumericsError
from nhp_jax.evaluation import types
from nhp_jax.models import classical
from tests.reference import sift_reference as ref

pytestmark = pytest.mark.any_backend

ATOL = 2e-6  # float32 fast path against the float64 reference, unit-norm vectors


def _noise(seed, n=3, size=32):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def _smooth(seed, n=3, size=32):
  """Float patches 0..255 made of a few random plane waves: the gradients of real texture."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  out = np.zeros((n, size, size))
  for _ in range(4):
    f = rng.uniform(0.05, 0.4, (n, 1, 1))
    a = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    ph = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    out += np.sin(f * (np.cos(a) * x + np.sin(a) * y) + ph)
  return (127.5 + 30.0 * out).astype(np.float32)


def _ramp(angle, size=32):
  """(1, P, P) float64 linear ramp whose gradient is (cos angle, sin angle) everywhere."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  return (100.0 + math.cos(angle) * x + math.sin(angle) * y)[None]


def _np(x):
  return np.asarray(x, np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sift_and_rootsift_match_reference(seed):
  for x in (_noise(seed), _smooth(seed)):
    np.testing.assert_allclose(_np(classical.sift(x)), ref.sift(x), rtol=0, atol=ATOL)
    np.testing.assert_allclose(_np(classical.sift(x, root=True)), ref.sift(x, root=True),
                               rtol=0, atol=ATOL)


def test_unnormalised_histograms_match_reference():
  x = np.concatenate([_noise(3, n=2), _smooth(3, n=2).astype(np.uint8)])
  got = _np(classical.sift_histograms(x))
  want = np.stack([ref.sift_histograms(p) for p in x])
  assert got.shape == (4, 4, 4, 8)
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * want.max())


@pytest.mark.parametrize("window_sigma,clip", [(2 ** -0.5, 0.2), (0.25, 0.3), (0.5, 1.0)])
def test_window_and_clip_options_match_reference(window_sigma, clip):
  x = _smooth(4, n=2)
  for root in (False, True):
    np.testing.assert_allclose(
        _np(classical.sift(x, root, window_sigma=window_sigma, clip=clip)),
        ref.sift(x, root, window_sigma=window_sigma, clip=clip), rtol=0, atol=ATOL)


@pytest.mark.parametrize("size", [4, 41, 65])
def test_other_patch_sizes_match_reference(size):
  x = _smooth(5, n=1, size=size)
  got = _np(classical.sift(x))
  assert got.shape == (1, 128)
  np.testing.assert_allclose(got, ref.sift(x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("value,dtype", [(0, np.uint8), (255, np.uint8), (0.1, np.float32),
                                         (1e6, np.float32), (-3.7, np.float64)])
def test_constant_patches_give_zero_vectors(value, dtype):
  x = np.full((2, 32, 32), value, dtype)
  assert not ref.sift(x).any() and not ref.raw_pixels(x).any()
  for out, dim in ((classical.sift(x), 128), (classical.sift(x, root=True), 128),
                   (classical.raw_pixels(x), 1024)):
    out = np.asarray(out)
    assert out.shape == (2, dim) and out.dtype == np.float32
    assert np.all(out == 0.0), np.abs(out).max()


def test_constant_patch_beside_textured_ones_keeps_them_intact():
  x = np.concatenate([_noise(6, n=2), np.full((1, 32, 32), 9, np.uint8)])
  got = _np(classical.sift(x, root=True))
  assert np.all(got[2] == 0.0)
  np.testing.assert_allclose(np.linalg.norm(got[:2], axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("k", range(8))
def test_gradient_on_a_bin_centre_puts_all_energy_in_that_bin(k):
  # Angles k * 45 degrees sit exactly on a bin centre, the edge between the
  # floor-based bins k - 1 and k: the whole magnitude must go to bin k.
  x = _ramp(k * math.pi / 4)
  hist = _np(classical.sift_histograms(x))[0]
  others = np.delete(hist, k, axis=-1)
  assert hist[..., k].min() > 0.1 * hist.max()
  assert others.max() <= 1e-6 * hist.max(), others.max()
  np.testing.assert_allclose(_np(classical.sift(x)), ref.sift(x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("degrees", [10.0, 22.5, 100.0, 200.0, 333.0, 359.0])
def test_gradient_between_bin_centres_is_split_linearly(degrees):
  x = _ramp(math.radians(degrees))
  hist = _np(classical.sift_histograms(x))[0]
  o = degrees / 45.0
  k0, frac = int(math.floor(o)) % 8, o - math.floor(o)
  k1 = (k0 + 1) % 8
  total = hist.sum(axis=-1)
  tol = 5e-5 * total.max()  # the ramp's float32 pixels move the angle by ~1e-5 rad
  np.testing.assert_allclose(hist[..., k0], (1 - frac) * total, rtol=0, atol=tol)
  np.testing.assert_allclose(hist[..., k1], frac * total, rtol=0, atol=tol)
  assert np.delete(hist, [k0, k1], axis=-1).max() <= 1e-6 * hist.max()


def test_uniform_gradient_fills_the_cells_symmetrically():
  # One gradient everywhere: each cell holds window x cell weights, whose
  # geometry is symmetric about the patch centre (kornia's older grid was not).
  total = _np(classical.sift_histograms(_ramp(0.3)))[0].sum(axis=-1)
  np.testing.assert_allclose(total, total[::-1, :], rtol=1e-5)
  np.testing.assert_allclose(total, total[:, ::-1], rtol=1e-5)
  np.testing.assert_allclose(total, total.T, rtol=1e-5)
  assert total[1, 1] > total[0, 1] > total[0, 0] > 0


def _permute(desc, cells, bins):
  """desc (N, 128) with its (4, 4) cells rearranged by `cells` and bins re-indexed by `bins`."""
  d = np.asarray(desc).reshape(-1, 4, 4, 8)
  return cells(d)[..., bins].reshape(-1, 128)


@pytest.mark.parametrize("root", [False, True])
def test_flips_and_transpose_permute_cells_and_bins(root):
  # Mirroring x negates gx: angle t -> pi - t, bin k -> 4 - k; mirroring y
  # negates gy: t -> -t, k -> -k; transposing swaps gx and gy: t -> pi/2 - t.
  x = np.concatenate([_noise(7, n=2), _smooth(7, n=2).astype(np.uint8)])
  d = classical.sift(x, root)
  k = np.arange(8)
  cases = [
      (x[:, :, ::-1], lambda c: c[:, :, ::-1], (4 - k) % 8),
      (x[:, ::-1, :], lambda c: c[:, ::-1, :], (-k) % 8),
      (x.transpose(0, 2, 1), lambda c: c.transpose(0, 2, 1, 3), (2 - k) % 8),
  ]
  for moved, cells, bins in cases:
    np.testing.assert_allclose(_np(classical.sift(np.ascontiguousarray(moved), root)),
                               _permute(d, cells, bins), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fn", [classical.raw_pixels, classical.sift,
                                lambda x: classical.sift(x, root=True)])
def test_brightness_and_contrast_invariance(fn):
  x = _smooth(8, n=4)
  base = _np(fn(x))
  for changed in (x + 40.25, x - 90.0, x * 3.5, x * 0.01, 0.5 * x + 7.0):
    np.testing.assert_allclose(_np(fn(changed.astype(np.float32))), base, rtol=0, atol=2e-5)
  u = _noise(8, n=4) // 2  # 0..127, room for an offset without saturating uint8
  np.testing.assert_allclose(_np(fn(u + np.uint8(100))), _np(fn(u)), rtol=0, atol=1e-6)
  np.testing.assert_allclose(_np(fn(u * np.uint8(2))), _np(fn(u)), rtol=0, atol=1e-6)


def test_sift_is_a_clipped_unit_vector_and_rootsift_its_square_root():
  x = np.concatenate([_noise(9, n=3), _smooth(9, n=3).astype(np.uint8),
                      _ramp(0.0).astype(np.uint8)])
  s = _np(classical.sift(x))
  r = _np(classical.sift(x, root=True))
  assert s.min() >= 0.0 and r.min() >= 0.0
  np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(r, np.sqrt(s / s.sum(axis=1, keepdims=True)), rtol=0, atol=1e-6)
  # Known answer for the ramp (gradient (1, 0), magnitude 1 everywhere): cell (i, j)
  # holds a_i a_j with a_i = sum_y window(y) cell_weight_i(y), as the window and
  # the cell weights are separable; the centre cells are clipped, the corners not.
  yy = np.arange(32.0)
  a = np.array([np.sum(np.exp(-(yy - 15.5) ** 2 / (2 * 16.0 ** 2)) *
                       np.maximum(0.0, 1.0 - np.abs(yy - (8 * i + 3.5)) / 8.0)) for i in range(4)])
  t = np.outer(a, a) / np.linalg.norm(np.outer(a, a))
  assert t.min() < 0.2 < t.max()
  want = np.minimum(t, 0.2) / np.linalg.norm(np.minimum(t, 0.2))
  ramp = s[-1].reshape(4, 4, 8)
  np.testing.assert_allclose(ramp[..., 0], want, rtol=0, atol=1e-6)
  assert not ramp[..., 1:].any()


def test_raw_pixels_matches_reference_and_is_centred_unit_norm():
  x = np.concatenate([_noise(10, n=3), _smooth(10, n=3).astype(np.uint8)])
  got = _np(classical.raw_pixels(x))
  assert got.shape == (6, 1024)
  np.testing.assert_allclose(got, ref.raw_pixels(x), rtol=0, atol=1e-6)
  np.testing.assert_allclose(got.mean(axis=1), 0.0, atol=1e-7)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(got[0], (x[0].ravel() - x[0].mean()) /
                             np.linalg.norm(x[0].ravel() - x[0].mean()), atol=1e-6)


@pytest.mark.parametrize("fn", [classical.raw_pixels, classical.sift])
def test_input_layouts_and_dtypes_agree(fn):
  u = _noise(11, n=3)
  base = np.asarray(fn(u))
  assert base.dtype == np.float32
  for x in (u[..., None], u.astype(np.float32), u.astype(np.float64), u.astype(np.float16),
            u.astype(np.float32)[..., None]):
    out = np.asarray(fn(x))
    assert out.dtype == np.float32 and out.shape == base.shape
    np.testing.assert_array_equal(out, base)
  np.testing.assert_array_equal(np.asarray(jax.jit(fn)(u)), base)


@pytest.mark.parametrize("shape,dtype", [((32, 32), np.uint8), ((2, 32, 31), np.uint8),
                                         ((2, 32, 32, 3), np.uint8), ((2, 3, 3), np.uint8),
                                         ((2, 32, 32), np.int32), ((2, 32, 32), np.bool_)])
def test_bad_inputs_are_rejected_at_the_door(shape, dtype):
  x = np.zeros(shape, dtype)
  for fn in (classical.raw_pixels, classical.sift):
    with pytest.raises(DataError, match="expect"):
      fn(x)


@pytest.mark.parametrize("name,dim", [("raw", 1024), ("sift", 128), ("rootsift", 128)])
def test_describe_runs_blocks_like_one_call(name, dim):
  x = np.concatenate([_noise(12, n=5), _smooth(12, n=2).astype(np.uint8)])
  want = np.asarray(classical.CLASSICAL[name](x))
  for batch_size in (3, 7, 64):
    got = classical.describe(name, x, batch_size=batch_size)
    assert got.shape == (7, dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
  np.testing.assert_allclose(classical.describe(name, x[..., None], batch_size=4), want,
                             rtol=0, atol=1e-7)
  assert classical.describe(name, x[:0]).shape == (0, dim)


def test_describe_keeps_leading_axes_for_the_evaluator(random_patchset):
  ps = random_patchset
  descs = classical.describe("rootsift", ps.noisy, batch_size=100)
  assert descs.shape == (ps.num_labels, 16, 128)
  flat = classical.describe("rootsift", ps.noisy.reshape(-1, 32, 32), batch_size=100)
  np.testing.assert_array_equal(descs.reshape(-1, 128), flat)
  ds = types.DescriptorSet(ps.sequences, ps.offsets, descs)
  assert ds.dim == 128


def test_describe_errors_name_what_was_expected():
  x = _noise(13, n=2)
  with pytest.raises(ConfigError, match="known: raw, rootsift, sift"):
    classical.describe("surf", x)
  for bad in (0, -1, 2.5, True):
    with pytest.raises(ConfigError, match="batch_size"):
      classical.describe("sift", x, batch_size=bad)
  f = x.astype(np.float32)
  f[1, 3, 4] = np.nan
  with pytest.raises(NumericsError, match="1 of 2 patches.*patch 1"):
    classical.describe("sift", f)
  with pytest.raises(DataError, match="expect"):
    classical.describe("raw", np.zeros((2, 32, 16), np.uint8))
  assert set(classical.CLASSICAL) == {"raw", "sift", "rootsift"}
  for kwargs in ({"window_sigma": 0.0}, {"clip": -0.2}, {"clip": float("nan")}):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
      classical.sift(x, **kwargs)
