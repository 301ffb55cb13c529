"""Bad configs fail in validate(), before any work, naming the field (cases beyond
tests/train/test_config_validation.py)."""

import os

import pytest

from experiments.configs import denoiser, descriptor
from nhp_jax import errors
from nhp_jax.train import config_validation as cv
from nhp_jax.train import loop


def _set(config: dict, field: str, value):
  *sections, key = field.split(".")
  for s in sections:
    config = config[s]
  config[key] = value


@pytest.mark.parametrize("field, value, match", [
    ("optimizer.learning_rate", float("inf"), r"optimizer\.learning_rate: expected a number in "
                                              r"\(0\.0, inf\], found inf"),
    ("optimizer.learning_rate", float("nan"), r"optimizer\.learning_rate: .*found nan"),
    ("optimizer.learning_rate", 0.0, r"optimizer\.learning_rate: expected a number in \(0"),
    ("optimizer.learning_rate", "1e-3", r"optimizer\.learning_rate: expected a number, "
                                        r"found '1e-3'"),
    ("optimizer.schedule", "step", r"optimizer\.schedule: expected one of constant, cosine, "
                                   r"linear, found 'step'"),
    ("optimizer.warmup_steps", -1, r"optimizer\.warmup_steps: expected an int in \[0"),
    ("optimizer.end_factor", 1.5, r"optimizer\.end_factor: expected a number in \[0\.0, 1\.0\]"),
    ("training.batch_size", -50, r"training\.batch_size: expected an int in \[1"),
    ("training.batch_size", 50.0, r"training\.batch_size: expected an int, found 50\.0"),
    ("training.eval_batch_size", 0, r"training\.eval_batch_size: expected an int in \[1"),
    ("training.keep_checkpoints", 0, r"training\.keep_checkpoints: expected an int in \[1"),
    ("training.log_every", True, r"training\.log_every: expected an int, found True"),
    ("parallel.num_devices", -2, r"parallel\.num_devices: expected an int in \[0"),
    ("parallel.distributed", "yes", r"parallel\.distributed: expected True or False"),
    ("data.embedded_size", "huge", r"data\.embedded_size: expected one of smoke, small, "),
    ("data.split", "../a", r"data\.split: expected a split name"),
    ("data.heldout_fraction", 1.0, r"data\.heldout_fraction: expected a number in \(0\.0, 1\.0\)"),
    ("data.max_train_labels", -1, r"data\.max_train_labels: expected an int in \[0"),
    ("model.kwargs", "unet", r"model\.kwargs: expected a dict, found 'unet'"),
    ("training", 5, r"config\.training: expected a section \(ConfigDict\), found 5"),
    ("optimizer.frozen", "encoder", r"optimizer\.frozen: expected a tuple of strings"),
])
def test_bad_denoiser_fields(field, value, match):
  config = denoiser.get_config().to_dict()
  _set(config, field, value)
  with pytest.raises(errors.ConfigError, match=match):
    cv.validate(config)


@pytest.mark.parametrize("field, value, match", [
    ("descriptor.margin", -1.0, r"descriptor\.margin: expected a number in \(0"),
    ("descriptor.examples_per_epoch", 0, r"descriptor\.examples_per_epoch: expected an int"),
    ("descriptor.schedule", "regular:5,hardest:2", r"unknown triplet strategy 'hardest'"),
    ("descriptor.schedule", "", r"descriptor\.schedule|unknown triplet strategy"),
    ("input.source", "raw", r"input\.source: expected one of noisy, denoised, clean"),
    ("input.denoiser_checkpoint", "newest", r"input\.denoiser_checkpoint: expected \"best\""),
])
def test_bad_descriptor_fields(field, value, match):
  config = descriptor.get_config().to_dict()
  _set(config, field, value)
  with pytest.raises(errors.ConfigError, match=match):
    cv.validate(config)


def test_unknown_nested_field_is_named_with_its_section():
  config = descriptor.get_config().to_dict()
  config["optimizer"]["lr"] = 0.1
  with pytest.raises(errors.ConfigError, match=r"config\.optimizer: unknown field\(s\) "
                                               r"optimizer\.lr; known: "):
    cv.validate(config)


def test_batch_not_divisible_by_requested_devices():
  config = denoiser.get_config()
  config.parallel.num_devices = 4   # batch 50
  with pytest.raises(errors.ConfigError, match=r"training\.batch_size: expected a multiple of "
                                               r"parallel\.num_devices=4, found 50"):
    cv.validate(config, device_count=8)
  config.training.batch_size = 48
  config.training.eval_batch_size = 250
  with pytest.raises(errors.ConfigError, match=r"training\.eval_batch_size: expected a multiple"):
    cv.validate(config, device_count=8)


def test_training_fails_before_any_work(tmp_path):
  """No workdir, data or compilation: the error comes from validate() alone."""
  config = descriptor.get_config("smoke")
  config.optimizer.learning_rate = -0.1
  workdir = tmp_path / "run"
  with pytest.raises(errors.ConfigError, match=r"optimizer\.learning_rate"):
    loop.train_and_evaluate(config, str(workdir))
  assert not os.path.exists(workdir)
