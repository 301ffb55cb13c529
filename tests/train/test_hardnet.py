"""HardNet loss, SOS regulariser, flip/rotation augmentation and the hardnet config.

The batched losses are checked against plain NumPy loops over pairs.
"""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import hardnet
from nhp_jax import errors, losses
from nhp_jax.data import augment
from nhp_jax.train import config_validation, loop, steps
from nhp_jax.train import state as state_lib

EPS = losses.DISTANCE_EPS


def _dist(x, y):
  return np.sqrt(max(float(np.sum((np.float64(x) - np.float64(y)) ** 2)), EPS))


def _hardnet_reference(a, p, margin):
  """Mean over i of max(0, margin + d(a_i, p_i) - min_{j != i} min(d(a_i, p_j), d(a_j, p_i)))."""
  n = len(a)
  total = 0.0
  for i in range(n):
    neg = min(min(_dist(a[i], p[j]), _dist(a[j], p[i])) for j in range(n) if j != i)
    total += max(0.0, margin + _dist(a[i], p[i]) - neg)
  return total / n


def _sos_reference(a, p, k):
  """Mean over i of sqrt(sum over j in kNN_a(i) | kNN_p(i) of (d(a_i,a_j) - d(p_i,p_j))^2)."""
  n = len(a)
  total = 0.0
  for i in range(n):
    da = [_dist(a[i], a[j]) for j in range(n)]
    dp = [_dist(p[i], p[j]) for j in range(n)]
    others = [j for j in range(n) if j != i]
    near = (set(sorted(others, key=lambda j: da[j])[:k])
            | set(sorted(others, key=lambda j: dp[j])[:k]))
    total += np.sqrt(max(sum((da[j] - dp[j]) ** 2 for j in near), EPS))
  return total / n


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


_HARDNET = jax.jit(losses.hardest_in_batch, static_argnames="margin")
_SOS = jax.jit(losses.second_order_similarity, static_argnames="k")


@pytest.mark.parametrize("seed", range(3))
def test_hardest_in_batch_matches_loop(seed):
  rng = np.random.default_rng(seed)
  n = 5 + 4 * seed
  a = _unit(rng.normal(size=(n, 16))).astype(np.float32)
  p = _unit(a + 0.4 * rng.normal(size=(n, 16))).astype(np.float32)
  for margin in (1.0, 0.3):
    np.testing.assert_allclose(float(_HARDNET(a, p, margin=margin)),
                               _hardnet_reference(a, p, margin), rtol=1e-5, atol=1e-5)


def test_hardest_in_batch_with_exact_ties():
  # Descriptors on a small integer lattice: many distances are exactly equal,
  # several descriptors are duplicated and some positives equal their anchors.
  rng = np.random.default_rng(7)
  a = rng.integers(0, 2, (12, 4)).astype(np.float32)
  p = a.copy()
  p[::3] = rng.integers(0, 2, (4, 4))
  for margin in (1.0, 2.0):
    np.testing.assert_allclose(float(_HARDNET(a, p, margin=margin)),
                               _hardnet_reference(a, p, margin), rtol=1e-6, atol=1e-6)
  d_pos, d_neg = losses.hardest_in_batch_distances(jnp.asarray(a), jnp.asarray(p))
  for i in range(len(a)):
    assert float(d_pos[i]) == pytest.approx(_dist(a[i], p[i]), abs=1e-6)
    assert float(d_neg[i]) == pytest.approx(
        min(min(_dist(a[i], p[j]), _dist(a[j], p[i])) for j in range(len(a)) if j != i),
        abs=1e-6)


def test_hardest_in_batch_needs_two_pairs():
  with pytest.raises(ValueError, match=">= 2 pairs"):
    losses.hardest_in_batch(jnp.ones((1, 4)), jnp.ones((1, 4)))


@pytest.mark.parametrize("seed,k", [(0, 1), (1, 3), (2, 8)])
def test_sos_matches_loop(seed, k):
  rng = np.random.default_rng(seed)
  n = 11 + 3 * seed
  a = _unit(rng.normal(size=(n, 16))).astype(np.float32)
  p = _unit(a + 0.5 * rng.normal(size=(n, 16))).astype(np.float32)
  np.testing.assert_allclose(float(_SOS(a, p, k=k)), _sos_reference(a, p, k),
                             rtol=1e-5, atol=1e-5)


def test_sos_is_zero_for_isometric_sets_and_checks_k():
  rng = np.random.default_rng(3)
  a = _unit(rng.normal(size=(9, 8))).astype(np.float32)
  rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  # p is a rotated copy of a: every distance is preserved, only the eps floor remains.
  p = (a @ rotation).astype(np.float32)
  assert float(_SOS(a, p, k=4)) == pytest.approx(np.sqrt(EPS), abs=2e-3)
  with pytest.raises(ValueError, match="k < batch"):
    losses.second_order_similarity(jnp.asarray(a), jnp.asarray(p), k=9)


def test_gradients_finite_with_duplicated_descriptors():
  rng = np.random.default_rng(0)
  a = _unit(rng.normal(size=(6, 8))).astype(np.float32)
  a[1] = a[0]                    # two anchors coincide
  p = a.copy()                   # every positive equals its anchor
  p[4] = a[2]                    # and a positive equals another pair's anchor

  def total(a, p):
    return losses.hardest_in_batch(a, p) + losses.second_order_similarity(a, p, k=3)

  value, (ga, gp) = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))(a, p)
  assert np.isfinite(float(value))
  assert np.isfinite(np.asarray(ga)).all() and np.isfinite(np.asarray(gp)).all()


def test_hardest_in_batch_eval_step_is_per_triplet_margin():
  # A stand-in model: the first 8 pixels of each patch, as its descriptor.
  fake = types.SimpleNamespace(variables={},
                               apply_fn=lambda v, x, train: x.reshape(x.shape[0], -1)[:, :8])
  rng = np.random.default_rng(2)
  batch = {k: rng.integers(0, 3, (7, 32, 32, 1), dtype=np.uint8)
           for k in ("anchor", "positive", "negative")}
  batch["mask"] = np.array([1, 1, 1, 1, 1, 0, 0], np.float32)
  sums = steps.hardest_in_batch_eval_step(fake, batch, margin=0.5)
  desc = {k: np.float64(batch[k].reshape(7, -1)[:5, :8])
          for k in ("anchor", "positive", "negative")}
  hinge = [max(0.0, 0.5 + _dist(desc["anchor"][i], desc["positive"][i])
               - _dist(desc["anchor"][i], desc["negative"][i])) for i in range(5)]
  assert float(sums["count"]) == 5
  assert float(sums["loss"]) == pytest.approx(sum(hinge), rel=1e-5)
  assert float(sums["active_fraction"]) == sum(h > 0 for h in hinge)


def test_dihedral_is_exact_flip_and_rotation():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (16, 6, 6, 2), dtype=np.uint8)
  code = np.arange(16) % augment.NUM_SYMMETRIES
  out = np.asarray(jax.jit(augment.dihedral)(x, code))
  assert out.dtype == np.uint8
  for i, c in enumerate(code):
    img = np.flip(x[i], axis=1) if c >= 4 else x[i]
    np.testing.assert_array_equal(out[i], np.rot90(img, c % 4))


def test_flip_rot_deterministic_per_key_and_shared_within_group():
  rng = np.random.default_rng(1)
  batch = {k: rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
           for k in ("anchor", "positive", "negative")}
  batch["positive"] = batch["anchor"].copy()
  fn = augment.get_augmentation("flip_rot")
  groups = (("anchor", "positive"), ("negative",))
  key = jax.random.PRNGKey(5)
  out = fn(key, batch, groups)
  again = fn(key, batch, groups)
  other = fn(jax.random.PRNGKey(6), batch, groups)
  for k in batch:
    np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(again[k]))
  # Anchor and positive moved alike; each row is one of the 8 symmetries of its input.
  np.testing.assert_array_equal(np.asarray(out["anchor"]), np.asarray(out["positive"]))
  assert any(not np.array_equal(np.asarray(out[k]), np.asarray(other[k])) for k in batch)
  for i in range(64):
    variants = [np.rot90(np.flip(batch["negative"][i], 1) if c >= 4 else batch["negative"][i],
                         c % 4) for c in range(8)]
    assert any(np.array_equal(np.asarray(out["negative"][i]), v) for v in variants)
  assert augment.get_augmentation("none")(key, batch, groups)["anchor"] is batch["anchor"]
  with pytest.raises(errors.ConfigError, match="known: none, flip_rot"):
    augment.get_augmentation("mixup")


def test_hardest_in_batch_step_loss():
  """HardNet's setting: anchors and positives in separate batch-norm passes, SOS on."""
  c = hardnet.get_config("smoke")
  c.model.kwargs.dropout_rate = 0.0
  model = state_lib.build_model(c)
  state = jax.jit(lambda: state_lib.create_train_state(
      c, model, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), 10))()
  rng = np.random.default_rng(0)
  batch = {k: rng.integers(0, 256, (6, 32, 32, 1), dtype=np.uint8) for k in ("anchor", "positive")}
  step = jax.jit(steps.hardest_in_batch_train_step,
                 static_argnames=("bn_passes", "sos_weight", "sos_k"))
  _, metrics = step(state, batch, bn_passes=2, sos_weight=0.5, sos_k=2)

  def describe(x):
    out, _ = state.apply_fn(state.variables, np.float32(x), train=True, mutable=["batch_stats"])
    return np.asarray(out, np.float64)

  a, p = describe(batch["anchor"]), describe(batch["positive"])
  expected = _hardnet_reference(a, p, 1.0) + 0.5 * _sos_reference(a, p, 2)
  assert float(metrics["loss"]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
  assert float(metrics["sos"]) == pytest.approx(_sos_reference(a, p, 2), rel=1e-4, abs=1e-5)


def test_config_validation_of_new_fields():
  c = hardnet.get_config()
  config_validation.validate(c)
  c.descriptor.bn_passes = 3
  with pytest.raises(errors.ConfigError, match="bn_passes"):
    config_validation.validate(c)
  c = hardnet.get_config()
  c.descriptor.loss = "contrastive"
  with pytest.raises(errors.ConfigError, match="hardest_in_batch"):
    config_validation.validate(c)


def test_hardnet_smoke_training(tmp_path):
  c = hardnet.get_config("smoke")
  c.descriptor.sos_weight = 1.0
  c.descriptor.augment = "flip_rot"
  state = loop.train_and_evaluate(c, str(tmp_path))
  assert int(state.step) == 12
  records = [line for line in (tmp_path / loop.METRICS_FILE).read_text().splitlines() if line]
  assert len(records) == 2
  last = json.loads(records[-1])
  for key in ("train_loss", "train_sos", "train_d_neg", "val_loss", "val_d_pos"):
    assert np.isfinite(last[key]), key
