"""Matmul forms of convolutions equal `nn.Conv`: outputs and every gradient, to float tolerance."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax.models import l2net

pytestmark = pytest.mark.any_backend

# (kernel side, C_in, C_out, padding): im2col (few inputs), col2im (few
# outputs), the plain fallback, an even SAME kernel and VALID.
CASES = [(3, 1, 16, "SAME"), (3, 64, 1, "SAME"), (1, 64, 1, "SAME"), (2, 32, 8, "SAME"),
         (2, 1, 4, "SAME"), (3, 8, 2, "VALID"), (3, 16, 24, "SAME")]


@pytest.fixture(name="fast_conv")
def _fast_conv():
  return pytest.importorskip("nhp_jax.models.fast_conv")


def _inputs(rng, shape):
  return jnp.asarray(rng.uniform(0.0, 255.0, shape), jnp.float32)


def _close(a, b, rtol=2e-5):
  """Equal up to float32 summation order, relative to the larger magnitude."""
  scale = max(float(jnp.max(jnp.abs(b))), 1e-6)
  return float(jnp.max(jnp.abs(a - b))) <= rtol * scale


def _value_and_grads(module, variables, x):
  def loss(v, x):
    y = module.apply(v, x)
    return jnp.sum(jnp.sin(y / 100.0)), y
  (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(variables, x)
  return y, grads


@pytest.mark.parametrize("k,c_in,c_out,padding", CASES)
def test_conv_matches_nn_conv(fast_conv, k, c_in, c_out, padding):
  rng = np.random.default_rng(k * 1000 + c_in * 10 + c_out)
  x = _inputs(rng, (3, 9, 10, c_in))
  reference = nn.Conv(c_out, (k, k), padding=padding)
  fast = fast_conv.Conv(c_out, (k, k), padding=padding)
  variables = reference.init(jax.random.PRNGKey(0), x)
  # A nonzero bias, so its gradient and broadcast are checked too.
  variables = jax.tree_util.tree_map(lambda a: a + 0.01, variables)
  assert (jax.tree_util.tree_map(jnp.shape, fast.init(jax.random.PRNGKey(0), x))
          == jax.tree_util.tree_map(jnp.shape, variables))

  y_ref, (g_ref, gx_ref) = _value_and_grads(reference, variables, x)
  y, (g, gx) = _value_and_grads(fast, variables, x)
  assert y.shape == y_ref.shape
  assert _close(y, y_ref)
  assert _close(gx, gx_ref)
  for name in ("kernel", "bias"):
    assert _close(g["params"][name], g_ref["params"][name]), name


@pytest.mark.parametrize("c_out", [1, 16])
def test_paths_agree_with_each_other(fast_conv, c_out):
  """im2col and col2im compute the same conv (each against lax's, at a shape both accept)."""
  rng = np.random.default_rng(c_out)
  x = _inputs(rng, (2, 8, 8, 1))
  kernel = jnp.asarray(rng.normal(size=(3, 3, 1, c_out)), jnp.float32)
  lax_y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert _close(fast_conv.gathered_conv(x, kernel, "SAME"), lax_y)
  assert _close(fast_conv.scattered_conv(x, kernel, "SAME"), lax_y)


def test_full_frame_conv_matches_valid_conv_gradients():
  """L2-Net's matmul head equals an 8x8 VALID conv, gradients included."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(5, 8, 8, 16)), jnp.float32)
  reference = nn.Conv(12, (8, 8), padding="VALID",
                      kernel_init=nn.initializers.glorot_uniform())
  head = l2net.FullFrameConv(12, (8, 8))
  variables = reference.init(jax.random.PRNGKey(1), x)
  variables = jax.tree_util.tree_map(lambda a: a + 0.01, variables)
  y_ref, (g_ref, gx_ref) = _value_and_grads(reference, variables, x)
  y, (g, gx) = _value_and_grads(head, variables, x)
  assert _close(y, y_ref.reshape(5, 12))
  assert _close(gx, gx_ref)
  for name in ("kernel", "bias"):
    assert _close(g["params"][name], g_ref["params"][name]), name
