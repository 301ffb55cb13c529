"""Config validation: the shipped configs pass; each kind of mistake fails naming its field."""

import importlib
import json
import os

import pytest

from experiments.configs import pipelines
from nhp_jax import errors
from nhp_jax.train import config_validation as cv

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "configs")
CONFIGS = sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                 if f.endswith(".py") and f not in ("__init__.py", "common.py", "pipelines.py"))
# Pipeline configs (the main job's) hold one experiment config per stage.
PIPELINE_CONFIGS = {m.rsplit(".", 1)[1] for m in pipelines.PIPELINES.values()}


def _load_all(name, arg=""):
  """The experiment configs of a config file: itself, or each stage of a pipeline config."""
  config = importlib.import_module(f"experiments.configs.{name}").get_config(arg)
  configs = ([config[s] for s in pipelines.STAGES if s in config] if name in PIPELINE_CONFIGS
             else [config])
  for c in configs:   # the runs a config starts from, as a user would pass them
    if c.model.name == "dncnn_transfer":
      c.transfer.pretrained_workdir = "workdirs/dncnn_awgn"
    if c.recipe == "joint":
      c.finetune.denoiser_workdir, c.finetune.descriptor_workdir = "workdirs/den", "workdirs/des"
  return configs


def _load(name, arg=""):
  return _load_all(name, arg)[0]


@pytest.mark.parametrize("arg", ["", "smoke"])
@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_are_valid_json_without_callables(name, arg):
  for config in _load_all(name, arg):
    cv.validate(config, device_count=2)
    assert json.loads(json.dumps(config.to_dict()))["recipe"] == config.recipe


def test_every_task_has_a_config():
  assert {c.recipe for n in CONFIGS for c in _load_all(n)} == set(cv.SCHEMAS)
  assert {"fast", "dncnn", "pipeline_baseline"} <= set(CONFIGS)


def test_config_docstrings_give_the_command():
  for name in CONFIGS:
    doc = importlib.import_module(f"experiments.configs.{name}").__doc__
    assert f"experiments/configs/{name}.py" in doc and "python -m experiments." in doc


def test_unknown_argument_fails():
  with pytest.raises(ValueError, match="smoke"):
    _load("denoiser", "tiny")


def _fails(config, match, **kwargs):
  with pytest.raises(errors.ConfigError, match=match):
    cv.validate(config, **kwargs)


def test_unknown_and_missing_fields():
  config = _load("denoiser")
  with config.unlocked():
    config.training.bacth_size = 32
  _fails(config, r"training\.bacth_size")
  config = _load("denoiser")
  del config.optimizer["momentum"]
  _fails(config, r"config\.optimizer\.momentum: missing")
  config = _load("denoiser")
  config.recipe = "segmenter"
  _fails(config, r"config\.recipe: expected one of denoiser, descriptor, joint, dncnn_pretrain")


@pytest.mark.parametrize("field, value, match", [
    ("optimizer.learning_rate", -1e-3, r"optimizer\.learning_rate: expected a number in \(0"),
    ("optimizer.momentum", 1.0, r"optimizer\.momentum"),
    ("training.batch_size", 0, r"training\.batch_size: expected an int in \[1"),
    ("training.num_epochs", "10", r"training\.num_epochs: expected an int, found '10'"),
    ("seed", True, r"seed: expected an int"),
    ("dtype", "float16", r"dtype: expected one of float32, bfloat16"),
    ("optimizer.name", "rmsprop", r"optimizer\.name: expected one of sgd, adam"),
    ("data.validation", "train", r"data\.validation"),
    ("model.name", "l2net", r"model\.name: expected for recipe 'denoiser'"),
])
def test_bad_values_name_their_field(field, value, match):
  config = _load("denoiser").to_dict()
  section, _, key = field.rpartition(".")
  (config[section] if section else config)[key] = value
  _fails(config, match)


def test_inconsistent_combinations():
  config = _load("denoiser")
  config.optimizer.momentum = 0.0
  _fails(config, r"optimizer\.nesterov: expected False when optimizer\.momentum is 0")
  config = _load("denoiser")
  config.model.kwargs.input_scale = 1 / 255
  config.model.kwargs["depth"] = 3
  _fails(config, r"unknown attributes \['depth'\]")
  config = _load("descriptor")
  config.input.source = "denoised"
  _fails(config, r"input\.denoiser_workdir")
  config = _load("descriptor")
  config.descriptor.schedule = "tough_positive:ten"
  _fails(config, r"descriptor\.schedule")
  config = _load("descriptor")
  config.descriptor.schedule = "hardest"
  _fails(config, r"unknown triplet strategy 'hardest'")
  config = _load("dncnn_transfer")
  config.transfer.pretrained_workdir = ""
  _fails(config, r"transfer\.pretrained_workdir")
  config = _load("dncnn_pretrain")
  config.awgn.val_photos = ("astronaut",)
  _fails(config, r"awgn\.val_photos: expected photos disjoint")
  config.awgn.val_photos = ("lena",)
  _fails(config, r"awgn\.val_photos: expected names of bundled photos")


def test_descriptor_loss_and_bn_passes():
  """The only checks of these fields (the tasks and the steps take them as given)."""
  config = _load("descriptor")
  config.descriptor.loss = "contrastive"
  _fails(config, r"descriptor\.loss: expected one of triplet, hardest_in_batch, found 'contr")
  config = _load("descriptor")
  config.descriptor.bn_passes = 2
  _fails(config, r"descriptor\.bn_passes: expected one of \(1, 3\) for loss 'triplet', found 2")
  config.descriptor.bn_passes = 0
  _fails(config, r"descriptor\.bn_passes: expected an int in \[1, 3\], found 0")
  config = _load("joint")
  config.descriptor.loss = "hardest_in_batch"
  config.descriptor.bn_passes = 3
  _fails(config, r"descriptor\.bn_passes: expected one of \(1, 2\) for loss 'hardest_in_batch'")
  config.descriptor.bn_passes = 2
  cv.validate(config)


def test_device_count_checks():
  config = _load("denoiser")
  config.parallel.num_devices = 3
  _fails(config, r"training\.batch_size: expected a multiple of parallel\.num_devices=3")
  config.parallel.num_devices = 4
  _fails(config, r"parallel\.num_devices: expected at most the 2 available", device_count=2)


def test_parse_schedule():
  assert cv.parse_schedule("regular") == "regular"
  assert cv.parse_schedule("curriculum") == (
      ("tough_positive", 10), ("regular", 35), ("far_negative", 5))
  assert cv.parse_schedule("tough_positive:2, far_negative:1") == (
      ("tough_positive", 2), ("far_negative", 1))
