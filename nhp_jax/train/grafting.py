"""Trained weights put into a fresh state: transfer (a pretrained DnCNN) and joint runs.

Each function returns a `Recipe.prepare`: state -> state. Only a fresh run
calls it: a resumed run restores its own weights.
"""

import ml_collections
from absl import logging

from nhp_jax import errors
from nhp_jax.models import dncnn
from nhp_jax.train import checkpointing

JOINT_PARTS = ("denoiser", "descriptor")


def graft_dncnn(config: ml_collections.ConfigDict):
  """state -> state with the pretrained DnCNN of `config.transfer` in its frozen part.

  Only a fresh run calls it: a resumed run already has the grafted weights.
  """
  def prepare(state):
    variables, saved, step = checkpointing.load_variables(
        config.transfer.pretrained_workdir, config.transfer.checkpoint)
    if saved["model"]["name"] != "dncnn":
      raise errors.ConfigError(f"transfer.pretrained_workdir: expected a DnCNN run, found a "
                               f"{saved['model']['name']!r} run")
    ours = config.model.kwargs.get("input_scale", 1.0)
    theirs = saved["model"]["kwargs"].get("input_scale", 1.0)
    if ours != theirs:
      raise errors.ConfigError(f"model.kwargs.input_scale ({ours}) must equal the pretrained "
                               f"DnCNN's ({theirs})")
    grafted = dncnn.graft_pretrained(state.variables, variables)
    logging.info("grafted the DnCNN of %s (step %d) into %s", config.transfer.pretrained_workdir,
                 step, dncnn.FROZEN)
    return state.replace(params=grafted["params"], batch_stats=grafted["batch_stats"])
  return prepare


def load_pair(config: ml_collections.ConfigDict):
  """state -> state holding the trained denoiser and descriptor of `config.finetune`.

  Each run's model section must match `config.model.kwargs.<part>`; the
  optimiser state is initialised again for the loaded parameters. Only a
  fresh run calls it: a resumed run restores its own fine-tuned weights.
  """
  def prepare(state):
    loaded = {}
    for part in JOINT_PARTS:
      workdir = config.finetune[f"{part}_workdir"]
      variables, saved, step = checkpointing.load_variables(workdir,
                                                            config.finetune[f"{part}_checkpoint"])
      expected = config.model.kwargs[part].to_dict()
      diff = checkpointing.config_differences({"model": saved["model"]}, {"model": expected},
                                              ignore=())
      if diff:
        raise errors.ConfigError(
            f"finetune.{part}_workdir: {workdir} holds a {saved['model']['name']!r} run whose "
            f"model differs from config.model.kwargs.{part} ({'; '.join(diff)})")
      logging.info("joint: %s from %s (%s, step %d)", part, workdir, saved["model"]["name"], step)
      loaded[part] = variables
    new = {col: {p: loaded[p][col] for p in JOINT_PARTS if loaded[p].get(col)}
           for col in ("params", "batch_stats")}
    diff = checkpointing.shape_differences(checkpointing.variable_shapes(new),
                                           checkpointing.variable_shapes(state.variables))
    if diff:
      raise errors.ConfigError("joint: the loaded networks do not fit config.model: "
                               + "; ".join(diff[:5]))
    return state.replace(params=new["params"], batch_stats=new["batch_stats"],
                         opt_state=state.tx.init(new["params"]))
  return prepare
