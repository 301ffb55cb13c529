"""NaN/Inf is caught where it appears: in inference inputs (naming the patch), in descriptors
(naming sequence, image and patch), in the validation loss (naming the step), and in scored
descriptors. Training losses: tests/train/test_resume.py; descriptor files:
tests/evaluation/test_descriptor_io.py."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax import errors, inference
from nhp_jax.evaluation import matching, types
from nhp_jax.train import loop
from tests.train import test_resume as resume_tests


class _LogNet(nn.Module):
  """4-d 'descriptor' log(pixel): -inf exactly where a patch's first pixels are 0."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return jnp.log(x.reshape(x.shape[0], -1)[:, :4])


class _Identity(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    del train
    return x


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_inputs_name_the_patch(bad):
  x = np.full((10, 32, 32, 1), 7.0, np.float32)
  x[6, 3, 4, 0] = bad
  describe = inference.make_describe_fn(_LogNet(), {}, batch_size=4)
  with pytest.raises(errors.NumericsError, match=r"inference input: 1 of 10 patches hold NaN or "
                                                 r"Inf pixels, the first is patch 6"):
    describe(x)
  denoise = inference.make_denoise_fn(_Identity(), {}, batch_size=4)
  with pytest.raises(errors.NumericsError, match="the first is patch 6"):
    denoise(x[..., 0])
  x[6, 3, 4, 0] = 255.0
  assert np.isfinite(describe(x)).all()


def test_non_finite_descriptors_name_sequence_image_and_patch(random_patchset):
  ps = random_patchset
  ps.clean[...] = np.maximum(ps.clean, 1)
  ps.clean[ps.offsets[2] + 3, 9, 0, 0] = 0     # sequence 2, patch 3, image h4
  with pytest.raises(errors.NumericsError, match=r"1 of 432 descriptors \(clean input\) contain "
                                                 r"NaN or Inf, the first of sequence 'i_three', "
                                                 r"image h4, patch 3"):
    inference.describe_patchset(ps, (_LogNet(), {}), input="clean", batch_size=64)


@pytest.mark.usefixtures("compilation_cache")
def test_non_finite_validation_loss_names_the_step(tmp_path, monkeypatch, small_data):
  real = loop.evaluate

  def poisoned(*args, **kwargs):
    return {k: np.nan for k in real(*args, **kwargs)}
  monkeypatch.setattr(loop, "evaluate", poisoned)
  with pytest.raises(errors.NumericsError, match=r"val_loss is nan at step 5; training stopped. "
                                                 r"The last good checkpoint is step 3"):
    loop.train_and_evaluate(resume_tests._descriptor_config(), str(tmp_path))


def test_non_finite_descriptors_are_refused_by_the_scorers():
  values = np.ones((4, 16, 8), np.float32)
  values[2, 5, 1] = np.nan
  descs = types.DescriptorSet(("i_a",), np.array([0, 4]), values)
  with pytest.raises(errors.DescriptorError, match="expected finite values, found 1 NaN/Inf"):
    matching.evaluate_matching(descs, "l2")
