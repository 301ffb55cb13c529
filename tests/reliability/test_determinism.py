"""Determinism on CPU: the same config and seed give bitwise the same parameters and the same
benchmark numbers run after run; 1 and 4 devices agree within float tolerance over a whole
training run (one step of each workload: tests/train/test_sharding.py). GPU: docs/reliability.md."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.configs import denoiser
from nhp_jax.evaluation import matching, retrieval, task_files, types, verification
from nhp_jax import host_devices
from nhp_jax.train import loop

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _denoiser_config():
  config = denoiser.get_config("smoke")
  config.data.max_train_labels = 0
  config.training.batch_size = 16
  config.training.num_epochs = 1
  return config


@pytest.mark.usefixtures("compilation_cache")
def test_same_config_and_seed_train_bitwise_equal(tmp_path, small_data):
  config = _denoiser_config()
  first = jax.device_get(loop.train_and_evaluate(config, str(tmp_path / "a")))
  jax.clear_caches()   # the second run compiles afresh
  second = jax.device_get(loop.train_and_evaluate(config, str(tmp_path / "b")))
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
    np.testing.assert_array_equal(a, b)
  lines = [open(tmp_path / d / loop.METRICS_FILE).read() for d in ("a", "b")]
  assert lines[0] == lines[1]


def _scores(descs, verif, retr):
  return {"verification": verification.evaluate_verification(descs, verif),
          "matching": matching.evaluate_matching(descs),
          "retrieval": retrieval.evaluate_retrieval(descs, retr)}


def test_same_descriptors_score_identically():
  rng = np.random.default_rng(3)
  counts = [30, 25, 40]
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  values = rng.standard_normal((int(offsets[-1]), 16, 8)).astype(np.float32)
  values[:, 1:] = values[:, :1] + 0.7 * values[:, 1:]   # views of a label resemble its ref
  values[5, 3] = values[5, 0]                           # exact ties
  descs = types.DescriptorSet(("i_a", "v_b", "i_c"), offsets, values)
  verif = task_files.generate_verification(counts, 3000)
  patches = [rng.integers(0, 256, (n, 32, 32), dtype=np.uint8) for n in counts]
  retr = task_files.generate_retrieval(patches, n_queries=20, n_distractors=60)
  first = _scores(descs, verif, retr)
  jax.clear_caches()
  second = _scores(descs, verif, retr)
  assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
  assert 0 < first["verification"]["mAP"] < 1 and 0 < first["retrieval"]["mAP"] < 1


# Trains the small descriptor and denoiser configs on 1 and on 4 devices, one epoch each.
_SCRIPT = r"""
import json, sys
import jax, numpy as np
from nhp_jax.data import training_data
from nhp_jax.train import loop
from tests.reliability import test_determinism, train_child
from tests.train import test_resume

assert jax.device_count() == 4, jax.devices()
data = train_child._data()
training_data.hpatches_data = lambda config, data_dir: data
result = {}
for name, make in (("descriptor", test_resume._descriptor_config),
                   ("denoiser", test_determinism._denoiser_config)):
  out = {}
  for n in (1, 4):
    config = make()
    config.training.num_epochs = 1
    config.training.eval_batch_size = 16
    config.parallel.num_devices = n
    if name == "descriptor":
      # At the seed's lr 0.1 an L2-Net step moves the weights by about their own size, so a
      # rounding difference grows ~100x per step (1e-7 after step 1, 1e-2 after step 4):
      # summation order then decides the run. At 1e-3 the run shows float-level agreement.
      config.optimizer.learning_rate = 1e-3
    state = jax.device_get(loop.train_and_evaluate(config, f"{sys.argv[1]}/{name}{n}"))
    with open(f"{sys.argv[1]}/{name}{n}/{loop.METRICS_FILE}") as f:
      record = json.loads(f.readline())
    out[n] = (record["val_loss"], jax.tree.leaves((state.params, state.batch_stats)))
  # max |difference| per leaf over (1e-3 x its largest value + 1e-5): the absolute floor is
  # for conv biases followed by batch norm, whose gradients are pure rounding (~1e-9 values).
  excess = max(float(np.max(np.abs(a - b)) / (1e-3 * np.max(np.abs(b)) + 1e-5))
               for a, b in zip(out[4][1], out[1][1]))
  result[name] = {"val_loss": [out[1][0], out[4][0]], "excess": excess}
print("RESULT " + json.dumps(result))
"""


@pytest.mark.slow
def test_one_and_four_devices_train_alike(tmp_path):
  env = dict(os.environ, XLA_FLAGS=f"{host_devices.FLAG}=4", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
  result = json.loads(line[len("RESULT "):])
  for name, r in result.items():
    one, four = r["val_loss"]
    assert four == pytest.approx(one, rel=1e-4), name
    assert r["excess"] <= 1.0, (name, r)
