"""The JAX-only core runs where TensorFlow cannot be imported.

Models, losses, steps, checkpointing, inference, the evaluation kernels, the
evaluator (descriptor folders and checkpoints) and the step benchmarks need no
TensorFlow; only the tf.data pipelines, the TFDS builder and the training loop
use it. This test trains a tiny run folder here (TensorFlow available), then
runs those paths in subprocesses whose `sitecustomize.py` hides TensorFlow,
TFDS, TensorBoard, tf_keras and clu (whose metric writers need TensorFlow)
from every import finder, as on a machine without them (setup.py's
NHP_JAX_ONLY=1 install): `tests/jax_only_child.py` in-process, and the
`export_descriptors` and `evaluate --workdir` binaries and
`benchmarks.train_throughput` as a user runs them (their own subprocesses
inherit the blocker through PYTHONPATH).
"""

import json
import os
import subprocess
import sys

import pytest

from experiments.configs import denoiser, descriptor
from nhp_jax.train import loop

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# Installed before anything else runs in every Python process started with it
# on PYTHONPATH. A finder that raised for these names would also break
# `importlib.util.find_spec("tensorflow")` probes (etils, under orbax, asks),
# so every finder is wrapped to answer "no such module": `import tensorflow`
# then fails with ModuleNotFoundError and the probes get None, as without it.
BLOCKER = '''
import atexit
import os
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets", "tensorboard", "tf_keras", "clu")


class _Hidden:
  """Wraps an import finder: the blocked packages (and their submodules) are not found."""

  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, name, path=None, target=None):
    if name.partition(".")[0] in BLOCKED:
      return None
    find_spec = getattr(self._finder, "find_spec", None)
    return find_spec(name, path, target) if find_spec else None

  def __getattr__(self, name):
    return getattr(self._finder, name)


sys.meta_path[:] = [_Hidden(f) for f in sys.meta_path]


@atexit.register
def _check():
  loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
  if loaded:
    sys.stdout.flush()
    sys.stderr.write(f"JAX-ONLY VIOLATION: loaded {loaded}\\n")
    sys.stderr.flush()
    os._exit(70)
'''


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
  des.descriptor.triplets_per_epoch = 20   # 2 steps
  des.descriptor.val_triplets = 20
  loop.train_and_evaluate(des, str(root / "descriptor"))
  return root


@pytest.fixture
def blocked_env(tmp_path):
  """The environment of a process that cannot import TensorFlow, with private data and caches."""
  site = tmp_path / "site"
  site.mkdir()
  (site / "sitecustomize.py").write_text(BLOCKER)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), REPO]), JAX_PLATFORMS="cpu",
             NHP_DATA_HOME=str(tmp_path / "data"), NHP_CACHE_DIR=str(tmp_path / "cache"),
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             # Quicker compiles of the many small programs; nothing here checks numbers.
             XLA_FLAGS="--xla_backend_optimization_level=0")
  return env


def _run(env, *args, timeout=300):
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)
  assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stderr[-5000:]}"
  assert "JAX-ONLY VIOLATION" not in proc.stderr
  return proc


@pytest.mark.slow
def test_restore_score_export_and_benchmark_without_tensorflow(run_folder, blocked_env,
                                                               tmp_path):
  env = blocked_env
  # The blocker is on: probes find no TensorFlow and importing it fails.
  probe = subprocess.run(
      [sys.executable, "-c", "import importlib.util as u; "
       "assert u.find_spec('tensorflow') is None; import tensorflow"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
  assert "No module named 'tensorflow'" in probe.stderr, probe.stderr

  # The binaries, as a user runs them on a machine without TensorFlow; the
  # data (the embedded smoke dataset the run was trained on) is generated,
  # decoded and its task files built in these processes too.
  descs = tmp_path / "descs"
  _run(env, "-m", "experiments.export_descriptors", f"--workdir={run_folder}",
       f"--out_dir={descs}", "--input=denoised")
  assert all(len(os.listdir(descs / s)) == 16 for s in os.listdir(descs)) and os.listdir(descs)
  results = tmp_path / "workdir.json"
  _run(env, "-m", "experiments.evaluate", f"--workdir={run_folder}", "--n_pairs=100",
       f"--json_out={results}")
  doc = json.loads(results.read_text())
  assert set(doc["details"]["inputs"]) == {"noisy", "denoised", "clean"}
  assert all(0.0 <= doc[t] <= 1.0 for t in ("verification", "matching", "retrieval"))

  # Modules, models, every step kind, checkpoints, inference and both evaluator modes.
  out = tmp_path / "child"
  out.mkdir()
  _run(env, "-m", "tests.jax_only_child", str(run_folder), str(descs), str(out))
  assert (out / "child_done.json").is_file()

  # A step benchmark in a tiny configuration (its per-setting child inherits the blocker).
  bench = _run(env, "-m", "benchmarks.train_throughput", "--devices=1", "--batch=2",
               "--steps=1", "--warmup=0", "--infer_batch=16", "--infer_blocks=1",
               "--only=triplet,describe")
  record = json.loads(bench.stdout.strip().splitlines()[-1])
  assert record["runs"]["1"]["results"], record
