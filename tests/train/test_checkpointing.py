"""Checkpoints: round trip, retention (latest N + best), restore guards, variables-only reads."""

import logging as std_logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from nhp_jax import errors
from nhp_jax.train import checkpointing
from nhp_jax.train import state as state_lib


def _config(features=8):
  return ml_collections.ConfigDict({
      "recipe": "denoiser", "dtype": "float32",
      "model": {"name": "dncnn", "kwargs": {"depth": 3, "features": features}},
      "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True,
                    "schedule": "constant", "warmup_steps": 0, "end_factor": 0.0, "frozen": ()},
      "training": {"log_every": 10, "num_epochs": 2},
  })


def _state(config, seed=0):
  model = state_lib.build_model(config)
  return jax.jit(lambda: state_lib.create_train_state(
      config, model, jax.random.PRNGKey(seed), jnp.zeros((1, 32, 32, 1)), 10))()


def _perturbed(state, k):
  """A state that differs in every leaf kind (params, stats, momentum, step)."""
  bump = lambda t: jax.tree.map(lambda x: x + k, t)  # noqa: E731
  return state.replace(step=state.step + k, params=bump(state.params),
                       batch_stats=bump(state.batch_stats), opt_state=bump(state.opt_state))


def _assert_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


@pytest.fixture(scope="module")
def state():
  return _state(_config())


def test_round_trip_is_exact(tmp_path, state):
  config = _config()
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2)
  saved = _perturbed(state, 3)
  ckpt.save(3, saved, config, {"epoch_steps": 3, "epoch_sums": {"loss": 1.25}})
  ckpt.close()
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2)
  restored, progress = ckpt.restore(jax.eval_shape(lambda: state), config)
  ckpt.close()
  _assert_equal(restored, saved)
  assert progress == {"epoch_steps": 3, "epoch_sums": {"loss": 1.25}}
  assert isinstance(restored, state_lib.TrainState)


def test_keeps_latest_and_best(tmp_path, state):
  config = _config()
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2)
  val = {1: 5.0, 3: 2.0, 5: 4.0, 7: 6.0}   # steps 2, 4, 6 are mid-epoch (no validation)
  for step in range(1, 8):
    metrics = {"val_loss": val[step]} if step in val else None
    ckpt.save(step, state, config, {}, metrics=metrics)
  ckpt.wait()
  assert ckpt.all_steps() == [3, 6, 7]
  assert ckpt.best_step() == 3
  ckpt.close()
  seen = []
  handler = std_logging.Handler(std_logging.DEBUG)
  handler.emit = seen.append
  absl_logger = std_logging.getLogger("absl")
  absl_logger.addHandler(handler)
  try:
    variables, saved_config, step = checkpointing.load_variables(str(tmp_path), "best")
  finally:
    absl_logger.removeHandler(handler)
  assert step == 3 and saved_config["model"]["kwargs"]["features"] == 8
  _assert_equal(variables["params"], state.params)
  assert checkpointing.load_variables(str(tmp_path), "latest")[2] == 7
  # A restore is quiet: none of orbax's read-only notices reach the log.
  assert not [r.getMessage() for r in seen if r.levelno >= std_logging.WARNING]


def test_restore_into_another_config_names_the_differences(tmp_path, state):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, _config(), {})
  ckpt.close()
  other = _config(features=16)
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  with pytest.raises(errors.CheckpointError) as info:
    ckpt.restore(jax.eval_shape(lambda: _state(other)), other)
  ckpt.close()
  message = str(info.value)
  assert "model.kwargs.features: 8 -> 16" in message
  assert "params/conv_0/kernel: checkpoint (3, 3, 1, 8), model (3, 3, 1, 16)" in message


def test_run_control_fields_may_change(tmp_path, state):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, _config(), {})
  changed = _config()
  changed.training.log_every = 3
  changed.training.num_epochs = 5
  restored, _ = ckpt.restore(jax.eval_shape(lambda: state), changed)
  ckpt.close()
  _assert_equal(restored.params, state.params)
  lr_changed = _config()
  lr_changed.optimizer.learning_rate = 0.5
  assert checkpointing.config_differences(_config().to_dict(), lr_changed) == [
      "optimizer.learning_rate: 0.1 -> 0.5"]


def test_fields_added_since_a_save_match_at_their_old_value():
  from experiments.configs import descriptor
  current = descriptor.get_config("smoke")
  saved = current.to_dict()
  for field in checkpointing.ADDED_FIELDS:   # a checkpoint written before these fields existed
    *sections, key = field.split(".")
    holder = saved
    for section in sections:
      holder = holder[section]
    del holder[key]
  assert checkpointing.config_differences(saved, current) == []
  current.descriptor.loss = "hardest_in_batch"
  assert checkpointing.config_differences(saved, current) == [
      "descriptor.loss: 'triplet' -> 'hardest_in_batch'"]


def test_missing_checkpoints_fail_clearly(tmp_path):
  with pytest.raises(errors.CheckpointError, match="no checkpoints"):
    checkpointing.load_variables(str(tmp_path / "nothing"))
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  with pytest.raises(errors.CheckpointError, match="steps present: none"):
    ckpt.saved_config()
  ckpt.close()


def test_unfinished_save_is_ignored(tmp_path, state):
  """A save killed mid-write leaves a temporary folder that is never restored."""
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, _config(), {})
  ckpt.close()
  (tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-123").mkdir()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  assert ckpt.latest_step() == 1
  ckpt.close()
