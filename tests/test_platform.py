"""Backend set-up: what is expected before JAX starts, the convolution forms, and that both
forms train to the same parameters (checkpoints move between CPU and accelerators)."""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from nhp_jax import platform
from nhp_jax.models import fast_conv
from nhp_jax.train import state as state_lib
from nhp_jax.train import steps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.mark.parametrize("value, expected", [
    ("cpu", "cpu"), ("tpu", "accelerator"), ("cuda", "accelerator"), ("cuda,cpu", "accelerator"),
    ("cpu,cuda", "cpu"), (" cpu ", "cpu")])
def test_jax_platforms_decides_the_expected_backend(value, expected):
  assert platform.expected_backend({"JAX_PLATFORMS": value}) == expected


def test_no_accelerator_plugin_here_means_cpu():
  """This machine has no CUDA/ROCm/TPU plugin: the CPU set-up applies."""
  assert platform.expected_backend({}) == "cpu"


def test_conv_forms_follow_the_backend_and_the_override(monkeypatch):
  monkeypatch.delenv(platform.CONV_FORMS_ENV, raising=False)
  assert platform.cpu_forms() == (jax.default_backend() == "cpu")
  with platform.conv_forms("plain"):
    assert not platform.cpu_forms()
    with platform.conv_forms("cpu"):
      assert platform.cpu_forms()
    assert not platform.cpu_forms()
  monkeypatch.setenv(platform.CONV_FORMS_ENV, "plain")
  assert not platform.cpu_forms()
  monkeypatch.setenv(platform.CONV_FORMS_ENV, "fast")
  with pytest.raises(ValueError, match="NHP_CONV_FORMS: expected 'auto', 'cpu' or 'plain', "
                                       "found 'fast'"):
    platform.cpu_forms()
  with pytest.raises(ValueError, match="found 'gpu'"):
    with platform.conv_forms("gpu"):
      pass


def _jaxpr_primitives(fn, *args):
  return {str(e.primitive) for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns}


def test_plain_forms_are_plain_convolutions():
  """Plain forms: every conv of the 1-channel and 1-output layers is XLA's convolution."""
  x = jnp.zeros((2, 32, 32, 1))
  for features in (32, 1):
    layer = fast_conv.Conv(features, (3, 3))
    variables = layer.init(jax.random.PRNGKey(0), x)
    with platform.conv_forms("plain"):
      plain = _jaxpr_primitives(functools.partial(layer.apply, variables), x)
    with platform.conv_forms("cpu"):
      cpu = _jaxpr_primitives(functools.partial(layer.apply, variables), x)
    assert "conv_general_dilated" in plain and "dot_general" not in plain
    assert "conv_general_dilated" not in cpu and "dot_general" in cpu


def _config(model, kwargs):
  return ml_collections.ConfigDict({
      "dtype": "float32", "model": {"name": model, "kwargs": kwargs},
      # SGD: Adam would blow the rounding-level gradients of the biases before
      # batch norm (~1e-11) up to full steps, differently for each form.
      "optimizer": {"name": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "nesterov": True,
                    "schedule": "constant", "warmup_steps": 0, "end_factor": 0.0,
                    "frozen": ()}})


def _train(forms, config, step, batches):
  """A fresh state trained on `batches` with the model's convolutions in `forms`."""
  with platform.conv_forms(forms):
    model = state_lib.build_model(config)
    state = jax.jit(lambda: state_lib.create_train_state(
        config, model, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), 10))()
    jitted = jax.jit(step)   # traced afresh under these forms
    for batch in batches:
      state, _ = jitted(state, batch)
  return jax.device_get((state.params, state.batch_stats))


@pytest.mark.parametrize("model, kwargs, kind", [
    ("l2net", {"dropout_rate": 0.0}, "triplets"),
    ("unet_shallow", {}, "pairs")])
def test_both_forms_train_to_the_same_parameters(model, kwargs, kind):
  rng = np.random.default_rng(0)
  if kind == "triplets":
    step = functools.partial(steps.descriptor_train_step, margin=1.0, bn_passes=3)
    batches = [{k: rng.integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
                for k in ("anchor", "positive", "negative")} for _ in range(3)]
  else:
    step = steps.denoiser_train_step
    clean = [rng.integers(0, 256, (4, 32, 32, 1), dtype=np.uint8) for _ in range(3)]
    batches = [{"noisy": np.clip(c + rng.integers(-20, 21, c.shape), 0, 255).astype(np.uint8),
                "clean": c} for c in clean]
  config = _config(model, kwargs)
  cpu = _train("cpu", config, step, batches)
  plain = _train("plain", config, step, batches)
  assert jax.tree.structure(cpu) == jax.tree.structure(plain)
  initial = _train("cpu", config, step, [])
  for a, b, a0 in zip(jax.tree.leaves(cpu), jax.tree.leaves(plain), jax.tree.leaves(initial)):
    assert a.shape == b.shape and a.dtype == b.dtype
    # Tolerance relative to each leaf's largest value (the forms sum in other orders).
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)) + 1e-7
  # ...and training moved the parameters far beyond that.
  moved = [np.max(np.abs(a - a0)) / np.max(np.abs(a0)) for a, a0 in
           zip(jax.tree.leaves(cpu[0]), jax.tree.leaves(initial[0])) if np.max(np.abs(a0)) > 0]
  assert max(moved) > 1e-3


def _run_fresh(code: str, jax_platforms: str) -> None:
  """Runs `code` in a fresh Python with no host-device settings; it must print "ok"."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "NHP_CPU_DEVICES")}
  env.update(PYTHONPATH=ROOT, JAX_PLATFORMS=jax_platforms)
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_setup_is_called_once_and_leaves_imports_alone():
  """Importing a binary changes nothing; setup plans the host devices and is idempotent."""
  _run_fresh(
      "import os, sys\n"
      "import experiments.main, experiments.training_binary\n"
      "assert 'XLA_FLAGS' not in os.environ, os.environ.get('XLA_FLAGS')\n"
      "from nhp_jax import platform\n"
      "assert platform.setup(batch_sizes=[256]) == 'cpu'\n"
      "flags = os.environ['XLA_FLAGS']\n"
      "assert '--xla_force_host_platform_device_count=8' in flags, flags\n"
      "assert platform.setup(batch_sizes=[50]) == 'cpu' and os.environ['XLA_FLAGS'] == flags\n"
      "import jax\n"
      "assert jax.device_count() == 8 and platform.cpu_forms()\n"
      "print('ok')\n", "cpu")


def test_accelerator_setup_plans_no_host_devices():
  """With an accelerator expected, setup leaves XLA_FLAGS and glibc alone."""
  _run_fresh(
      "import os\n"
      "from nhp_jax import platform\n"
      "assert platform.setup(batch_sizes=[256]) == 'accelerator'\n"
      "assert 'XLA_FLAGS' not in os.environ\n"
      "print('ok')\n", "tpu")
