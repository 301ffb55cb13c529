"""Batched inference against a plain per-patch `model.apply` loop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax import inference
from nhp_jax.data import patchset
from nhp_jax.errors import ConfigError, DataError, NumericsError
from nhp_jax.models import l2net

BATCH = 20  # 48 patches -> blocks of 20, 20 and a padded 8.


class AffineDenoiser(nn.Module):
  """y = gain * x + offset: from 0..255 pixels it gives values below 0, above 255
  and with fractions .25/.75 (exact in float32), so clipping and truncation
  both show and no value sits near an integer."""

  @nn.compact
  def __call__(self, x, train=False):
    gain = self.param("gain", nn.initializers.constant(1.5), ())
    offset = self.param("offset", nn.initializers.constant(-40.25), ())
    return x * gain + offset


class TraceLog:
  """Mutable record of traced shapes (Flax turns list attributes into tuples)."""

  def __init__(self):
    self.shapes = []


class FirstPixels(nn.Module):
  """A descriptor returning the first 8 pixels; logs each trace."""
  log: TraceLog

  @nn.compact
  def __call__(self, x, train=False):
    self.log.shapes.append(x.shape)
    return x.reshape(x.shape[0], -1)[:, :8]


class NanDescriptor(nn.Module):

  @nn.compact
  def __call__(self, x, train=False):
    return jnp.log(x.reshape(x.shape[0], -1)[:, :4] - 300.0)


def _affine():
  model = AffineDenoiser()
  return model, model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))


@pytest.fixture(scope="module")
def descriptor():
  """L2-Net with random NumPy variables (compiling `init` takes seconds)."""
  model = l2net.L2Net()
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1))))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      return jnp.asarray(rng.normal(0, np.sqrt(2 / np.prod(leaf.shape[:-1])), leaf.shape),
                         jnp.float32)
    if name in ("scale", "var"):
      return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), jnp.float32)
    return jnp.asarray(rng.normal(0, 0.1, leaf.shape), jnp.float32)

  return model, jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def tiny():
  rng = np.random.default_rng(1)
  make = lambda n: (rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8),  # noqa: E731
                    rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8))
  return patchset.from_arrays({"i_a": make(2), "v_b": make(1)})


def _per_patch(model, variables, x):
  """Reference: one `model.apply` per patch, in eval mode."""
  apply = jax.jit(lambda v, p: model.apply(v, p, train=False))
  return np.stack([np.asarray(apply(variables, jnp.asarray(x[i:i + 1], jnp.float32)))[0]
                   for i in range(len(x))])


def _close(got, want):
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("which", ["clean", "noisy"])
def test_describe_patchset_equals_per_patch_loop(descriptor, tiny, which):
  got = inference.describe_patchset(tiny, descriptor, input=which, batch_size=BATCH)
  pixels = getattr(tiny, which).reshape(-1, 32, 32, 1)
  assert got.shape == (3, 16, 128) and got.dtype == np.float32
  _close(got.reshape(-1, 128), _per_patch(*descriptor, pixels))


def test_denoised_input_is_clipped_and_truncated_before_describing(descriptor, tiny):
  got = inference.describe_patchset(tiny, descriptor, _affine(), input="denoised",
                                    batch_size=BATCH).reshape(-1, 128)
  raw = _per_patch(*_affine(), tiny.noisy.reshape(-1, 32, 32, 1))
  assert raw.min() < 0 and raw.max() > 255 and np.any(raw != np.floor(raw))
  want = _per_patch(*descriptor, np.clip(raw, 0, 255).astype(np.uint8))
  _close(got, want)
  untruncated = _per_patch(*descriptor, np.clip(raw, 0, 255))
  assert not np.allclose(got, untruncated, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_denoise_fn_raw_and_uint8(tiny):
  x = tiny.noisy.reshape(-1, 32, 32, 1)[:45]
  want = x.astype(np.float32) * 1.5 - 40.25
  np.testing.assert_array_equal(inference.make_denoise_fn(*_affine(), BATCH)(x), want)
  as_u8 = inference.make_denoise_fn(*_affine(), BATCH, as_uint8=True)(x)
  assert as_u8.dtype == np.uint8
  np.testing.assert_array_equal(as_u8, np.clip(want, 0, 255).astype(np.uint8))
  assert inference.make_denoise_fn(*_affine(), BATCH)(x[:0]).shape == (0, 32, 32, 1)


def test_describe_fn_compiles_once_and_accepts_float_input(tiny):
  log = TraceLog()
  model = FirstPixels(log)
  fn = inference.make_describe_fn(model, {}, BATCH)
  x = tiny.clean.reshape(-1, 32, 32, 1)
  np.testing.assert_array_equal(fn(x), x.reshape(48, -1)[:, :8])
  n_traces = len(log.shapes)
  np.testing.assert_array_equal(fn(x[:7]), x[:7].reshape(7, -1)[:, :8])
  np.testing.assert_array_equal(fn(x[5:, ..., 0]), x[5:].reshape(43, -1)[:, :8])
  assert len(log.shapes) == n_traces
  np.testing.assert_array_equal(fn(x.astype(np.float64)), x.reshape(48, -1)[:, :8])


def test_bad_inputs_fail_clearly(descriptor, tiny):
  with pytest.raises(ConfigError, match="known: noisy, denoised, clean"):
    inference.describe_patchset(tiny, descriptor, input="raw")
  with pytest.raises(ConfigError, match="needs a denoiser"):
    inference.describe_patchset(tiny, descriptor, None, input="denoised")
  with pytest.raises(ConfigError, match="batch_size"):
    inference.make_describe_fn(*descriptor, batch_size=0)
  fn = inference.make_describe_fn(FirstPixels(TraceLog()), {}, BATCH)
  with pytest.raises(DataError, match=r"\(N, 32, 32, 1\).*int32 \(4, 32, 32, 1\)"):
    fn(np.zeros((4, 32, 32, 1), np.int32))
  with pytest.raises(DataError, match=r"found uint8 \(4, 16, 16, 1\)"):
    fn(np.zeros((4, 16, 16, 1), np.uint8))
  with pytest.raises(NumericsError, match="48 of 48"):
    inference.describe_patchset(tiny, (NanDescriptor(), {}), input="clean", batch_size=BATCH)


_SPLIT_SCRIPT = """
import sys
import jax, numpy as np
from nhp_jax import inference
from nhp_jax.models import l2net, unet
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (50, 32, 32, 1), dtype=np.uint8)
des = l2net.L2Net()
dv = des.init(jax.random.key(0), np.zeros((2, 32, 32, 1), np.float32), train=False)
den = unet.ShallowUNet()
nv = den.init(jax.random.key(1), np.zeros((2, 32, 32, 1), np.float32), train=False)
inference.MIN_ROWS_PER_DEVICE = 4
assert len(inference.block_devices(12)) == int(sys.argv[2]), inference.block_devices(12)
out = inference.make_describe_fn(des, dv, batch_size=12, denoiser=(den, nv))(x)
np.save(sys.argv[1], out)
"""


@pytest.mark.slow
def test_blocks_split_over_host_devices_give_the_same_descriptors(tmp_path):
  """Each block is split over the devices dividing it; results match one device's."""
  import os
  import subprocess
  import sys
  paths = {}
  for count in (1, 3):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
    paths[count] = str(tmp_path / f"d{count}.npy")
    proc = subprocess.run([sys.executable, "-c", _SPLIT_SCRIPT, paths[count], str(count)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
  np.testing.assert_allclose(np.load(paths[3]), np.load(paths[1]), rtol=1e-5, atol=1e-5)
