"""Train state and optimiser: everything one step reads and writes, as one pytree.

The optimiser, its learning-rate schedule and the frozen subtrees all come
from `config.optimizer`; variants are picked from the dicts `OPTIMIZERS` and
`SCHEDULES`, so an unknown name fails with the list of known ones.
"""

from collections.abc import Callable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from nhp_jax import errors
from nhp_jax.models import get_model

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(flax.struct.PyTreeNode):
  """Parameters, batch-norm statistics, optimiser state, step and rng of a run.

  Attributes:
    step: () int32, optimiser steps taken.
    params: the model's trainable parameters (float32).
    batch_stats: batch-norm running statistics ({} for models without).
    opt_state: the optimiser's state.
    rng: (2,) uint32 raw PRNG key; step s uses `fold_in(rng, s)`.
    apply_fn: the model's `apply` (static).
    tx: the optax transformation (static).
    lr_fn: learning rate as a function of the step (static), for logging.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  apply_fn: Callable[..., Any] = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  lr_fn: Callable[[jax.Array], jax.Array] = flax.struct.field(pytree_node=False)

  @property
  def variables(self) -> dict[str, Any]:
    """{"params", "batch_stats"}: what `apply_fn` takes."""
    return {"params": self.params, "batch_stats": self.batch_stats}

  def step_key(self) -> jax.Array:
    """The dropout key of this step: a function of (rng, step) only, so resumes replay it."""
    return jax.random.fold_in(self.rng, self.step)

  def apply_gradients(self, grads: Any, batch_stats: Any) -> "TrainState":
    """One optimiser update; returns the state of the next step."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state, batch_stats=batch_stats)


def _sgd(lr, cfg):
  return optax.sgd(lr, momentum=cfg.momentum or None, nesterov=cfg.nesterov)


def _adam(lr, cfg):
  del cfg  # optax's defaults: b1 0.9, b2 0.999, eps 1e-8.
  return optax.adam(lr)


# Builders of the optimisers a config may name: (learning rate or schedule,
# config.optimizer) -> optax transformation.
OPTIMIZERS: dict[str, Callable[[Any, ml_collections.ConfigDict], optax.GradientTransformation]] = {
    "sgd": _sgd,   # momentum 0: plain SGD; nesterov=True: Keras' SGD(nesterov=True)
    "adam": _adam,
}


def _constant(cfg, total_steps):
  del total_steps
  return optax.constant_schedule(cfg.learning_rate)


def _cosine(cfg, total_steps):
  return optax.warmup_cosine_decay_schedule(
      0.0, cfg.learning_rate, cfg.warmup_steps, max(total_steps, cfg.warmup_steps + 1),
      end_value=cfg.learning_rate * cfg.end_factor)


def _linear(cfg, total_steps):
  decay = max(total_steps - cfg.warmup_steps, 1)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps),
       optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.end_factor, decay)],
      [cfg.warmup_steps])


# Learning-rate schedules: (config.optimizer, total steps) -> step -> lr.
SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict, int], optax.Schedule]] = {
    "constant": _constant,          # the seed's setting
    "cosine": _cosine,              # linear warmup, cosine decay to lr * end_factor
    "linear": _linear,              # linear warmup, linear decay to lr * end_factor
}


def _lookup(table: Mapping[str, Any], name: str, field: str):
  if name not in table:
    raise errors.ConfigError(f"{field}: unknown name {name!r}; known: {', '.join(table)}")
  return table[name]


def frozen_labels(params: Mapping[str, Any], frozen: tuple[str, ...]) -> dict[str, Any]:
  """Pytree like `params` with "frozen" under the named top-level subtrees, else "train".

  Raises:
    ConfigError: a name in `frozen` is not a top-level subtree of `params`.
  """
  unknown = sorted(set(frozen) - set(params))
  if unknown:
    raise errors.ConfigError(f"optimizer.frozen: {unknown} are not top-level parameter "
                             f"subtrees of the model; it has {sorted(params)}")
  return {k: jax.tree_util.tree_map(lambda _, k=k: "frozen" if k in frozen else "train", v)
          for k, v in params.items()}


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int, params: Any
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optax transformation and learning-rate schedule of `config.optimizer`.

  Subtrees named in `cfg.frozen` get `optax.set_to_zero()`: no update, no
  momentum, no state.

  Args:
    cfg: `config.optimizer`.
    total_steps: steps of the whole run (for decaying schedules).
    params: the parameter tree (or its shapes), to place the frozen mask.

  Returns:
    (transformation, schedule).
  """
  lr_fn = _lookup(SCHEDULES, cfg.schedule, "optimizer.schedule")(cfg, total_steps)
  tx = _lookup(OPTIMIZERS, cfg.name, "optimizer.name")(lr_fn, cfg)
  if cfg.frozen:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               frozen_labels(params, tuple(cfg.frozen)))
  return tx, lr_fn


def build_model(config: ml_collections.ConfigDict):
  """The Flax module of `config.model`, computing in `config.dtype` (params stay float32)."""
  kwargs = dict(config.model.kwargs)
  if config.dtype != "float32":
    kwargs["dtype"] = _lookup(DTYPES, config.dtype, "dtype")
  return get_model(config.model.name, **kwargs)


def create_train_state(config: ml_collections.ConfigDict, model, key: jax.Array,
                       example_input: jax.Array, total_steps: int) -> TrainState:
  """Initialises the model and optimiser of `config`.

  Pure in (config, key, example shape), so `jax.eval_shape` of it gives the
  abstract target a checkpoint is restored into.

  Args:
    config: a validated experiment config.
    model: the Flax module (`build_model(config)`).
    key: PRNG key; split into the init key and the state's step rng.
    example_input: (B, 32, 32, 1) float32 pixels 0..255 (only the shape matters).
    total_steps: steps of the whole run, for the schedule.

  Returns:
    TrainState at step 0.
  """
  init_key, step_key = jax.random.split(key)
  variables = model.init(init_key, example_input, train=False)
  params = variables["params"]
  tx, lr_fn = make_optimizer(config.optimizer, total_steps, params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params), rng=step_key, apply_fn=model.apply,
                    tx=tx, lr_fn=lr_fn)
