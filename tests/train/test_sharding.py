"""Data parallelism: device-count logic here; 8 vs 1 devices in a subprocess (the XLA flag
must be set before JAX starts, and the rest of the suite runs on one device)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from nhp_jax import errors
from nhp_jax import host_devices
from nhp_jax.train import sharding

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.parametrize("batch, requested, available, expected", [
    (50, 0, 8, 5), (48, 0, 8, 8), (50, 0, 2, 2), (7, 0, 2, 1), (50, 2, 8, 2), (50, 0, 1, 1)])
def test_data_parallel_size(batch, requested, available, expected):
  """The largest device count dividing the batch (every backend)."""
  assert sharding.data_parallel_size(batch, requested, available) == expected


@pytest.mark.parametrize("batch, cores, expected", [
    (50, 2, 2), (48, 2, 2), (256, 2, 8), (128, 2, 4), (512, 2, 8), (7, 2, 7), (3, 2, 3),
    (64, 8, 8), (20, 4, 4), (96, 4, 4), (256, 16, 16), (1, 2, 1)])
def test_planned_split_keeps_per_device_batches_small(batch, cores, expected):
  """The fewest devices that use every core and give at most CPU_MAX_PER_DEVICE each."""
  n = host_devices.planned_split(batch, cores)
  assert n == expected and batch % n == 0


@pytest.mark.parametrize("batch, available, processes, backend, expected", [
    (50, 8, 1, "tpu", 2), (256, 8, 1, "tpu", 8), (1024, 8, 1, "gpu", 8), (50, 1, 1, "tpu", 1),
    (64, 8, 1, "tpu", 4), (8, 8, 1, "gpu", 1), (50, 8, 2, "cpu", 2), (48, 8, 2, "cpu", 8),
    (48, 6, 3, "cpu", 6), (16, 4, 2, "tpu", 2), (96, 8, 2, "tpu", 6)])
def test_data_parallel_size_by_backend_and_processes(batch, available, processes, backend,
                                                     expected):
  """Accelerators keep >= ACCELERATOR_MIN_PER_DEVICE examples per device (else the fewest
  devices); every count is a multiple of the process count."""
  n = sharding.data_parallel_size(batch, 0, available, processes=processes, backend=backend)
  assert n == expected and batch % n == 0 and n % processes == 0
  if backend != "cpu" and n > processes:
    assert batch // n >= sharding.ACCELERATOR_MIN_PER_DEVICE


def test_data_parallel_size_refuses_what_the_processes_cannot_share():
  with pytest.raises(errors.ConfigError, match="50 is not divisible by the 4 processes"):
    sharding.data_parallel_size(50, 0, 8, processes=4, backend="cpu")
  with pytest.raises(errors.ConfigError, match="expected a multiple of the 2 processes, found 5"):
    sharding.data_parallel_size(50, 5, 8, processes=2, backend="cpu")


def test_mesh_is_built_from_explicit_devices():
  mesh = sharding.make_mesh(1)
  assert mesh.axis_names == (sharding.AXIS,) and list(mesh.devices.flat) == jax.devices()[:1]
  with pytest.raises(errors.ConfigError, match="need 2 on each process; process 0 has 1"):
    sharding.make_mesh(2)


def test_prefetch_keeps_order_and_every_batch():
  mesh = sharding.make_mesh(1)
  handed = []

  def batches():
    for i in range(5):
      handed.append(i)
      yield {"x": np.full((2, 3), i, np.uint8)}
  out = sharding.prefetch(batches(), mesh, size=2)
  first = next(out)
  assert handed == [0, 1, 2]          # two batches ahead of the one the step gets
  assert isinstance(first["x"], jax.Array) and int(first["x"][0, 0]) == 0
  assert [int(b["x"][0, 0]) for b in out] == [1, 2, 3, 4]


def test_process_rows_of_one_process_are_the_batch():
  batch = {"a": np.arange(8).reshape(4, 2)}
  np.testing.assert_array_equal(sharding.process_rows(batch)["a"], batch["a"])


def test_data_parallel_size_rejects_bad_requests():
  with pytest.raises(errors.ConfigError, match="not divisible by parallel.num_devices=3"):
    sharding.data_parallel_size(50, 3, 8)
  with pytest.raises(errors.ConfigError, match="16 requested, 8 available"):
    sharding.data_parallel_size(64, 16, 8)


def test_host_devices_respects_the_user():
  env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  count = host_devices.configure_from_env(env, batch_sizes=[50])
  assert count == host_devices.plan_device_count([50])
  assert env["XLA_FLAGS"].startswith(f"--xla_dump_to=/tmp/x {host_devices.FLAG}={count}")
  env = {"XLA_FLAGS": f"{host_devices.FLAG}=1"}
  assert host_devices.configure_from_env(env, batch_sizes=[256]) is None
  assert env["XLA_FLAGS"] == f"{host_devices.FLAG}=1"


@pytest.mark.parametrize("batch_sizes, cores, expected", [
    ([50], 2, 2), ([256], 2, 8), ([50, 256], 2, 8), ([64, 50], 2, 2), ([16], 2, 2),
    ([1024], 2, 8), ([7], 2, 7), ([], 2, 2), (None, 4, 4), ([1], 2, 2), ([50], 1, 2),
    ([96], 4, 4), ([256], 16, 16)])
def test_plan_device_count(batch_sizes, cores, expected):
  """Exactly the devices the largest CPU split needs, at least one per core, at most 8."""
  assert host_devices.plan_device_count(batch_sizes, cores) == expected


@pytest.mark.parametrize("batch", [16, 48, 50, 64, 100, 256, 500])
def test_planned_devices_are_the_split(batch):
  """A process planned for one batch leaves no device idle when that batch is split."""
  n = host_devices.plan_device_count([batch], 2)
  assert sharding.data_parallel_size(batch, 0, n) == n


@pytest.mark.parametrize("batch_sizes, used", [
    ([64, 50, 256, 64], [8, 5, 8, 8]), ([50, 256], [5, 8]), ([50, 64], [2, 2])])
def test_mixed_batches_use_the_devices_there_are(batch_sizes, used):
  """A process planned for several batches splits each over as many devices as divide it."""
  n = host_devices.plan_device_count(batch_sizes, 2)
  assert [sharding.data_parallel_size(b, 0, n) for b in batch_sizes] == used


def test_host_devices_from_env_and_batches():
  cores = host_devices.usable_cores()
  env = {}
  assert host_devices.configure_from_env(env) == cores
  env = {}
  assert host_devices.configure_from_env(env, batch_sizes=[256]) == (
      host_devices.plan_device_count([256]))
  env = {host_devices.ENV: "1"}
  assert host_devices.configure_from_env(env, batch_sizes=[256]) == 1
  assert env["XLA_FLAGS"] == f"{host_devices.FLAG}=1"   # one device: no collectives, no timeout
  env = {host_devices.ENV: "3"}
  assert host_devices.configure_from_env(env) == 3
  assert env["XLA_FLAGS"] == (f"{host_devices.FLAG}=3 {host_devices.TIMEOUT_FLAG}="
                              f"{host_devices.COLLECTIVE_TIMEOUT_S}")
  env = {host_devices.ENV: "3", "XLA_FLAGS": f"{host_devices.TIMEOUT_FLAG}=5"}
  host_devices.configure_from_env(env)
  assert env["XLA_FLAGS"] == f"{host_devices.TIMEOUT_FLAG}=5 {host_devices.FLAG}=3"
  env = {host_devices.ENV: "4", "XLA_FLAGS": f"{host_devices.FLAG}=2"}
  assert host_devices.configure_from_env(env) is None
  assert env["XLA_FLAGS"] == f"{host_devices.FLAG}=2"
  with pytest.raises(ValueError, match="NHP_CPU_DEVICES"):
    host_devices.configure_from_env({host_devices.ENV: "0"})


def test_configuring_after_the_backend_started_is_an_error():
  import jax
  jax.devices()   # this test process's backend is running
  assert host_devices.backend_started()
  with pytest.raises(RuntimeError, match="before JAX's backend starts"):
    host_devices.configure_from_env()


# What the training binaries do: import their modules, parse the config, then
# plan the host devices; nothing imported may have started JAX's backend.
_BINARY_ORDER = r"""
from experiments import main, training_binary
from experiments.configs import descriptor, hardnet
from nhp_jax.evaluation import describe, runner
from nhp_jax.workflows import seeds, studies
from nhp_jax import host_devices
from nhp_jax.train import loop
assert not host_devices.backend_started()
batches = [descriptor.get_config().training.batch_size, hardnet.get_config().training.batch_size]
planned = host_devices.configure_from_env(batch_sizes=batches)
import jax
print("DEVICES", planned, jax.device_count())
"""


def test_binaries_plan_host_devices_before_the_backend_starts():
  env = {k: v for k, v in os.environ.items() if k not in (host_devices.ENV, "XLA_FLAGS")}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-c", _BINARY_ORDER], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("DEVICES "))
  planned, count = map(int, line.split()[1:])
  assert planned == count == host_devices.plan_device_count([50, 256])


def test_xla_accepts_the_timeout_flag():
  """An unknown XLA flag aborts at backend start: check this jaxlib knows the timeout flag."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  host_devices.set_device_count(2, env)
  out = subprocess.run([sys.executable, "-c", "import jax; print(jax.device_count())"],
                       env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "2"


# Runs one train step and one eval step of each workload on meshes of 8 and 1 devices.
_SCRIPT = r"""
import functools, json
import jax, jax.numpy as jnp, ml_collections, numpy as np
from nhp_jax.train import sharding, steps
from nhp_jax.train import state as state_lib

assert jax.device_count() == 8, jax.devices()
opt = {"name": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "nesterov": True,
       "schedule": "constant", "warmup_steps": 0, "end_factor": 0.0, "frozen": ()}
rng = np.random.default_rng(0)
B = 16
workloads = {
    "unet_shallow": ({}, steps.denoiser_train_step, steps.denoiser_eval_step, ("noisy", "clean")),
    # Dropout on: its masks must not depend on how the batch is split.
    "l2net": ({"dropout_rate": 0.3}, steps.descriptor_train_step, steps.descriptor_eval_step,
              ("anchor", "positive", "negative")),
}
out = {}
for name, (kwargs, train, evaluate, keys) in workloads.items():
  config = ml_collections.ConfigDict({"dtype": "float32", "optimizer": opt,
                                      "model": {"name": name, "kwargs": kwargs}})
  model = state_lib.build_model(config)
  init = jax.jit(lambda: state_lib.create_train_state(
      config, model, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), 10))()
  batch = {k: rng.integers(0, 256, (B, 32, 32, 1), dtype=np.uint8) for k in keys}
  eval_batch = dict(batch, mask=np.ones(B, np.float32))
  results = {}
  for n in (8, 1):
    mesh = sharding.make_mesh(n)
    global_batch = sharding.shard_batch(batch, mesh)
    shards = global_batch[keys[0]].addressable_shards
    assert len(shards) == n and all(s.data.shape[0] == B // n for s in shards)
    state = sharding.replicate(jax.device_get(init), mesh)
    state, metrics = sharding.jit_train_step(train, mesh)(state, global_batch)
    sums = sharding.jit_eval_step(evaluate, mesh)(state, sharding.shard_batch(eval_batch, mesh))
    results[n] = jax.device_get((state.params, state.batch_stats, metrics, sums))
  (p8, s8, m8, e8), (p1, s1, m1, e1) = results[8], results[1]
  # Tolerance relative to each leaf's largest value (summation order differs
  # across devices), with an absolute floor for biases before batch norm,
  # whose ~1e-11 gradients are pure rounding.
  params_close = all(np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)) + 1e-7
                     for a, b in zip(jax.tree.leaves((p8, s8)), jax.tree.leaves((p1, s1))))
  out[name] = {"loss": [float(m8["loss"]), float(m1["loss"])],
               "eval_loss": [float(e8["loss"]), float(e1["loss"])],
               "grad_norm": [float(m8["grad_norm"]), float(m1["grad_norm"])],
               "params_close": params_close}
print("RESULT " + json.dumps(out))
"""


def test_eight_devices_match_one():
  env = dict(os.environ, XLA_FLAGS=f"{host_devices.FLAG}=8", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
  results = json.loads(line[len("RESULT "):])
  for name, r in results.items():
    for key in ("loss", "eval_loss", "grad_norm"):
      eight, one = r[key]
      assert eight == pytest.approx(one, rel=1e-5), (name, key)
    assert r["params_close"], name


def test_keep_freed_memory_applies_on_linux():
  assert host_devices.keep_freed_memory() == sys.platform.startswith("linux")


# Many small all-reduce steps on 5 of 8 host devices (the split of batch 50),
# each called as the training loop calls it.
_BACK_TO_BACK = r"""
import jax, jax.numpy as jnp, numpy as np
from nhp_jax.train import sharding

mesh = sharding.make_mesh(5)
state = sharding.replicate(jnp.ones((64, 64)), mesh)

def train(w, batch):
  g = jax.grad(lambda w: jnp.mean(jnp.tanh(batch["x"] @ w) ** 2))(w)
  return w - 1e-3 * g, {"g": jnp.mean(g)}

step = sharding.jit_train_step(train, mesh)
evaluate = sharding.jit_eval_step(lambda w, batch: {"s": jnp.sum(batch["x"] @ w)}, mesh)
rng = np.random.default_rng(0)
for i in range(3000):
  batch = sharding.shard_batch({"x": rng.random((50, 64), np.float32)}, mesh)
  state, metrics = step(state, batch)
  assert state.is_ready() and metrics["g"].is_ready(), i
  if i % 100 == 0:
    assert evaluate(state, batch)["s"].is_ready(), i
print("DONE")
"""


def test_back_to_back_collective_steps_on_host_devices_return_computed():
  """Each CPU multi-device step returns computed (`one_at_a_time`): with two in flight
  XLA:CPU could hang in the gradient all-reduce (1 run in 5 of this loop without it)."""
  env = dict(os.environ, XLA_FLAGS=f"{host_devices.FLAG}=8", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _BACK_TO_BACK], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().endswith("DONE")


def test_one_at_a_time_leaves_single_devices_alone():
  fn = lambda x: x  # noqa: E731
  assert sharding.one_at_a_time(fn, sharding.make_mesh(1)) is fn
