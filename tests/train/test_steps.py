"""Train and eval steps against plain reference computations."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from nhp_jax.train import state as state_lib
from nhp_jax.train import steps

pytestmark = pytest.mark.any_backend


def _config(model, kwargs, **optimizer):
  opt = {"name": "sgd", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False,
         "schedule": "constant", "warmup_steps": 0, "end_factor": 0.0, "frozen": ()}
  opt.update(optimizer)
  return ml_collections.ConfigDict({"dtype": "float32", "model": {"name": model, "kwargs": kwargs},
                                    "optimizer": opt})


def _state(config, seed=0, total_steps=10):
  model = state_lib.build_model(config)
  return jax.jit(lambda: state_lib.create_train_state(
      config, model, jax.random.PRNGKey(seed), jnp.zeros((1, 32, 32, 1)), total_steps))()


def _pairs(rng, b=6):
  clean = rng.integers(0, 256, (b, 32, 32, 1), dtype=np.uint8)
  noise = rng.integers(-20, 21, clean.shape)
  return {"noisy": np.clip(clean + noise, 0, 255).astype(np.uint8), "clean": clean}


def _triplets(rng, b=4):
  return {k: rng.integers(0, 256, (b, 32, 32, 1), dtype=np.uint8)
          for k in ("anchor", "positive", "negative")}


def _np_tree(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


# Shared jitted steps and states: one compilation per (state, shapes) for the module.
_DENOISER_STEP = jax.jit(steps.denoiser_train_step)
_DESCRIPTOR_STEP = jax.jit(steps.descriptor_train_step, static_argnames=("margin", "bn_passes"))


@pytest.fixture(scope="module")
def unet_state():
  return _state(_config("unet_shallow", {}))


@pytest.fixture(scope="module")
def l2net_state():
  return _state(_l2net_config())


def test_denoiser_step_is_sgd_on_mae(unet_state):
  state = unet_state
  batch = _pairs(np.random.default_rng(0))
  x, y = batch["noisy"].astype(np.float32), batch["clean"].astype(np.float32)

  def reference_loss(params):
    pred = state.apply_fn({"params": params}, x, train=True)
    return jnp.sum(jnp.abs(pred - y)) / y.size

  grads = jax.jit(jax.grad(reference_loss))(state.params)
  pred = np.asarray(jax.jit(state.apply_fn)({"params": state.params}, x), np.float64)
  new, metrics = _DENOISER_STEP(state, batch)

  assert float(metrics["loss"]) == pytest.approx(np.abs(pred - y).mean(), rel=1e-5)
  mse = np.square(np.clip(pred, 0, 255) - y).mean()
  assert float(metrics["psnr"]) == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-4)
  flat_g = np.concatenate([np.ravel(g) for g in jax.tree.leaves(_np_tree(grads))])
  assert float(metrics["grad_norm"]) == pytest.approx(np.linalg.norm(flat_g), rel=1e-4)
  assert float(metrics["lr"]) == pytest.approx(0.01)
  assert int(new.step) == 1
  expected = jax.tree.map(lambda p, g: p - 0.01 * g, _np_tree(state.params), _np_tree(grads))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               _np_tree(new.params), expected)


def test_nesterov_matches_keras_formula():
  """Keras SGD(nesterov): v = m v - lr g; w += m v - lr g, over three steps."""
  lr, m = 0.001, 0.9
  config = _config("unet_shallow", {}, learning_rate=lr, momentum=m, nesterov=True)
  state = _state(config)
  rng = np.random.default_rng(1)
  w = _np_tree(state.params)
  v = jax.tree.map(np.zeros_like, w)
  grad = jax.jit(jax.grad(lambda p, x, y: jnp.mean(jnp.abs(state.apply_fn({"params": p}, x) - y))))
  for _ in range(3):
    batch = _pairs(rng)
    x, y = batch["noisy"].astype(np.float32), batch["clean"].astype(np.float32)
    g = _np_tree(grad(state.params, x, y))
    v = jax.tree.map(lambda v, g: m * v - lr * g, v, g)
    w = jax.tree.map(lambda w, v, g: w + m * v - lr * g, w, v, g)
    state, _ = _DENOISER_STEP(state, batch)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 _np_tree(state.params), w)


def test_uint8_and_float_batches_agree(unet_state):
  batch = _pairs(np.random.default_rng(2))
  _, m8 = _DENOISER_STEP(unet_state, batch)
  _, m32 = _DENOISER_STEP(unet_state, {k: v.astype(np.float32) for k, v in batch.items()})
  assert float(m8["loss"]) == float(m32["loss"])


def _l2net_config(dropout=0.0):
  return _config("l2net", {"dropout_rate": dropout})


def _reference_triplet(state, batch, bn_passes):
  """New batch stats and metrics by applying the model directly (dropout off)."""
  xs = [batch[k].astype(jnp.float32) for k in ("anchor", "positive", "negative")]
  stats = state.batch_stats
  if bn_passes == 1:
    d, nv = state.apply_fn({"params": state.params, "batch_stats": stats}, jnp.concatenate(xs),
                           train=True, mutable=["batch_stats"])
    descs, stats = jnp.split(d, 3), nv["batch_stats"]
  else:
    descs = []
    for x in xs:
      d, nv = state.apply_fn({"params": state.params, "batch_stats": stats}, x, train=True,
                             mutable=["batch_stats"])
      descs.append(d)
      stats = nv["batch_stats"]
  a, p, n = descs
  d_pos = jnp.mean((a - p) ** 2, axis=1)
  d_neg = jnp.mean((a - n) ** 2, axis=1)
  hinge = jnp.maximum(0, d_pos - d_neg + 1.0)
  return stats, {"loss": hinge.mean(), "active_fraction": (hinge > 0).mean(),
                 "d_pos": d_pos.mean(), "d_neg": d_neg.mean()}


def test_descriptor_step_matches_reference(l2net_state):
  state = l2net_state
  batch = _triplets(np.random.default_rng(3))
  losses = {}
  for bn_passes in (1, 3):
    ref_stats, ref = jax.jit(_reference_triplet, static_argnums=2)(state, batch, bn_passes)
    new, metrics = _DESCRIPTOR_STEP(state, batch, margin=1.0, bn_passes=bn_passes)
    for k, v in ref.items():
      assert float(metrics[k]) == pytest.approx(float(v), rel=2e-4, abs=1e-6), (bn_passes, k)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 _np_tree(new.batch_stats), _np_tree(ref_stats))
    losses[bn_passes] = float(metrics["loss"])
  # The choice matters: one batch-norm batch over 3B patches is not three over B.
  assert losses[1] != losses[3]


def test_dropout_key_depends_on_step_only():
  state = _state(_l2net_config(dropout=0.3))
  batch = _triplets(np.random.default_rng(5))
  _, a = _DESCRIPTOR_STEP(state, batch, bn_passes=1)
  _, b = _DESCRIPTOR_STEP(state, batch, bn_passes=1)
  _, c = _DESCRIPTOR_STEP(state.replace(step=state.step + 1), batch, bn_passes=1)
  assert float(a["loss"]) == float(b["loss"])
  assert float(a["d_pos"]) != float(c["d_pos"])


def test_eval_steps_ignore_padding(unet_state, l2net_state):
  rng = np.random.default_rng(6)
  den = unet_state
  batch = _pairs(rng, b=6)
  mask = np.array([1, 1, 1, 1, 0, 0], np.float32)
  sums = jax.jit(steps.denoiser_eval_step)(den, {**batch, "mask": mask})
  apply = jax.jit(den.apply_fn)
  pred = np.asarray(apply({"params": den.params}, batch["noisy"][:4].astype(np.float32)))
  y = batch["clean"][:4].astype(np.float64)
  out = steps.denoiser_eval_summary(jax.device_get(sums))
  assert float(sums["count"]) == 4
  assert out["loss"] == pytest.approx(np.abs(pred - y).mean(), rel=1e-5)
  mse = np.square(np.clip(pred, 0, 255) - y).mean()
  assert out["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-5)

  desc = l2net_state
  trip = _triplets(rng, b=5)
  mask = np.array([1, 1, 1, 0, 0], np.float32)
  totals = steps.descriptor_eval_summary(
      jax.device_get(jax.jit(steps.descriptor_eval_step)(desc, {**trip, "mask": mask})))
  apply = jax.jit(desc.apply_fn)
  a, p, n = (np.asarray(apply(desc.variables, trip[k][:3].astype(np.float32)), np.float64)
             for k in ("anchor", "positive", "negative"))
  d_pos, d_neg = np.mean((a - p) ** 2, 1), np.mean((a - n) ** 2, 1)
  assert totals["loss"] == pytest.approx(np.maximum(0, d_pos - d_neg + 1).mean(), rel=1e-4)
  assert totals["d_neg"] == pytest.approx(d_neg.mean(), rel=1e-4)


def test_frozen_subtree_never_moves():
  config = _config("dncnn_transfer", {"pretrained_depth": 3, "head_depth": 3, "features": 8},
                   momentum=0.9, frozen=("pretrained",), learning_rate=0.1)
  state = _state(config)
  before = jax.device_get(state.params)
  rng = np.random.default_rng(7)
  for _ in range(2):
    state, _ = _DENOISER_STEP(state, _pairs(rng))
  after = jax.device_get(state.params)
  jax.tree.map(np.testing.assert_array_equal, after["pretrained"], before["pretrained"])
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(after["head"]), jax.tree.leaves(before["head"])))


def test_bfloat16_compute_keeps_float32_params(unet_state):
  f32 = unet_state
  cfg = _config("unet_shallow", {})
  cfg.dtype = "bfloat16"
  bf16 = _state(cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(bf16.params))
  batch = _pairs(np.random.default_rng(8))
  new, m16 = _DENOISER_STEP(bf16, batch)
  _, m32 = _DENOISER_STEP(f32, batch)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new.params))
  assert m16["loss"].dtype == jnp.float32
  assert float(m16["loss"]) == pytest.approx(float(m32["loss"]), rel=0.05)
  assert float(m16["loss"]) != float(m32["loss"])


def test_unknown_optimizer_lists_known():
  with pytest.raises(Exception, match="sgd"):
    _state(_config("unet_shallow", {}, name="rmsprop"))


def test_schedules_reach_their_ends():
  cfg = _config("unet_shallow", {}, schedule="cosine", warmup_steps=2, end_factor=0.1,
                learning_rate=1.0)
  _, lr = state_lib.make_optimizer(cfg.optimizer, 10, {"w": jnp.zeros(1)})
  assert float(lr(0)) == 0.0 and float(lr(2)) == pytest.approx(1.0)
  assert float(lr(10)) == pytest.approx(0.1)
  cfg.optimizer.schedule = "linear"
  _, lr = state_lib.make_optimizer(cfg.optimizer, 10, {"w": jnp.zeros(1)})
  assert float(lr(6)) == pytest.approx(0.55) and float(lr(10)) == pytest.approx(0.1)
