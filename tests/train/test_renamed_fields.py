"""Configs saved under the field names before #21 are read in today's names."""

import json

import pytest

from experiments.configs import hardnet, joint
from nhp_jax.train import checkpointing, renamed_fields


def _old(config: dict) -> dict:
  """A config dict as the code before the renames wrote it (spelled out, not via downgrade)."""
  old = json.loads(json.dumps(config))
  old["task"] = old.pop("recipe")
  if "descriptor" in old:
    old["descriptor"]["triplets_per_epoch"] = old["descriptor"].pop("examples_per_epoch")
  if "finetune" in old:
    old["joint"] = old.pop("finetune")
  return old


@pytest.mark.parametrize("make", [hardnet.get_config, joint.get_config])
def test_upgrade_reads_the_old_names_and_downgrade_writes_them(make):
  today = json.loads(json.dumps(make("").to_dict()))
  old = _old(today)
  assert "recipe" not in old and "task" in old
  assert renamed_fields.upgrade(old) == today
  assert renamed_fields.downgrade(today) == old
  assert renamed_fields.upgrade(today) == today          # today's names are left alone
  assert renamed_fields.upgrade_flat(checkpointing.flat_config(old)) == (
      checkpointing.flat_config(today))
  assert old["task"] in ("descriptor", "joint")           # the input is not modified


def test_a_joint_section_outside_the_joint_recipe_is_not_renamed():
  config = {"recipe": "descriptor", "joint": {"x": 1}}
  assert renamed_fields.upgrade(config) == config


def test_a_checkpoint_saved_with_the_old_names_resumes_and_loads(tmp_path):
  """A run saved before the renames: its saved config compares equal to today's."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from nhp_jax.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = hardnet.get_config("smoke")
  model = state_lib.build_model(config)
  state = jax.jit(lambda: state_lib.create_train_state(
      config, model, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), 10))()
  old = ml_collections.ConfigDict(_old(config.to_dict()))
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2)
  ckpt.save(1, state, old, {}, metrics={"val_loss": 0.5})
  ckpt.wait()
  assert ckpt.saved_config(1)["recipe"] == "descriptor"
  restored, _ = ckpt.restore(state, config, 1)            # no "written by another config"
  assert int(restored.step) == int(state.step)
  ckpt.close()
  _, saved, step = checkpointing.load_variables(str(tmp_path), "latest")
  assert step == 1 and saved["descriptor"]["examples_per_epoch"] == (
      config.descriptor.examples_per_epoch) and "triplets_per_epoch" not in saved["descriptor"]
