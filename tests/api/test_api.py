"""nhp_jax.load / Model.describe / Model.denoise: every input form, against the inference module.

The references call `nhp_jax.inference` directly on the networks restored by
`evaluation.from_checkpoints` (what `experiments.evaluate --workdir` scores),
with the block size the API picks for these calls, so they agree bit for bit.
"""

import numpy as np
import pytest

import nhp_jax
from nhp_jax import errors, inference
from nhp_jax.data import reader
from nhp_jax.evaluation import describe


N = 6            # patches per call: one compiled block of 8 for every test
BLOCK = 8


@pytest.fixture(scope="module")
def patches():
  return np.random.default_rng(0).integers(0, 256, (N, 32, 32), dtype=np.uint8)


@pytest.fixture(scope="module")
def references(workdir_paths, patches):
  """{(kind, denoise): descriptors, ("denoised", kind): uint8 pixels} computed without the API."""
  run = workdir_paths["pair"]
  den = describe.restore(str(run / "denoiser"))
  des = describe.restore(str(run / "descriptor"))
  joint = describe.restore(str(workdir_paths["joint"]))
  alone = describe.restore(str(workdir_paths["descriptor"]))
  x = patches[..., None]
  out = {
      ("pair", True): inference.make_describe_fn(*des.pair, BLOCK, denoiser=den.pair)(x),
      ("pair", False): inference.make_describe_fn(*des.pair, BLOCK)(x),
      ("joint", True): inference.make_describe_fn(*joint.pair, BLOCK)(x),
      ("descriptor", False): inference.make_describe_fn(*alone.pair, BLOCK)(x),
      ("denoised", "pair"): inference.make_denoise_fn(*den.pair, BLOCK, as_uint8=True)(x),
  }
  # The joint model's halves, through its own methods.
  module, v = joint.pair
  out[("joint", False)] = np.asarray(module.apply(v, x.astype(np.float32), method="describe"))
  out[("raw", "joint")] = np.asarray(module.apply(v, x.astype(np.float32), method="denoise"))
  return out


def test_load_detects_each_kind(models, workdir_paths):
  assert {k: m.kind for k, m in models.items()} == {"pair": "pair", "joint": "joint",
                                                    "descriptor": "descriptor"}
  assert [m.has_denoiser for m in models.values()] == [True, True, False]
  assert all(m.dim == 128 for m in models.values())
  assert models["joint"].source == str(workdir_paths["joint"])


@pytest.mark.parametrize("kind,denoise", [("pair", True), ("pair", False), ("joint", True),
                                          ("joint", False), ("descriptor", False)])
def test_describe_is_the_pipeline(models, references, patches, kind, denoise):
  """Headline (denoise None) and denoise=True/False, bitwise against the inference path."""
  model = models[kind]
  got = model.describe(patches, denoise=denoise)
  assert got.shape == (N, 128) and got.dtype == np.float32
  if kind == "joint" and not denoise:   # an unjitted apply: another program, same maths
    np.testing.assert_allclose(got, references[(kind, denoise)], rtol=1e-5, atol=1e-5)
  else:
    np.testing.assert_array_equal(got, references[(kind, denoise)])
  if denoise == model.has_denoiser:
    np.testing.assert_array_equal(model.describe(patches), got)   # the headline


def test_denoising_changes_the_descriptors(models, patches):
  """The references above could not tell the paths apart if the denoiser did nothing."""
  for kind in ("pair", "joint"):
    with_den = models[kind].describe(patches)
    without = models[kind].describe(patches, denoise=False)
    assert np.abs(with_den - without).max() > 1e-3, kind


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
@pytest.mark.parametrize("form", ["uint8", "float32_255", "float64_255", "float32_1"])
def test_every_layout_dtype_and_range(models, patches, layout, form):
  model = models["descriptor"]
  expected = model.describe(patches)
  x = {"uint8": patches, "float32_255": patches.astype(np.float32),
       "float64_255": patches.astype(np.float64), "float32_1": patches / np.float32(255)}[form]
  x = {"nhw": x, "nhwc": x[..., None], "nchw": x[:, None]}[layout]
  value_range = None if form == "uint8" else (0, 1) if form.endswith("_1") else (0, 255)
  got = model.describe(x, value_range=value_range)
  if form == "float32_1":   # k / 255 * 255 is k only to a float32 rounding
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  else:
    np.testing.assert_array_equal(got, expected)
  if form == "uint8":
    np.testing.assert_array_equal(model.describe(x, value_range=(0, 255)), expected)


def test_value_range_is_used_not_guessed(models, patches):
  """The same floats under (0, 1) and (0, 255) are different pixels."""
  x = patches / np.float32(255)
  model = models["descriptor"]
  assert np.abs(model.describe(x, value_range=(0, 1))
                - model.describe(x, value_range=(0, 255))).max() > 1e-3


def test_65_px_patches_are_resized_as_the_reader_does(models):
  big = np.random.default_rng(1).integers(0, 256, (N, 65, 65), dtype=np.uint8)
  small = reader.resize_area(big)
  assert small.shape == (N, 32, 32)
  model = models["pair"]
  expected = model.describe(small)
  np.testing.assert_array_equal(model.describe(big), expected)
  np.testing.assert_array_equal(model.describe(big[:, None]), expected)
  np.testing.assert_array_equal(model.describe(big.astype(np.float32), value_range=(0, 255)),
                                expected)
  np.testing.assert_array_equal(model.denoise(big), model.denoise(small))


def test_denoise_keeps_layout_dtype_and_range(models, references, patches):
  model = models["pair"]
  expected = references[("denoised", "pair")]          # (N, 32, 32, 1) uint8
  np.testing.assert_array_equal(model.denoise(patches), expected[..., 0])
  np.testing.assert_array_equal(model.denoise(patches[..., None]), expected)
  np.testing.assert_array_equal(model.denoise(patches[:, None]), expected[..., 0][:, None])
  as_255 = model.denoise(patches.astype(np.float32), value_range=(0, 255))
  as_1 = model.denoise(patches[:, None] / 255.0, value_range=(0, 1))
  assert as_255.dtype == as_1.dtype == np.float32 and as_1.shape == (N, 1, 32, 32)
  assert 0 <= as_255.min() and as_255.max() <= 255 and 0 <= as_1.min() and as_1.max() <= 1
  # uint8 is the float output truncated; (0, 1) is it divided by 255.
  np.testing.assert_array_equal(as_255.astype(np.uint8), expected[..., 0])
  np.testing.assert_allclose(as_1[:, 0] * 255, as_255, atol=1e-3)


def test_joint_denoise_is_its_denoiser_half(models, references, patches):
  got = models["joint"].denoise(patches.astype(np.float32), value_range=(0, 255))
  np.testing.assert_allclose(got, np.clip(references[("raw", "joint")][..., 0], 0, 255),
                             rtol=1e-5, atol=1e-3)


def test_results_do_not_depend_on_the_call_size(models):
  x = np.random.default_rng(2).integers(0, 256, (40, 32, 32), dtype=np.uint8)
  model = models["descriptor"]
  np.testing.assert_array_equal(model.describe(x[:N]), model.describe(x)[:N])


def test_no_patches(models):
  assert models["pair"].describe(np.zeros((0, 32, 32), np.uint8)).shape == (0, 128)
  assert models["pair"].denoise(np.zeros((0, 1, 32, 32), np.uint8)).shape == (0, 1, 32, 32)
  empty = models["joint"].describe(np.zeros((0, 65, 65, 1), np.float32), value_range=(0, 1))
  assert empty.shape == (0, 128) and empty.dtype == np.float32


def _one_line(excinfo, *parts):
  message = str(excinfo.value)
  assert "\n" not in message, message
  for part in parts:
    assert part in message, (part, message)


@pytest.mark.parametrize("make,value_range,parts", [
    (lambda p: p.astype(np.float32), None, ["float32 with no value_range", "(0, 1)"]),
    (lambda p: p / 255.0 + 0.5, (0, 1), ["expected values in [0, 1]", "max 1.5"]),
    (lambda p: p.astype(np.float32) - 1, (0, 255), ["[0, 255]", "min -1"]),
    (lambda p: p, (0, 1), ["uint8 pixels are 0..255", "found (0, 1)"]),
    (lambda p: p, (0, 128), ["value_range: expected None, (0, 255) or (0, 1)", "(0, 128)"]),
    (lambda p: p, "0..255", ["value_range", "'0..255'"]),
    (lambda p: p.astype(np.int64), None, ["uint8", "found dtype int64"]),
    (lambda p: p.astype(bool), None, ["found dtype bool"]),
    (lambda p: p[:, :31], None, ["expected shape (N, 32, 32)", "found (6, 31, 32)"]),
    (lambda p: np.repeat(p[:, None], 3, 1), None, ["(N, 1, 32, 32)", "found (6, 3, 32, 32)"]),
    (lambda p: np.stack([p, p], -1), None, ["(N, 32, 32, 1)", "found (6, 32, 32, 2)"]),
    (lambda p: p[0], None, ["found (32, 32); one patch: add a leading axis"]),
    (lambda p: np.where(p == p.max(), np.nan, p.astype(np.float32)), (0, 255),
     ["expected finite pixels", "NaN or Inf in"]),
])
def test_bad_patches_fail_at_the_door(models, patches, make, value_range, parts):
  for method in (models["pair"].describe, models["pair"].denoise):
    with pytest.raises(errors.DataError) as excinfo:
      method(make(patches), value_range=value_range)
    _one_line(excinfo, "patches" if "value_range" not in parts[0] else "value_range", *parts)
  assert isinstance(excinfo.value, ValueError)


def test_a_descriptor_alone_cannot_denoise(models, patches):
  model = models["descriptor"]
  with pytest.raises(errors.ConfigError) as excinfo:
    model.describe(patches, denoise=True)
  _one_line(excinfo, "denoise=True: expected a model with a denoiser", "kind 'descriptor'")
  with pytest.raises(errors.ConfigError) as excinfo:
    model.denoise(patches)
  _one_line(excinfo, "denoise: expected a model with a denoiser")


def test_load_errors_name_the_path(workdir_paths, tmp_path, model_files):
  with pytest.raises(nhp_jax.ModelFileError) as excinfo:
    nhp_jax.load(tmp_path / "missing")
  _one_line(excinfo, str(tmp_path / "missing"), "not found", "run folder")
  (tmp_path / "empty_dir").mkdir()
  with pytest.raises(errors.CheckpointError) as excinfo:
    nhp_jax.load(tmp_path / "empty_dir")
  _one_line(excinfo, "empty_dir", "expected an exported model file", "holding nothing")
  with pytest.raises(errors.CheckpointError) as excinfo:
    nhp_jax.load(workdir_paths["pair"] / "denoiser")
  _one_line(excinfo, "expected a descriptor or joint training workdir", "found a denoiser")
  with pytest.raises(errors.ConfigError) as excinfo:
    nhp_jax.load(model_files["joint"], step=3)
  _one_line(excinfo, "expected step=None, found 3")
  with pytest.raises(errors.ConfigError):
    nhp_jax.load(model_files["joint"], batch_size=0)
  with pytest.raises(errors.CheckpointError) as excinfo:
    nhp_jax.load(workdir_paths["joint"], step=99)
  assert "no checkpoint 99" in str(excinfo.value)
