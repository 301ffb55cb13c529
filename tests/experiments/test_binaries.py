"""The training binaries end to end on the embedded smoke dataset, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """A private embedded-data home and JAX compilation cache; XLA_FLAGS left to the binary."""
  base = tmp_path_factory.mktemp("binaries")
  env = dict(os.environ, NHP_DATA_HOME=str(base / "data"), NHP_CACHE_DIR=str(base / "cache"),
             JAX_COMPILATION_CACHE_DIR=str(base / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return env


def _command(binary, config, workdir, *overrides):
  return [sys.executable, "-m", f"experiments.{binary}",
          f"--config=experiments/configs/{config}.py:smoke", f"--workdir={workdir}",
          *overrides]


def _run(cmd, env):
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc.stderr


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _checkpoint_steps(workdir):
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []


@pytest.mark.slow
def test_train_denoiser_smoke(tmp_path, env):
  workdir = str(tmp_path / "denoiser")
  log = _run(_command("train_denoiser", "denoiser", workdir), env)
  for text in ("steps/s", "patches/s", "ETA", "psnr", "epoch 2:", "mesh {'data': "):
    assert text in log
  records = _records(workdir)
  assert [r["epoch"] for r in records] == [1, 2]
  assert records[-1]["train_loss"] < records[0]["train_loss"]
  assert {"val_loss", "val_psnr", "train_grad_norm", "lr"} <= set(records[0])
  files = os.listdir(workdir)
  assert any(f.startswith("events.out.tfevents") for f in files)
  assert "learning_curves.png" in files
  assert _checkpoint_steps(workdir)[-1] == records[-1]["step"]


@pytest.mark.slow
def test_train_descriptor_killed_midway_resumes(tmp_path, env):
  workdir = str(tmp_path / "descriptor")
  # 4 epochs of 6 small steps: the kill lands well before the end.
  cmd = _command("train_descriptor", "descriptor", workdir, "--config.training.num_epochs=4",
                 "--config.training.batch_size=10", "--config.descriptor.examples_per_epoch=60",
                 "--config.training.eval_batch_size=50")
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 300
    while not _checkpoint_steps(workdir) and proc.poll() is None and time.time() < deadline:
      time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.kill()
    proc.wait()
  killed_at = _checkpoint_steps(workdir)[-1]
  assert killed_at < 24

  log = _run(cmd, env)
  assert f"at step {killed_at}" in log and "resumed from" in log
  records = _records(workdir)
  assert [r["epoch"] for r in records] == [1, 2, 3, 4]
  assert [r["step"] for r in records] == [6, 12, 18, 24]
  assert {"val_loss", "train_active_fraction", "train_d_pos", "val_d_neg"} <= set(records[0])
  assert _checkpoint_steps(workdir)[-1] == 24
  assert "learning_curves.png" in os.listdir(workdir)
