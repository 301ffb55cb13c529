"""SIGKILL at random points and inside checkpoint saves, then the same command again: the run
ends with the parameters of an uninterrupted one, and no partial checkpoint is ever visible."""

import os
import subprocess
import sys

import numpy as np
import pytest

from nhp_jax.train import checkpointing

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOTAL_STEPS = 10  # tests/train/test_resume.py's small descriptor config; saves at 3, 5, 6, 9, 10


def _run(workdir, out, env, kill=None):
  cmd = [sys.executable, "-m", "tests.reliability.train_child", str(workdir), str(out)]
  proc = subprocess.run(cmd + ([kill] if kill else []), cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  return proc


def _step_folders(workdir):
  folder = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []


def _assert_only_whole_checkpoints(workdir):
  """Every step folder orbax would list is complete and matches its digest."""
  steps = _step_folders(workdir)
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    assert ckpt.latest_step() == (steps[-1] if steps else None)
  finally:
    ckpt.close()
  for step in steps:
    checkpointing.load_variables(workdir, step)
  assert not os.path.exists(os.path.join(workdir, checkpointing.CORRUPT_DIR))


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_equals_uninterrupted(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jc"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  env.pop("XLA_FLAGS", None)
  straight = _run(tmp_path / "straight", tmp_path / "straight.npz", env)
  assert straight.returncode == 0, straight.stderr[-3000:]

  workdir = str(tmp_path / "killed")
  rng = np.random.default_rng(8)
  # Batches count from each process's start; the runs start at steps 0, 0, 3 and 5.
  kills = [f"batch:{rng.integers(1, 4)}",   # before or at the first checkpoint
           "commit:5",                       # arrays written, folder not yet renamed
           "write:6",                        # arrays still being written
           f"batch:{rng.integers(2, 4)}"]    # between saves, after the restart at 6
  for kill in kills:
    proc = _run(workdir, tmp_path / "never.npz", env, kill)
    assert proc.returncode == -9, (kill, proc.returncode, proc.stderr[-3000:])
    _assert_only_whole_checkpoints(workdir)
  assert 0 < _step_folders(workdir)[-1] < TOTAL_STEPS
  assert not os.path.exists(tmp_path / "never.npz")

  final = _run(workdir, tmp_path / "resumed.npz", env)
  assert final.returncode == 0, final.stderr[-3000:]
  with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b:
    assert int(a["step"]) == int(b["step"]) == TOTAL_STEPS
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  leftovers = [d for d in os.listdir(os.path.join(workdir, checkpointing.CHECKPOINT_DIR))
               if not d.isdigit()]
  assert leftovers == []
  _assert_only_whole_checkpoints(workdir)
