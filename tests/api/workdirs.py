"""Training workdirs without training: random variables saved as a run's checkpoint.

`save_workdir(path, config, seed)` writes `<path>/checkpoints/<step>/` exactly as
`loop.train_and_evaluate` does (the TrainState of `config`, its config and a
validation loss), with random parameters and batch-norm statistics that give
distinct, finite outputs. No TensorFlow, no data, a second or so per workdir.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import denoiser, descriptor, joint
from nhp_jax.train import checkpointing
from nhp_jax.train import state as state_lib

STEP = 3


def random_variables(config, seed: int) -> dict:
  """{"params", "batch_stats"} of config's model: N(0, 0.1) values, BN variances 0.5..1.5."""
  model = state_lib.build_model(config)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          jnp.zeros((1, 32, 32, 1)))
  rng = np.random.default_rng(seed)

  def fill(path, s):
    if jax.tree_util.keystr(path).endswith("['var']"):
      return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
    return (0.1 * rng.standard_normal(s.shape)).astype(s.dtype)

  return jax.tree_util.tree_map_with_path(fill, dict(shapes))


def save_workdir(path, config, seed: int = 0) -> dict:
  """Saves a checkpoint of random variables at step STEP; returns the variables."""
  variables = random_variables(config, seed)
  tx, lr_fn = state_lib.make_optimizer(config.optimizer, 10, variables["params"])
  model = state_lib.build_model(config)
  state = state_lib.TrainState(
      step=jnp.asarray(STEP, jnp.int32), params=variables["params"],
      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(variables["params"]),
      rng=jax.random.PRNGKey(seed), apply_fn=model.apply, tx=tx, lr_fn=lr_fn)
  checkpointer = checkpointing.Checkpointer(str(path), async_save=False)
  checkpointer.save(STEP, state, config, {"epoch": 0},
                    metrics={checkpointing.BEST_METRIC: 1.0})
  checkpointer.close()
  return variables


def configs():
  """(denoiser, descriptor, joint) smoke configs: shallow UNet, L2-Net, their joint model."""
  den, des = denoiser.get_config("smoke"), descriptor.get_config("smoke")
  return den, des, joint.for_runs(den, des, "smoke")


def make_all(root) -> dict:
  """root/run (denoiser/ + descriptor/), root/joint, root/descriptor_only; returns their paths."""
  den, des, both = configs()
  save_workdir(root / "run" / "denoiser", den, seed=1)
  save_workdir(root / "run" / "descriptor", des, seed=2)
  save_workdir(root / "joint", both, seed=3)
  save_workdir(root / "descriptor_only", des, seed=4)
  return {"pair": root / "run", "joint": root / "joint", "descriptor": root / "descriptor_only"}
