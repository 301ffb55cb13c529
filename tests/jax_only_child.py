"""The JAX-only core's run paths, in a process that cannot import TensorFlow.

  python -m tests.jax_only_child RUN_FOLDER DESCRIPTORS_DIR OUT_DIR MODEL_FILE

run by tests/test_jax_only.py with its `sitecustomize.py` blocker on
PYTHONPATH (so `import tensorflow` fails as on a machine without it). It
imports the JAX-only modules, builds every model, runs one train step of each
kind and one eval step of each kind on random arrays, saves and restores a
checkpoint, restores RUN_FOLDER (denoiser/ + descriptor/, trained by the test)
and describes patches with it, scores RUN_FOLDER through the evaluator and
DESCRIPTORS_DIR (an `export_descriptors` folder of the embedded dataset's test
split) through the descriptor-folder mode, runs the public API (`nhp_jax.load`
of RUN_FOLDER and of MODEL_FILE, an `export_model` file of it; describe,
denoise, `nhp_jax.evaluate`), then checks that no TensorFlow module was loaded.
"""

import importlib
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

# The modules that must import without TensorFlow (the tf.data pipelines, the
# TFDS builder, the task adapters over them and the loop are the exceptions).
MODULES = (
    "nhp_jax", "nhp_jax.api", "nhp_jax.model_file",
    "nhp_jax.atomic", "nhp_jax.errors", "nhp_jax.inference", "nhp_jax.losses",
    "nhp_jax.resources", "nhp_jax.models", "nhp_jax.models.denoise_describe",
    "nhp_jax.models.dncnn", "nhp_jax.models.fast_conv", "nhp_jax.models.l2net",
    "nhp_jax.models.unet", "nhp_jax.train.checkpointing", "nhp_jax.train.config_validation",
    "nhp_jax.host_devices", "nhp_jax.train.sharding", "nhp_jax.train.state",
    "nhp_jax.train.steps", "nhp_jax.train.grafting", "nhp_jax.platform", "nhp_jax.data.augment", "nhp_jax.data.cache",
    "nhp_jax.data.embedded", "nhp_jax.data.generator", "nhp_jax.data.layout",
    "nhp_jax.data.noise", "nhp_jax.data.patchset", "nhp_jax.data.reader",
    "nhp_jax.data.splits", "nhp_jax.data.training_data", "nhp_jax.data.triplets", "nhp_jax.evaluation.descriptor_io",
    "nhp_jax.evaluation.describe", "nhp_jax.evaluation.kernels",
    "nhp_jax.evaluation.matching", "nhp_jax.evaluation.report",
    "nhp_jax.evaluation.retrieval", "nhp_jax.evaluation.runner", "nhp_jax.evaluation.score",
    "nhp_jax.evaluation.task_files", "nhp_jax.evaluation.types",
    "nhp_jax.evaluation.verification", "nhp_jax.evaluation.baselines", "benchmarks.train_throughput",
    "benchmarks.conv_roofline", "benchmarks.eval_speed", "benchmarks.common")
BLOCKED = ("tensorflow", "tensorflow_datasets", "tensorboard", "tf_keras", "clu")


def _check_blocker() -> None:
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return
  raise AssertionError("the TensorFlow blocker is not active in this process")


def _state(config, total_steps=4):
  from nhp_jax.train import state as state_lib  # pylint: disable=g-import-not-at-top
  model = state_lib.build_model(config)
  return jax.jit(lambda: state_lib.create_train_state(
      config, model, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), total_steps))()


def _pixels(rng, names, b):
  return {k: rng.integers(0, 256, (b, 32, 32, 1), dtype=np.uint8) for k in names}


def _finite(metrics, what):
  for k, v in metrics.items():
    assert np.isfinite(np.asarray(v)).all(), f"{what}: {k} = {v}"


def models_and_steps(out_dir: str) -> None:
  """Every model built; one train and one eval step of each kind; a checkpoint round trip."""
  # pylint: disable=g-import-not-at-top
  from experiments.configs import denoiser, descriptor, joint
  from nhp_jax.models import MODELS, get_model
  from nhp_jax.train import checkpointing, config_validation, steps

  for name in MODELS:
    if name != "denoise_describe":   # built from its two sections below
      shapes = jax.eval_shape(get_model(name).init, jax.random.PRNGKey(0),
                              jnp.zeros((1, 32, 32, 1)))
      assert shapes["params"], name

  rng = np.random.default_rng(0)
  den_c, des_c = denoiser.get_config("smoke"), descriptor.get_config("smoke")
  joint_c = joint.for_runs(den_c, des_c, "smoke")
  for c in (den_c, des_c):
    config_validation.validate(c)
  triplet, pair = ("anchor", "positive", "negative"), ("anchor", "positive")
  mask = {"mask": np.ones((4,), np.float32)}

  den = _state(den_c)
  den, metrics = jax.jit(steps.denoiser_train_step)(den, _pixels(rng, ("noisy", "clean"), 2))
  _finite(metrics, "denoiser_train_step")
  _finite(jax.jit(steps.denoiser_eval_step)(den, {**_pixels(rng, ("noisy", "clean"), 4),
                                                  **mask}), "denoiser_eval_step")

  des = _state(des_c)
  des, metrics = jax.jit(steps.descriptor_train_step)(des, _pixels(rng, triplet, 2))
  _finite(metrics, "descriptor_train_step")
  _finite(jax.jit(steps.descriptor_eval_step)(des, {**_pixels(rng, triplet, 4), **mask}),
          "descriptor_eval_step")

  hard, metrics = jax.jit(steps.hardest_in_batch_train_step)(des, _pixels(rng, pair, 3))
  _finite(metrics, "hardest_in_batch_train_step")
  _finite(jax.jit(steps.hardest_in_batch_eval_step)(hard, {**_pixels(rng, triplet, 4), **mask}),
          "hardest_in_batch_eval_step")

  both = _state(joint_c)
  batch = {**_pixels(rng, triplet, 2),
           **_pixels(rng, tuple(steps.CLEAN_PREFIX + k for k in triplet), 2)}
  both, metrics = jax.jit(steps.joint_train_step)(both, batch)
  _finite(metrics, "joint_train_step")
  assert int(den.step) == int(des.step) == int(both.step) == 1 and int(hard.step) == 2

  # Checkpoints written and read back without TensorFlow.
  workdir = os.path.join(out_dir, "checkpoint_round_trip")
  checkpointer = checkpointing.Checkpointer(workdir, async_save=False)
  checkpointer.save(1, des, des_c, {"epoch": 0}, metrics={checkpointing.BEST_METRIC: 1.0})
  checkpointer.close()
  variables, config, step = checkpointing.load_variables(workdir, "best")
  assert int(step) == 1 and config["recipe"] == "descriptor"
  jax.tree.map(np.testing.assert_array_equal, variables["params"], jax.device_get(des.params))


def inference_from_run_folder(run_folder: str) -> None:
  """The trained run folder restored; patches denoised and described."""
  # pylint: disable=g-import-not-at-top
  from nhp_jax import inference
  from nhp_jax.data import patchset
  from nhp_jax.evaluation import describe

  den_dir, des_dir = describe.resolve_workdirs(run_folder)
  descriptor = describe.restore(des_dir)
  denoiser = describe.restore(den_dir, "latest")
  rng = np.random.default_rng(1)
  patches = patchset.from_arrays({
      name: (rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8),
             rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8))
      for name, n in (("i_a", 3), ("v_b", 2))})
  for kind in ("noisy", "denoised"):
    descs = inference.describe_patchset(patches, descriptor.pair, denoiser.pair, input=kind,
                                        batch_size=32)
    assert descs.shape == (5, 16, 128) and np.isfinite(descs).all(), kind
  denoised = inference.make_denoise_fn(*denoiser.pair, batch_size=32, as_uint8=True)(
      patches.noisy[:2].reshape(-1, 32, 32))
  assert denoised.shape == (32, 32, 32, 1) and denoised.dtype == np.uint8


def scoring(run_folder: str, descriptors_dir: str, out_dir: str) -> None:
  """The evaluator on the run folder (checkpoint mode) and on an exported folder."""
  # pylint: disable=g-import-not-at-top
  from nhp_jax.data import embedded
  from nhp_jax.evaluation import runner, types

  doc = runner.evaluate_workdir(
      run_folder, inputs=("denoised",), n_pairs=100,
      json_out=os.path.join(out_dir, "workdir.json"))
  assert doc["details"]["headline_input"] == "denoised"
  # The exported folder is of the embedded dataset the descriptor was trained on.
  data_dir = embedded.embedded_data_dir(size="smoke", seed=0)
  doc = runner.run(descriptors_dir=descriptors_dir, data_dir=data_dir, n_pairs=100,
                   json_out=os.path.join(out_dir, "descriptors.json"))
  for task in types.BENCHMARKS:
    assert 0.0 <= doc[task] <= 1.0, (task, doc[task])


def public_api(run_folder: str, model_path: str) -> None:
  """nhp_jax.load of the run folder and of its exported file: the same outputs; evaluate."""
  # pylint: disable=g-import-not-at-top
  import nhp_jax
  from nhp_jax.data import cache, embedded

  from_run, from_file = nhp_jax.load(run_folder), nhp_jax.load(model_path)
  assert from_run.kind == from_file.kind == "pair" and from_run.digest == from_file.digest
  data_dir = embedded.embedded_data_dir(size="smoke", seed=0)
  test = cache.load_split(data_dir, split="a", subset="test")
  patches = test.noisy.reshape(-1, 32, 32)
  descs = from_file.describe(patches)
  np.testing.assert_array_equal(descs, from_run.describe(patches))
  np.testing.assert_array_equal(from_file.denoise(patches[:8]), from_run.denoise(patches[:8]))
  doc = nhp_jax.evaluate(descs, test, data_dir=data_dir, n_pairs=100)
  for task in ("verification", "matching", "retrieval"):
    assert 0.0 <= doc[task] <= 1.0, (task, doc[task])


def main(run_folder: str, descriptors_dir: str, out_dir: str, model_path: str) -> None:
  _check_blocker()
  for name in MODULES:
    importlib.import_module(name)
  models_and_steps(out_dir)
  inference_from_run_folder(run_folder)
  scoring(run_folder, descriptors_dir, out_dir)
  public_api(run_folder, model_path)
  loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
  assert "tensorflow" not in sys.modules and not loaded, loaded
  with open(os.path.join(out_dir, "child_done.json"), "w") as f:
    json.dump({"modules": len(sys.modules)}, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
