"""Models: shapes, exact parameter counts, Keras padding, batch norm, dropout, freezing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax import models
from nhp_jax.errors import CheckpointError, ConfigError
from nhp_jax.models import dncnn, l2net, unet

pytestmark = pytest.mark.any_backend

X_SHAPE = (2, 32, 32, 1)


def _pixels(seed, shape=X_SHAPE, high=255.0):
  return jnp.asarray(np.random.default_rng(seed).uniform(0.0, high, shape), jnp.float32)


def _shapes(model):
  """The variables' shapes and dtypes, traced without compiling the initialisers."""
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(X_SHAPE), train=False))


def _init(model, seed=0):
  """Random variables of `model` from NumPy: compiling `init` takes seconds on CPU.

  Kernels are He-scaled; biases, batch-norm scales and running statistics are
  random too, so no term of a reference formula can hide behind a 0 or a 1.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    shape, name = leaf.shape, path[-1].key
    if name == "kernel":
      value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
    elif name in ("scale", "var"):
      value = rng.uniform(0.5, 2.0, shape)
    else:  # bias, mean
      value = rng.normal(0.0, 0.1, shape)
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, _shapes(model))


def _conv(x, kernel, bias=None, stride=1, pads=((1, 1), (1, 1))):
  """Reference conv with explicit (Keras 'same') paddings."""
  y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   precision="highest")
  return y if bias is None else y + bias


def _set(tree, path, value):
  """Copy of a nested dict with tree[path] = value."""
  out = dict(tree)
  out[path[0]] = _set(tree[path[0]], path[1:], value) if len(path) > 1 else value
  return out


@pytest.mark.parametrize("name, kwargs, params, stats", [
    ("unet_shallow", {}, 59_777, 0),
    ("unet", {}, 7_759_521, 0),
    ("dncnn", {}, 556_096, 1_920),
    ("dncnn", {"depth": 5}, 112_192, 384),
    ("dncnn_transfer", {}, 668_288, 2_304),
    ("l2net", {}, 1_336_032, 896),
])
def test_parameter_counts(name, kwargs, params, stats):
  model = models.get_model(name, **kwargs)
  shapes = _shapes(model)
  assert models.count_params(shapes) == {"params": params, "batch_stats": stats,
                                         "total": params + stats}


def test_dncnn_transfer_split_counts():
  shapes = _shapes(models.get_model("dncnn_transfer"))
  part = lambda k: models.count_params(  # noqa: E731
      {col: shapes[col][k] for col in ("params", "batch_stats")})
  assert part(dncnn.TRAINABLE) == {"params": 112_192, "batch_stats": 384, "total": 112_576}
  assert part(dncnn.FROZEN) == {"params": 556_096, "batch_stats": 1_920, "total": 558_016}


def test_shallow_unet_init_is_keras_he_normal_and_glorot():
  p = unet.ShallowUNet().init(jax.random.key(0), jnp.zeros(X_SHAPE))["params"]
  kernel = np.asarray(p["conv_3"]["kernel"])  # (3, 3, 80, 64): He-normal, fan-in 720.
  assert abs(kernel.std() / np.sqrt(2 / 720) - 1) < 0.03
  assert np.abs(kernel).max() <= 2 * np.sqrt(2 / 720) / 0.87962566 + 1e-6  # Truncated at 2 sd.
  last = np.asarray(p["conv_4"]["kernel"])  # (3, 3, 64, 1): Glorot-uniform.
  limit = np.sqrt(6 / (576 + 9))
  assert np.abs(last).max() <= limit and abs(last.std() / (limit / np.sqrt(3)) - 1) < 0.1
  assert not any(np.asarray(p[f"conv_{i}"]["bias"]).any() for i in range(5))


@pytest.mark.parametrize("name, kwargs, out_shape", [
    ("unet_shallow", {}, X_SHAPE),
    ("unet", {}, X_SHAPE),
    ("dncnn", {"depth": 5}, X_SHAPE),
    ("dncnn_transfer", {"pretrained_depth": 4, "head_depth": 3, "features": 8}, X_SHAPE),
    ("l2net", {}, (2, 128)),
])
def test_output_shapes(name, kwargs, out_shape):
  model = models.get_model(name, **kwargs)
  variables = _init(model)
  y = model.apply(variables, _pixels(1), train=False)
  assert y.shape == out_shape and y.dtype == jnp.float32
  assert np.isfinite(np.asarray(y)).all()


def test_get_model_errors_list_known_names():
  with pytest.raises(ConfigError, match="l2net.*unet_shallow|unet_shallow.*l2net"):
    models.get_model("resnet")
  with pytest.raises(ConfigError, match="depthh.*known"):
    models.get_model("dncnn", depthh=3)


def test_shallow_unet_matches_keras_reference():
  """Explicit Keras 'same' pads (2x2 conv: 0 before, 1 after) and Keras' concat order."""
  model = unet.ShallowUNet()
  x = _pixels(2)
  p = _init(model, seed=3)["params"]
  conv = lambda y, name, **kw: _conv(y, p[name]["kernel"], p[name]["bias"], **kw)  # noqa: E731
  c1 = jax.nn.relu(conv(x, "conv_0"))
  pooled = c1.reshape(2, 16, 2, 16, 2, 16).max(axis=(2, 4))
  y = jax.nn.relu(conv(pooled, "conv_1"))
  y = jnp.repeat(jnp.repeat(y, 2, axis=1), 2, axis=2)
  y = jax.nn.relu(conv(y, "conv_2", pads=((0, 1), (0, 1))))
  y = jax.nn.relu(conv(jnp.concatenate([c1, y], -1), "conv_3"))
  want = conv(y, "conv_4")
  got = model.apply({"params": p}, x)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * float(jnp.abs(want).max()))


def test_full_frame_conv_equals_valid_conv():
  layer = l2net.FullFrameConv(16, (8, 8))
  x = _pixels(4, (3, 8, 8, 5), high=1.0)
  v = layer.init(jax.random.key(0), x)
  v = _set(v, ("params", "bias"), jnp.arange(16, dtype=jnp.float32))
  want = _conv(x, v["params"]["kernel"], v["params"]["bias"], pads="VALID").reshape(3, 16)
  np.testing.assert_allclose(layer.apply(v, x), want, rtol=1e-5, atol=1e-5)


def test_l2net_eval_matches_keras_reference():
  """Stride-2 convs pad (0, 1) like TF 'SAME'; BN eval with epsilon 1e-3; head = VALID conv."""
  model = l2net.L2Net()
  x = _pixels(5, high=1.0)
  v = _init(model, seed=6)
  p, s = v["params"], v["batch_stats"]
  y = x
  for i, (_, stride) in enumerate(l2net.LAYERS):
    pads = ((0, 1), (0, 1)) if stride == 2 else ((1, 1), (1, 1))
    y = _conv(y, p[f"conv_{i}"]["kernel"], p[f"conv_{i}"]["bias"], stride, pads)
    bn, st = p[f"bn_{i}"], s[f"bn_{i}"]
    y = jax.nn.relu((y - st["mean"]) / jnp.sqrt(st["var"] + 1e-3) * bn["scale"] + bn["bias"])
  want = _conv(y, p["head"]["kernel"], p["head"]["bias"], pads="VALID").reshape(2, 128)
  got = model.apply(v, x, train=False)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max()))


def test_l2net_train_mode_batch_norm_momentum_and_epsilon():
  """running = 0.99 running + 0.01 batch (biased variance); normalises with epsilon 1e-3."""
  model = l2net.L2Net()
  # Small inputs give small activation variances, where epsilon matters.
  x = _pixels(8, (4, 32, 32, 1), high=0.1)
  v = _init(model, seed=9)
  _, new = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)},
                       mutable=["batch_stats", "intermediates"], capture_intermediates=True)
  inter = new["intermediates"]
  for i in range(len(l2net.LAYERS)):
    c = np.asarray(inter[f"conv_{i}"]["__call__"][0], np.float64)
    mean = c.mean(axis=(0, 1, 2))
    var = ((c - mean) ** 2).mean(axis=(0, 1, 2))
    old = v["batch_stats"][f"bn_{i}"]
    np.testing.assert_allclose(new["batch_stats"][f"bn_{i}"]["mean"],
                               0.99 * np.asarray(old["mean"]) + 0.01 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new["batch_stats"][f"bn_{i}"]["var"],
                               0.99 * np.asarray(old["var"]) + 0.01 * var, rtol=1e-5)
  c = np.asarray(inter["conv_0"]["__call__"][0], np.float64)
  bn = v["params"]["bn_0"]
  want = ((c - c.mean((0, 1, 2))) / np.sqrt(c.var((0, 1, 2)) + 1e-3) * np.asarray(bn["scale"])
          + np.asarray(bn["bias"]))
  assert c.var((0, 1, 2)).min() < 1e-2  # epsilon 1e-5 would then fail the check below.
  np.testing.assert_allclose(inter["bn_0"]["__call__"][0], want, rtol=1e-4, atol=1e-4)


def test_l2net_dropout_only_in_train_mode():
  model = l2net.L2Net()
  x = _pixels(11, (4, 32, 32, 1))
  v = _init(model, seed=12)
  ev1 = model.apply(v, x, train=False)
  np.testing.assert_array_equal(ev1, model.apply(v, x, train=False))
  _, inter = model.apply(v, x, train=False, capture_intermediates=True)
  d = inter["intermediates"]
  np.testing.assert_array_equal(d["Dropout_0"]["__call__"][0],
                                jax.nn.relu(d["bn_5"]["__call__"][0]))

  def train(key):
    out, aux = model.apply(v, x, train=True, rngs={"dropout": key},
                           mutable=["batch_stats", "intermediates"], capture_intermediates=True)
    return out, aux["intermediates"]

  out1, inter1 = train(jax.random.key(1))
  out2, _ = train(jax.random.key(2))
  np.testing.assert_array_equal(out1, train(jax.random.key(1))[0])
  assert not np.allclose(out1, out2)
  before = np.asarray(jax.nn.relu(inter1["bn_5"]["__call__"][0]))
  after = np.asarray(inter1["Dropout_0"]["__call__"][0])
  kept = after != 0
  live = before != 0
  assert abs(kept.sum() / live.sum() - 0.7) < 0.02
  np.testing.assert_allclose(after[kept], before[kept] / 0.7, rtol=1e-6)


def test_l2net_l2_normalize_option():
  model = l2net.L2Net(l2_normalize=True)
  y = model.apply(_init(model), _pixels(13), train=False)
  np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("model", [unet.ShallowUNet(), dncnn.DnCNN(depth=4, features=8)])
def test_denoiser_input_scale_keeps_pixel_units(model):
  x = _pixels(14)
  v = _init(model, seed=15)
  scaled = model.clone(input_scale=1 / 255)
  np.testing.assert_allclose(scaled.apply(v, x), model.apply(v, x / 255) * 255,
                             rtol=1e-5, atol=1e-3)


def test_l2net_input_scale_multiplies_input():
  model = l2net.L2Net()
  v = _init(model, seed=16)
  x = _pixels(17)
  np.testing.assert_allclose(model.clone(input_scale=1 / 255).apply(v, x),
                             model.apply(v, x / 255), rtol=1e-5, atol=1e-5)


def test_dncnn_output_is_input_minus_residual():
  model = dncnn.DnCNN(depth=5, features=8)
  x = _pixels(18)
  v = _init(model, seed=19)
  last = f"conv_{model.depth - 1}"
  zeroed = _set(v, ("params", last, "kernel"), jnp.zeros_like(v["params"][last]["kernel"]))
  np.testing.assert_array_equal(model.apply(zeroed, x), x)
  y, aux = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  residual = aux["intermediates"][last]["__call__"][0]
  assert float(jnp.abs(residual).max()) > 1.0
  np.testing.assert_allclose(y, x - residual, rtol=1e-6, atol=1e-4)


def _small_transfer():
  return dncnn.DnCNNTransfer(pretrained_depth=4, head_depth=3, features=8)


def test_dncnn_transfer_freezes_pretrained():
  model = _small_transfer()
  x, target = _pixels(20), _pixels(21)
  v = _init(model, seed=22)

  def loss(params):
    y, new = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                         mutable=["batch_stats"])
    return jnp.mean(jnp.abs(y - target)), new

  grads, new = jax.grad(loss, has_aux=True)(v["params"])
  for g in jax.tree_util.tree_leaves(grads[dncnn.FROZEN]):
    assert not np.asarray(g).any()
  for g in jax.tree_util.tree_leaves(grads[dncnn.TRAINABLE]):
    assert np.asarray(g).any()
  jax.tree_util.tree_map(np.testing.assert_array_equal, new["batch_stats"][dncnn.FROZEN],
                         v["batch_stats"][dncnn.FROZEN])
  moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)),
                                 new["batch_stats"][dncnn.TRAINABLE],
                                 v["batch_stats"][dncnn.TRAINABLE])
  assert all(jax.tree_util.tree_leaves(moved))
  mask = dncnn.trainable_mask(v["params"])
  assert not any(jax.tree_util.tree_leaves(mask[dncnn.FROZEN]))
  assert all(jax.tree_util.tree_leaves(mask[dncnn.TRAINABLE]))


def test_graft_pretrained_loads_the_dncnn():
  model = _small_transfer()
  x = _pixels(23)
  transfer_v = _init(model, seed=24)
  pre = dncnn.DnCNN(depth=4, features=8)
  pre_v = _init(pre, seed=25)
  grafted = dncnn.graft_pretrained(transfer_v, pre_v)
  jax.tree_util.tree_map(np.testing.assert_array_equal,
                         {c: grafted[c][dncnn.FROZEN] for c in pre_v}, dict(pre_v))
  jax.tree_util.tree_map(np.testing.assert_array_equal,
                         {c: grafted[c][dncnn.TRAINABLE] for c in pre_v},
                         {c: transfer_v[c][dncnn.TRAINABLE] for c in pre_v})
  head = dncnn.DnCNN(depth=3, features=8)
  head_v = {c: transfer_v[c][dncnn.TRAINABLE] for c in pre_v}
  want = head.apply(head_v, pre.apply(pre_v, x))
  np.testing.assert_allclose(model.apply(grafted, x), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("other, message", [
    (dncnn.DnCNN(depth=5, features=8), "unexpected conv_4"),
    (dncnn.DnCNN(depth=3, features=8), "missing conv_3"),
    (dncnn.DnCNN(depth=4, features=16), r"expected shape \(3, 3, 1, 8\), found \(3, 3, 1, 16\)"),
])
def test_graft_pretrained_rejects_mismatches(other, message):
  transfer_v = _shapes(_small_transfer())
  other_v = _shapes(other)
  with pytest.raises(CheckpointError, match=message):
    dncnn.graft_pretrained(transfer_v, other_v)
  with pytest.raises(CheckpointError, match="batch_stats"):
    dncnn.graft_pretrained(transfer_v, {"params": other_v["params"]})


@pytest.mark.parametrize("name, kwargs", [
    ("l2net", {}),
    ("unet_shallow", {}),
    ("dncnn", {"depth": 5, "features": 16}),
])
def test_bfloat16_close_to_float32(name, kwargs):
  x = _pixels(26)
  f32 = models.get_model(name, **kwargs)
  bf16 = models.get_model(name, dtype=jnp.bfloat16, **kwargs)
  v = _init(bf16, seed=27)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(v)} == {jnp.dtype(jnp.float32)}
  want, got = f32.apply(v, x), bf16.apply(v, x)
  assert got.dtype == jnp.float32
  rel = float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want))
  assert 1e-4 < rel < 0.05, rel  # Above 0: the computation really ran in bfloat16.


def test_count_params_sums_every_collection():
  v = {"params": {"a": np.zeros((2, 3)), "b": {"c": np.zeros(4)}},
       "batch_stats": {"m": np.zeros(5)}, "other": {"z": np.zeros(7)}}
  assert models.count_params(v) == {"params": 10, "batch_stats": 5, "total": 22}
  assert models.count_params({"params": {"k": jax.ShapeDtypeStruct((3, 3), jnp.float32)}}) == {
      "params": 9, "batch_stats": 0, "total": 9}

