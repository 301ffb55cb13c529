"""The JAX-only core runs where TensorFlow cannot be imported.

Models, losses, steps, checkpointing, inference, the evaluation kernels, the
evaluator (descriptor folders and checkpoints) and the step benchmarks need no
TensorFlow; only the tf.data pipelines, the TFDS builder and the training loop
use it. This test trains a tiny run folder here (TensorFlow available), then
runs those paths in subprocesses that cannot import TensorFlow, TFDS,
TensorBoard, tf_keras or clu (`tests/tf_blocker.py`): the
`export_descriptors` binary as a user runs it (it also generates and decodes
the embedded data there) and `export_model`, then `tests/jax_only_child.py`: the
public API (`nhp_jax.load`, `describe`, `evaluate`), every step kind,
checkpoints, inference, and the evaluator on the run folder (what
`evaluate --workdir` calls) and on the exported descriptor folder. The step
benchmarks and `eval_speed` run without TensorFlow in
tests/test_accelerator_check.py.
"""

import os
import subprocess
import sys

import pytest

from experiments.configs import denoiser, descriptor
from nhp_jax.train import loop
from tests import tf_blocker

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
  """denoiser/ + descriptor/ of a few smoke steps on the embedded smoke dataset."""
  root = tmp_path_factory.mktemp("jax_only_run")
  den = denoiser.get_config("smoke")
  den.training.num_epochs = 1
  den.training.batch_size = 16
  den.data.max_train_labels = 4        # 64 pairs: 4 steps
  loop.train_and_evaluate(den, str(root / "denoiser"))
  des = descriptor.get_config("smoke")
  des.training.num_epochs = 1
  des.training.batch_size = 10
  des.descriptor.examples_per_epoch = 20   # 2 steps
  des.descriptor.val_triplets = 20
  loop.train_and_evaluate(des, str(root / "descriptor"))
  return root


@pytest.fixture
def blocked_env(tmp_path):
  """The environment of a process that cannot import TensorFlow, with private data and caches."""
  env = tf_blocker.blocked_env(
      tmp_path, JAX_PLATFORMS="cpu", NHP_DATA_HOME=str(tmp_path / "data"), NHP_CACHE_DIR=str(tmp_path / "cache"),
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             # Quicker compiles of the many small programs; nothing here checks numbers.
             XLA_FLAGS="--xla_backend_optimization_level=0")
  return env


def _run(env, *args, timeout=300):
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)
  assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stderr[-5000:]}"
  assert tf_blocker.VIOLATION not in proc.stderr
  return proc


@pytest.mark.slow
def test_restore_score_and_export_without_tensorflow(run_folder, blocked_env, tmp_path):
  env = blocked_env
  # The blocker is on: probes find no TensorFlow and importing it fails.
  probe = subprocess.run(
      [sys.executable, "-c", "import importlib.util as u; "
       "assert u.find_spec('tensorflow') is None; import tensorflow"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
  assert "No module named 'tensorflow'" in probe.stderr, probe.stderr

  # The export binary, as a user runs it on a machine without TensorFlow; the
  # data (the embedded smoke dataset the run was trained on) is generated,
  # decoded and its task files built in these processes too.
  descs = tmp_path / "descs"
  _run(env, "-m", "experiments.export_descriptors", f"--workdir={run_folder}",
       f"--out_dir={descs}", "--input=denoised")
  assert all(len(os.listdir(descs / s)) == 16 for s in os.listdir(descs)) and os.listdir(descs)
  # The model export binary, then modules, models, every step kind, checkpoints,
  # inference, both evaluator modes and the public API (nhp_jax.load / evaluate).
  model = tmp_path / "model.nhp"
  _run(env, "-m", "experiments.export_model", f"--workdir={run_folder}", f"--out={model}")
  out = tmp_path / "child"
  out.mkdir()
  _run(env, "-m", "tests.jax_only_child", str(run_folder), str(descs), str(out), str(model))
  assert (out / "child_done.json").is_file()
