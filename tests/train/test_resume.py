"""The loop: a crashed run resumed from its checkpoint ends bitwise equal to an uninterrupted
one; NaN stops training and keeps the last good checkpoint."""

import json
import os
import re

import jax
import numpy as np
import pytest

from experiments.configs import denoiser, descriptor
from nhp_jax import errors
from nhp_jax.data import patchset, pipelines, training_data
from nhp_jax.train import checkpointing, loop
from tests import jax_cache


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """Runs of one config compile the same programs: reuse them through JAX's disk cache."""
  with jax_cache.disk_compilation_cache(tmp_path_factory.mktemp("jax_cache")):
    yield


@pytest.fixture
def small_data(monkeypatch, random_patchset):
  """The loop reads 3 random sequences for training and 1 for validation."""
  ps = random_patchset
  cut = int(ps.offsets[3])
  split = (patchset.take_labels(ps, np.arange(cut)),
           patchset.take_labels(ps, np.arange(cut, ps.num_labels)))
  monkeypatch.setattr(training_data, "hpatches_data", lambda config, data_dir: split)
  return split


def _descriptor_config():
  c = descriptor.get_config("smoke")
  c.training.batch_size = 8
  c.training.eval_batch_size = 16
  c.training.checkpoint_every = 3
  c.training.log_every = 2
  c.descriptor.examples_per_epoch = 40   # 5 steps per epoch, 10 in all
  c.descriptor.val_triplets = 20
  c.descriptor.schedule = "tough_positive:1,regular:1"
  return c


class _Crash(Exception):
  pass


def _crash_after(monkeypatch, num_batches):
  """The training stream dies after `num_batches` batches, as a killed process would."""
  real = pipelines.as_numpy

  def dying(ds):
    for i, batch in enumerate(real(ds)):
      if i == num_batches:
        raise _Crash(f"simulated crash after {num_batches} batches")
      yield batch
  monkeypatch.setattr(pipelines, "as_numpy", dying)
  return real


def _lines(workdir):
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    return f.read().splitlines()


def test_crash_and_resume_is_bitwise_identical(tmp_path, monkeypatch, small_data):
  config = _descriptor_config()
  straight = jax.device_get(loop.train_and_evaluate(config, str(tmp_path / "straight")))

  workdir = str(tmp_path / "crashed")
  # The loop keeps two batches in flight ahead of the step (sharding.prefetch):
  # a stream dying after 9 batches stops it after step 7.
  real = _crash_after(monkeypatch, 9)
  with pytest.raises(_Crash):
    loop.train_and_evaluate(config, workdir)
  assert checkpointing.Checkpointer(workdir).latest_step() == 6
  assert [json.loads(l)["epoch"] for l in _lines(workdir)] == [1]
  monkeypatch.setattr(pipelines, "as_numpy", real)
  resumed = jax.device_get(loop.train_and_evaluate(config, workdir))

  assert int(resumed.step) == int(straight.step) == 10
  for a, b in zip(jax.tree.leaves((straight.params, straight.batch_stats, straight.opt_state)),
                  jax.tree.leaves((resumed.params, resumed.batch_stats, resumed.opt_state))):
    np.testing.assert_array_equal(a, b)
  assert _lines(workdir) == _lines(str(tmp_path / "straight"))
  records = [json.loads(l) for l in _lines(workdir)]
  assert [r["step"] for r in records] == [5, 10]
  assert {"train_loss", "val_loss", "train_active_fraction", "val_d_neg", "lr"} <= set(records[0])
  assert os.path.getsize(os.path.join(workdir, loop.CURVES_FILE)) > 0
  ckpt = checkpointing.Checkpointer(workdir)
  assert ckpt.latest_step() == 10 and ckpt.best_step() in (5, 10)


def test_nan_stops_with_the_step_and_keeps_good_checkpoints(tmp_path, small_data):
  config = denoiser.get_config("smoke")
  config.data.max_train_labels = 0
  config.training.batch_size = 16
  config.training.checkpoint_every = 1
  config.optimizer.learning_rate = 1e30
  with pytest.raises(errors.NumericsError) as info:
    loop.train_and_evaluate(config, str(tmp_path))
  bad = int(re.search(r"is (nan|inf) at step (\d+)", str(info.value)).group(2))
  steps = checkpointing.Checkpointer(str(tmp_path)).all_steps()
  assert steps and max(steps) == bad - 1
  assert f"last good checkpoint is step {bad - 1}" in str(info.value)


def test_another_config_cannot_resume_the_workdir(tmp_path, small_data):
  config = denoiser.get_config("smoke")
  config.data.max_train_labels = 0
  config.training.batch_size = 16
  config.training.num_epochs = 1
  loop.train_and_evaluate(config, str(tmp_path))
  config.model.kwargs.input_scale = 0.5
  with pytest.raises(errors.CheckpointError, match=r"model\.kwargs\.input_scale: 1\.0 -> 0\.5"):
    loop.train_and_evaluate(config, str(tmp_path))
