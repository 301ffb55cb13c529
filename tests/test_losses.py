"""Losses against hand-computed numbers and a NumPy transcription of the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax import losses

pytestmark = pytest.mark.any_backend


def _rows(*values):
  """(len(values), 128) float32 with row i constant values[i]."""
  return jnp.asarray(np.repeat(np.asarray(values, np.float32)[:, None], 128, axis=1))


def test_mae_hand_example():
  pred = jnp.asarray([[0.0, 2.0], [4.0, 6.0]])
  target = jnp.ones((2, 2))
  assert float(losses.mae(pred, target)) == pytest.approx((1 + 1 + 3 + 5) / 4)


def test_psnr_hand_example():
  target = jnp.full((2, 4, 4, 1), 100.0)
  assert float(losses.psnr(target + 1.0, target)) == pytest.approx(10 * np.log10(255.0**2), 1e-6)
  assert float(losses.psnr(target + 2.0, target)) == pytest.approx(
      10 * np.log10(255.0**2 / 4), 1e-6)


def test_triplet_hand_example():
  # d(a, p) = 0.25 for both; d(a, n) = 1 (hinge 0.25) and 4 (hinge 0).
  a, p, n = _rows(0.0, 0.0), _rows(0.5, 0.5), _rows(1.0, 2.0)
  assert float(losses.triplet_margin(a, p, n)) == pytest.approx(0.125)
  assert float(losses.triplet_margin(a, p, n, margin=4.0)) == pytest.approx(
      ((0.25 - 1 + 4) + (0.25 - 4 + 4)) / 2)
  m = losses.triplet_metrics(a, p, n)
  assert float(m["active_fraction"]) == 0.5
  assert float(m["d_pos"]) == pytest.approx(0.25)
  assert float(m["d_neg"]) == pytest.approx(2.5)


def test_triplet_distance_is_squared_l2_over_dims():
  a = jnp.zeros((1, 128))
  p = jnp.zeros((1, 128)).at[0, 0].set(8.0)  # squared L2 64 -> d = 0.5.
  n = jnp.zeros((1, 128))
  assert float(losses.triplet_margin(a, p, n)) == pytest.approx(0.5 + 1.0)


def test_triplet_hinge_at_zero():
  # d(a, p) - d(a, n) + 1 = 0.25 - 1.25 + 1 = 0 exactly: on the hinge.
  a, p = _rows(0.0), _rows(0.5)
  on = _rows(np.sqrt(1.25))
  assert float(losses.triplet_margin(a, p, _rows(2.0))) == 0.0
  assert float(losses.triplet_margin(a, p, on)) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.triplet_metrics(a, p, _rows(2.0))["active_fraction"]) == 0.0
  grads = jax.grad(lambda x: losses.triplet_margin(x, p, _rows(2.0)))(a)
  assert not np.asarray(grads).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_matches_numpy(seed):
  rng = np.random.default_rng(seed)
  a, p, n = (rng.normal(0, 1, (50, 128)).astype(np.float32) for _ in range(3))
  d_ap = ((a - p) ** 2).mean(-1)
  d_an = ((a - n) ** 2).mean(-1)
  hinge = np.maximum(0.0, d_ap - d_an + 0.3)
  got = losses.triplet_margin(jnp.asarray(a), jnp.asarray(p), jnp.asarray(n), margin=0.3)
  assert float(got) == pytest.approx(hinge.mean(), rel=1e-5)
  m = losses.triplet_metrics(jnp.asarray(a), jnp.asarray(p), jnp.asarray(n), margin=0.3)
  assert float(m["active_fraction"]) == pytest.approx((hinge > 0).mean())
  assert float(m["d_pos"]) == pytest.approx(d_ap.mean(), rel=1e-5)


def test_losses_are_float32_for_bfloat16_inputs():
  a, p, n = (jnp.ones((2, 128), jnp.bfloat16) * v for v in (0.0, 0.5, 1.0))
  assert losses.triplet_margin(a, p, n).dtype == jnp.float32
  assert losses.mae(a, p).dtype == jnp.float32
