"""Memory estimates against XLA's own analysis; too-large jobs fail before work, naming the
option; describing and scoring run in fixed-size blocks whatever the data size."""

import logging
import tracemalloc

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax import errors, inference, resources
from nhp_jax.evaluation import kernels
from nhp_jax.models import get_model


def _init(model):
  return jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)),
                                    train=False))()


@pytest.mark.parametrize("name, kwargs", [
    ("l2net", {}), ("unet_shallow", {}), pytest.param("unet", {"features": 8, "depth": 2}, marks=pytest.mark.slow),
    ("dncnn", {"depth": 5})])
def test_activation_estimate_bounds_xla_memory_analysis(name, kwargs):
  """XLA's compiled temporaries of a block <= the estimate <= 3.5 x them (on CPU)."""
  model = get_model(name, **kwargs)
  variables = _init(model)
  batch = 64
  compiled = jax.jit(lambda v, x: model.apply(v, x.astype(jnp.float32), train=False)).lower(
      variables, jax.ShapeDtypeStruct((batch, 32, 32, 1), jnp.uint8)).compile()
  xla = compiled.memory_analysis().temp_size_in_bytes
  estimate = batch * resources.activation_bytes_per_patch(model, variables)
  assert xla <= estimate <= 3.5 * xla, (name, xla, estimate)


class _Pool(nn.Module):
  """A cheap 'descriptor': 16 averages of 64 pixels each, plus one parameter."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    w = self.param("w", nn.initializers.ones, (1,))
    return x.reshape(x.shape[0], 16, 64).mean(-1) * w


@pytest.fixture(scope="module")
def pool():
  model = _Pool()
  return model, _init(model)


def test_describe_estimate_components(pool):
  e = resources.describe_estimate(1000, 50, pool)
  dim = 16
  assert e.host == 4 * dim * 1000 + 2 * 50 * (1024 + 4 * dim)
  assert e.device_fixed == 4
  assert e.device == e.device_fixed + 50 * e.device_per_patch
  assert e.device_per_patch == resources.activation_bytes_per_patch(*pool) + 2 * (1024 + 4 * dim)
  with_denoiser = resources.describe_estimate(1000, 50, pool, (get_model("unet_shallow"),
                                                               _init(get_model("unet_shallow"))))
  assert with_denoiser.device_per_patch > e.device_per_patch
  assert with_denoiser.device_fixed == 4 + 59_777 * 4


def test_device_too_small_names_the_flag_and_a_batch_that_fits(pool):
  e = resources.describe_estimate(10_000, 4096, pool)
  available = e.device // 3
  with pytest.raises(errors.ConfigError, match=r"describing: needs about .* GiB of gpu:0 memory "
                                               r"at batch_size=4096 .* free; pass a smaller "
                                               r"batch_size \(at most (\d+)\)") as info:
    resources.check(e, what="describing", batch_size=4096, device_available=available,
                    device_name="gpu:0")
  fits = int(info.value.args[0].rsplit("at most ", 1)[1].rstrip(")"))
  assert 0 < fits < 4096
  assert resources.describe_estimate(10_000, fits, pool).device <= available


def test_host_too_small_and_warnings(pool, caplog):
  e = resources.describe_estimate(10_000, 64, pool)
  with pytest.raises(errors.DataError, match=r"needs about .* of host memory, .* available; "
                                             r"describe fewer sequences"):
    resources.check(e, what="describing", batch_size=64, host_available=e.host - 1)
  with caplog.at_level(logging.WARNING):
    resources.check(e, what="describing", batch_size=64, host_available=int(e.host / 0.9),
                    device_available=int(e.device / 0.9))
  assert caplog.text.count("needs about") == 2
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    resources.check(e, what="describing", batch_size=64, host_available=10 * e.host,
                    device_available=10 * e.device)
  assert not caplog.text


def test_machine_queries():
  host = resources.host_available_bytes()
  assert host is None or host > 0
  assert resources.device_available_bytes(jax.devices("cpu")[0]) is None


def test_describe_patchset_refuses_before_compiling(random_patchset, pool, monkeypatch):
  monkeypatch.setattr(resources, "host_available_bytes", lambda: 1000)
  monkeypatch.setattr(inference, "make_describe_fn",
                      lambda *a, **k: pytest.fail("work started before the memory check"))
  with pytest.raises(errors.DataError, match=r"describing 432 patches: needs about"):
    inference.describe_patchset(random_patchset, pool, input="clean", batch_size=64)


def test_describe_runs_in_fixed_blocks_and_bounded_host_memory(pool, monkeypatch):
  """8192 patches at batch 64: every block has the batch's shape, and the host never holds
  more than the result and a few blocks (a float32 copy of the input would be 32 MiB)."""
  n, batch = 8192, 64
  x = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 1), dtype=np.uint8)
  describe = inference.make_describe_fn(*pool, batch_size=batch)
  describe(x[:batch])   # compile outside the measurement
  shapes = []
  real_put = jax.device_put

  def put(value, *args, **kwargs):
    if getattr(value, "ndim", 0) == 4:
      shapes.append(value.shape)
    return real_put(value, *args, **kwargs)
  monkeypatch.setattr(jax, "device_put", put)
  tracemalloc.start()
  try:
    out = describe(x)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert out.shape == (n, 16)
  np.testing.assert_allclose(out, x.reshape(n, 16, 64).mean(-1), rtol=1e-6)
  assert shapes == [(batch, 32, 32, 1)] * (n // batch)
  assert peak < out.nbytes + 16 * batch * 32 * 32 * 4, peak


def test_verification_scoring_runs_in_fixed_blocks(monkeypatch):
  calls = []
  real = kernels._paired_block

  def recording(table, rows_a, rows_b, metric):
    calls.append((rows_a.shape, rows_b.shape))
    return real(table, rows_a, rows_b, metric)
  monkeypatch.setattr(kernels, "_paired_block", recording)
  rng = np.random.default_rng(0)
  table = rng.standard_normal((50, 8)).astype(np.float32)
  a, b = rng.integers(0, 50, 2500), rng.integers(0, 50, 2500)
  d = kernels.paired_distances(table, a, b, block=1000)
  assert calls == [((1000,), (1000,))] * 3
  np.testing.assert_allclose(d, np.linalg.norm(table[a] - table[b], axis=1), rtol=1e-5)
