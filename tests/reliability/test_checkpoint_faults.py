"""Damaged checkpoints: a corrupt newest one is reported and the previous one used; the
temporary folders of killed saves are cleaned; a resumed run still ends where an
uninterrupted one does."""

import glob
import logging
import os

import flax
import jax
import numpy as np
import pytest

from nhp_jax import errors
from nhp_jax.train import checkpointing, loop
from tests.train import test_checkpointing as ckpt_tests
from tests.train import test_resume as resume_tests


def _files(step_dir: str, pattern: str) -> list[str]:
  return sorted(glob.glob(os.path.join(step_dir, pattern), recursive=True))


def _largest_data_file(step_dir):
  files = [f for f in _files(step_dir, "state/**/d/*") if os.path.isfile(f)]
  return max(files, key=os.path.getsize)


def _truncate_data(step_dir):
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _delete_data(step_dir):
  os.remove(_largest_data_file(step_dir))


def _flip_bytes(step_dir):
  """Bytes changed in place, size kept: only the saved digest can tell."""
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    for i in range(len(data) // 3, len(data) // 3 + 16):
      data[i] ^= 0x5A
    f.seek(0)
    f.write(data)


def _delete_state_metadata(step_dir):
  os.remove(os.path.join(step_dir, "state", "_METADATA"))


def _delete_state_manifest(step_dir):
  os.remove(os.path.join(step_dir, "state", "manifest.ocdbt"))


def _truncate_config(step_dir):
  path = os.path.join(step_dir, "config", "metadata")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _delete_progress(step_dir):
  os.remove(os.path.join(step_dir, "progress", "metadata"))


def _empty_state_folder(step_dir):
  for path in reversed(_files(step_dir, "state/**/*")):
    (os.remove if os.path.isfile(path) else os.rmdir)(path)


CORRUPTIONS = [_truncate_data, _delete_data, _flip_bytes, _delete_state_metadata,
               _delete_state_manifest, _truncate_config, _delete_progress, _empty_state_folder]


@pytest.fixture(scope="module")
def state():
  return ckpt_tests._state(ckpt_tests._config())


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__[1:] for c in CORRUPTIONS])
def test_corrupt_newest_checkpoint_is_reported_and_skipped(tmp_path, state, corrupt, caplog):
  config = ckpt_tests._config()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, config, {"epoch_steps": 1})
  ckpt.save(2, ckpt_tests._perturbed(state, 1), config, {"epoch_steps": 2})
  ckpt.close()
  step_dir = os.path.join(str(tmp_path), checkpointing.CHECKPOINT_DIR, "2")
  corrupt(step_dir)

  ckpt = checkpointing.Checkpointer(str(tmp_path))
  with caplog.at_level(logging.WARNING):
    assert ckpt.latest_step() == 1
  warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
  assert f"checkpoint {step_dir} is corrupt" in warning
  assert "using the previous checkpoint" in warning
  assert not os.path.exists(step_dir)
  moved = os.listdir(os.path.join(str(tmp_path), checkpointing.CORRUPT_DIR))
  assert len(moved) == 1 and moved[0].startswith("2-")
  restored, progress = ckpt.restore(jax.eval_shape(lambda: state), config)
  ckpt_tests._assert_equal(restored, state)
  assert progress == {"epoch_steps": 1}
  # The step can be saved again by the resumed run.
  ckpt.save(2, ckpt_tests._perturbed(state, 2), config, {})
  ckpt.close()
  assert checkpointing.Checkpointer(str(tmp_path)).all_steps() == [1, 2]


def test_only_corrupt_checkpoints_left_means_a_fresh_start(tmp_path, state, caplog):
  config = ckpt_tests._config()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, config, {})
  ckpt.close()
  _truncate_data(os.path.join(str(tmp_path), checkpointing.CHECKPOINT_DIR, "1"))
  with caplog.at_level(logging.WARNING):
    assert checkpointing.Checkpointer(str(tmp_path)).latest_step() is None
  assert "is corrupt" in caplog.text


def test_reading_a_corrupt_checkpoint_for_inference_names_it(tmp_path, state):
  config = ckpt_tests._config()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, config, {})
  ckpt.close()
  step_dir = os.path.join(str(tmp_path), checkpointing.CHECKPOINT_DIR, "1")
  _truncate_data(step_dir)
  with pytest.raises(errors.CheckpointError, match=f"{step_dir}: cannot read checkpoint"):
    checkpointing.load_variables(str(tmp_path), 1)


def test_temporary_folders_of_killed_saves_are_removed(tmp_path, state):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, ckpt_tests._config(), {})
  ckpt.close()
  folder = tmp_path / checkpointing.CHECKPOINT_DIR
  (folder / "2.orbax-checkpoint-tmp-1234").mkdir()
  (folder / "2.orbax-checkpoint-tmp-1234" / "state").mkdir()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  assert ckpt.latest_step() == 1
  ckpt.close()
  assert sorted(os.listdir(folder)) == ["1"]


def test_digest_ignores_nesting_and_sees_every_value(state):
  host = jax.device_get(state)
  as_dict = flax.serialization.to_state_dict(host)
  assert set(as_dict) == {"step", "params", "batch_stats", "opt_state", "rng"}
  assert checkpointing.state_digest(host) == checkpointing.state_digest(as_dict)
  leaf = jax.tree.leaves(host.params)[0]
  changed = np.array(leaf)
  changed.flat[0] = np.nextafter(changed.flat[0], np.float32(np.inf))
  other = jax.tree.map(lambda x: changed if x is leaf else x, host.params)
  assert checkpointing.state_digest(other) != checkpointing.state_digest(host.params)


@pytest.mark.usefixtures("compilation_cache")
def test_run_resumed_past_a_corrupt_newest_checkpoint_ends_bitwise_equal(
    tmp_path, small_data, caplog):
  config = resume_tests._descriptor_config()
  workdir = str(tmp_path / "damaged")
  straight = jax.device_get(loop.train_and_evaluate(config, workdir))
  folder = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  assert checkpointing.Checkpointer(workdir).all_steps()[-1] == 10
  _truncate_data(os.path.join(folder, "10"))
  with caplog.at_level(logging.WARNING):
    resumed = jax.device_get(loop.train_and_evaluate(config, workdir))
  assert f"checkpoint {os.path.join(folder, '10')} is corrupt" in caplog.text
  assert os.listdir(os.path.join(workdir, checkpointing.CORRUPT_DIR))[0].startswith("10-")
  for a, b in zip(jax.tree.leaves((straight.params, straight.batch_stats, straight.opt_state)),
                  jax.tree.leaves((resumed.params, resumed.batch_stats, resumed.opt_state))):
    np.testing.assert_array_equal(a, b)
  assert checkpointing.Checkpointer(workdir).latest_step() == 10


def test_other_processes_skip_the_corrupt_step_without_moving_it(tmp_path, state, monkeypatch):
  config = ckpt_tests._config()
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, state, config, {})
  ckpt.save(2, ckpt_tests._perturbed(state, 1), config, {})
  ckpt.close()
  step_dir = os.path.join(str(tmp_path), checkpointing.CHECKPOINT_DIR, "2")
  _truncate_data(step_dir)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  assert ckpt.latest_step() == 1
  assert os.path.isdir(step_dir)   # process 0 moves it
  restored, _ = ckpt.restore(jax.eval_shape(lambda: state), config, "latest")
  ckpt.close()
  ckpt_tests._assert_equal(restored, state)
