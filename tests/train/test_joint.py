"""Joint fine-tuning: the composite model, its step against a by-hand loss, the loop end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import denoiser, descriptor, hardnet, joint
from nhp_jax import errors
from nhp_jax.data import pipelines, training_data
from nhp_jax.evaluation import describe
from nhp_jax.train import checkpointing, config_validation, loop, recipes, steps
from nhp_jax.train import state as state_lib

from tests.train.test_hardnet import _hardnet_reference


def _joint_state(c):
  model = state_lib.build_model(c)
  return jax.jit(lambda: state_lib.create_train_state(
      c, model, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), 10))()


def _configs(loss="triplet"):
  den = denoiser.get_config("smoke")
  des = (hardnet if loss == "hardest_in_batch" else descriptor).get_config("smoke")
  des.model.kwargs.dropout_rate = 0.0   # deterministic, so the by-hand loss can match
  return den, des, joint.for_runs(den, des, "smoke")


def _batch(names, rng, n=6):
  noisy = {k: rng.integers(0, 256, (n, 32, 32, 1), dtype=np.uint8) for k in names}
  clean = {steps.CLEAN_PREFIX + k: rng.integers(0, 256, (n, 32, 32, 1), dtype=np.uint8)
           for k in names}
  return {**noisy, **clean}


def _by_hand(state, batch, names, passes):
  """Denoise all noisy patches in one train-mode pass, describe the clipped ones per pass."""
  v = state.variables
  x = np.concatenate([np.float32(batch[k]) for k in names])
  den, upd = state.apply_fn(v, x, train=True, mutable=["batch_stats"], method="denoise")
  clean = np.concatenate([np.float32(batch[steps.CLEAN_PREFIX + k]) for k in names])
  mae = float(np.mean(np.abs(np.float64(den) - clean)))
  stats = upd["batch_stats"] if upd else state.batch_stats
  parts = np.split(np.clip(np.asarray(den), 0, 255), passes)
  descs = []
  for part in parts:
    out, upd = state.apply_fn({"params": state.params, "batch_stats": stats}, part, train=True,
                              mutable=["batch_stats"], method="describe")
    stats = upd["batch_stats"]
    descs.append(np.asarray(out, np.float64))
  if passes < len(names):   # one pass over all
    descs = np.split(descs[0], len(names))
  return mae, descs


def test_joint_triplet_step_is_triplet_loss_plus_weighted_mae():
  _, _, c = _configs("triplet")
  state = _joint_state(c)
  batch = _batch(("anchor", "positive", "negative"), np.random.default_rng(0))
  step = jax.jit(steps.joint_train_step, static_argnames=("loss", "mae_weight", "bn_passes"))
  new, metrics = step(state, batch, loss="triplet", mae_weight=0.25, bn_passes=3)
  mae, (a, p, n) = _by_hand(state, batch, ("anchor", "positive", "negative"), 3)
  d = lambda x, y: np.mean((x - y) ** 2, axis=1)  # noqa: E731  (the seed's d: squared L2 / D)
  triplet = float(np.mean(np.maximum(0.0, d(a, p) - d(a, n) + 1.0)))
  assert float(metrics["mae"]) == pytest.approx(mae, rel=1e-5)
  assert float(metrics["descriptor_loss"]) == pytest.approx(triplet, rel=1e-4, abs=1e-6)
  assert float(metrics["loss"]) == pytest.approx(triplet + 0.25 * mae, rel=1e-4)
  # The gradient reaches both networks.
  for part in ("denoiser", "descriptor"):
    moved = jax.tree.map(lambda x, y: bool(np.any(np.asarray(x) != np.asarray(y))),
                         state.params[part], new.params[part])
    assert any(jax.tree.leaves(moved)), part


def test_joint_hardest_in_batch_step_with_one_pass():
  _, _, c = _configs("hardest_in_batch")
  state = _joint_state(c)
  batch = _batch(("anchor", "positive"), np.random.default_rng(1))
  step = jax.jit(steps.joint_train_step, static_argnames=("loss", "mae_weight", "bn_passes"))
  _, metrics = step(state, batch, loss="hardest_in_batch", mae_weight=0.1, bn_passes=1)
  mae, (a, p) = _by_hand(state, batch, ("anchor", "positive"), 1)
  expected = _hardnet_reference(a, p, 1.0)
  assert float(metrics["descriptor_loss"]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
  assert float(metrics["loss"]) == pytest.approx(expected + 0.1 * mae, rel=1e-4)


def test_joint_model_is_descriptor_of_clipped_denoiser():
  den_c, des_c, c = _configs()
  state = _joint_state(c)
  x = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 1)).astype(np.float32)
  den_model, des_model = state_lib.build_model(den_c), state_lib.build_model(des_c)
  v = state.variables
  part = lambda name: {col: v[col][name] for col in v if name in v[col]}  # noqa: E731
  y = np.clip(den_model.apply(part("denoiser"), x, train=False), 0, 255)
  expected = des_model.apply(part("descriptor"), y, train=False)
  np.testing.assert_allclose(state.apply_fn(v, x, train=False), expected, rtol=1e-5, atol=1e-5)


def test_pipelines_pair_clean_with_the_same_rows(random_patchset):
  ps = random_patchset
  flipped = ps.__class__(ps.sequences, ps.offsets, ps.clean, 255 - np.asarray(ps.clean))
  for ds in (pipelines.descriptor_dataset(flipped, batch_size=4, seed=0, triplets_per_epoch=8,
                                          source="noisy", with_clean=True, num_epochs=1),
             pipelines.anchor_positive_dataset(flipped, batch_size=4, seed=0, pairs_per_epoch=8,
                                               source="noisy", with_clean=True, num_epochs=1)):
    batches = list(pipelines.as_numpy(ds))
    assert len(batches) == 2
    for b in batches:
      names = [k for k in b if not k.startswith(steps.CLEAN_PREFIX)]
      assert sorted(b) == sorted(names + [steps.CLEAN_PREFIX + k for k in names])
      for k in names:
        np.testing.assert_array_equal(b[k], 255 - b[steps.CLEAN_PREFIX + k])


def test_config_validation_of_joint():
  _, _, c = _configs()
  with pytest.raises(errors.ConfigError, match="finetune.denoiser_workdir"):
    config_validation.validate(c)
  c.finetune.denoiser_workdir = c.finetune.descriptor_workdir = "somewhere"
  config_validation.validate(c)
  c.model.kwargs.denoiser.name = "l2net"
  with pytest.raises(errors.ConfigError, match="model.kwargs.denoiser.name"):
    config_validation.validate(c)


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
  rng = np.random.default_rng(3)
  from nhp_jax.data import patchset
  seqs = {name: (rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8),
                 rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8))
          for name, n in (("i_one", 9), ("v_two", 7), ("i_three", 8))}
  ps = patchset.from_arrays(seqs)
  cut = int(ps.offsets[2])
  split = (patchset.take_labels(ps, np.arange(cut)), patchset.take_labels(ps, np.arange(cut, 24)))
  root = tmp_path_factory.mktemp("joint")
  den, des, _ = _configs()
  mp = pytest.MonkeyPatch()
  mp.setattr(training_data, "hpatches_data", lambda config, data_dir: split)
  for c, name in ((den, "denoiser"), (des, "descriptor")):
    c.data.max_train_labels = 0
    c.training.num_epochs = 1
    c.training.batch_size = 8
    loop.train_and_evaluate(c, str(root / name))
  yield root, den, des, split, mp
  mp.undo()


def test_joint_finetuning_loads_trains_resumes_and_restores(trained_pair):
  root, den, des, split, _ = trained_pair
  c = joint.for_runs(den, des, "smoke")
  c.finetune.denoiser_workdir = str(root / "denoiser")
  c.finetune.descriptor_workdir = str(root / "descriptor")
  c.training.num_epochs = 1
  c.training.batch_size = 8
  config_validation.validate(c)   # as loop.train_and_evaluate does before building the recipe
  recipe = recipes.get_recipe(c, None)
  fresh = recipe.prepare(_joint_state(c))
  for part in ("denoiser", "descriptor"):   # the trained networks, unchanged
    variables, _, _ = checkpointing.load_variables(str(root / part), "best")
    for col, tree in variables.items():
      if tree:
        jax.tree.map(np.testing.assert_array_equal, fresh.variables[col][part], tree)
  workdir = str(root / "joint")
  state = loop.train_and_evaluate(c, workdir)
  assert int(state.step) == recipe.steps_per_epoch
  again = loop.train_and_evaluate(c, workdir)   # finished: resumes at the end, no new steps
  assert int(again.step) == int(state.step)
  restored = describe.restore(workdir, "latest")
  noisy = np.asarray(split[1].noisy[:2]).reshape(-1, 32, 32, 1).astype(np.float32)
  out = restored.module.apply(restored.variables, noisy, train=False)
  assert out.shape == (32, 128) and np.isfinite(np.asarray(out)).all()


def test_joint_refuses_a_run_of_another_model(trained_pair):
  root, den, des, _, _ = trained_pair
  c = joint.for_runs(den, des, "smoke")
  c.finetune.denoiser_workdir = str(root / "descriptor")   # swapped
  c.finetune.descriptor_workdir = str(root / "denoiser")
  config_validation.validate(c)
  with pytest.raises(errors.ConfigError, match="finetune.denoiser_workdir.*'l2net' run"):
    recipes.get_recipe(c, None).prepare(_joint_state(c))
