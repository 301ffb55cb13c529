"""Checkpoints of a run: the only module that imports orbax.

Layout: `<workdir>/checkpoints/<step>/` with three items: `state` (the
TrainState arrays), `config` (the experiment config as JSON, so a checkpoint
can be restored without its command line) and `progress` (the loop's running
sums of the current epoch, so a resumed run logs the same epoch means).
Orbax writes each step into a temporary folder and renames it when complete,
so a run killed while saving leaves only whole checkpoints behind.

Kept: the last `keep` checkpoints plus the one with the lowest validation
loss (saves without one, mid-epoch, never count as best).
"""

import json
import logging as std_logging
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

from nhp_jax import errors

CHECKPOINT_DIR = "checkpoints"
BEST_METRIC = "val_loss"
# Fields that may change between a run and its resumption: they steer logging,
# saving and placement, not the computation. `num_epochs` may grow to train
# longer (decaying schedules then follow the new total).
RESUMABLE_FIELDS = ("training.log_every", "training.checkpoint_every",
                    "training.keep_checkpoints", "training.num_epochs",
                    "parallel.num_devices", "parallel.distributed")
_VARIABLES = ("params", "batch_stats")


class _OrbaxInfoFilter(std_logging.Filter):
  """Drops orbax's INFO lines (dozens per save); its warnings and errors pass."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


_ORBAX_FILTER = _OrbaxInfoFilter()


def quiet_orbax() -> None:
  """Keeps orbax's per-save INFO chatter out of the training log (idempotent)."""
  absl_logger = logging.get_absl_logger()
  if _ORBAX_FILTER not in absl_logger.filters:
    absl_logger.addFilter(_ORBAX_FILTER)


def _best_metric(metrics: Mapping[str, float]) -> float:
  return metrics.get(BEST_METRIC, math.inf)


def flat_config(config: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
  """{"a.b": value}, JSON-normalised (tuples become lists) so saved and live configs compare."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  return traverse_util.flatten_dict(json.loads(json.dumps(config)), sep=".")


def config_differences(saved: Mapping[str, Any], current: ml_collections.ConfigDict,
                       ignore: tuple[str, ...] = RESUMABLE_FIELDS) -> list[str]:
  """Fields whose values differ, as "field: saved -> current" lines, sorted."""
  a, b = flat_config(saved), flat_config(current)
  return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(a.keys() | b.keys())
          if k not in ignore and a.get(k, "<absent>") != b.get(k, "<absent>")]


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in path)


def _variable_shapes(tree) -> dict[str, tuple[int, ...]]:
  """{"params/conv_0/kernel": shape} of the model variables in a state-like tree."""
  out = {}
  for col in _VARIABLES:
    sub = tree[col] if isinstance(tree, Mapping) or hasattr(tree, "keys") else getattr(tree, col)
    for path, leaf in jax.tree_util.tree_flatten_with_path(sub)[0]:
      out[f"{col}/{_path_str(path)}"] = tuple(leaf.shape)
  return out


def shape_differences(saved: Mapping[str, tuple], target: Mapping[str, tuple]) -> list[str]:
  """Variables missing, unexpected or of another shape, one line each, sorted."""
  lines = [f"{k}: missing from the checkpoint" for k in sorted(target.keys() - saved.keys())]
  lines += [f"{k}: in the checkpoint, not in the model"
            for k in sorted(saved.keys() - target.keys())]
  lines += [f"{k}: checkpoint {saved[k]}, model {target[k]}"
            for k in sorted(saved.keys() & target.keys()) if saved[k] != target[k]]
  return lines


class Checkpointer:
  """Saves and restores the TrainState of one workdir (every process calls it).

  Args:
    workdir: the run's folder; checkpoints go to `<workdir>/checkpoints`.
    keep: how many of the latest checkpoints to keep (the best one is kept
      besides them).
    async_save: write in a background thread (`wait` or `close` before exit).
  """

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True):
    quiet_orbax()
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    policies = ocp.checkpoint_managers
    options = ocp.CheckpointManagerOptions(
        best_fn=_best_metric, best_mode="min", enable_async_checkpointing=async_save,
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=_best_metric, reverse=True, n=1,
                           keep_checkpoints_without_metrics=False)]))
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
        "state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler(),
        "progress": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """Step of the lowest validation loss; the latest step when none was recorded."""
    return _best_step(self._manager)

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, config: ml_collections.ConfigDict,
           progress: Mapping[str, Any], metrics: Mapping[str, float] | None = None) -> None:
    """Saves `state` at `step` (no-op if that step is already saved).

    Args:
      step: the state's step.
      state: the TrainState, replicated over the mesh (copied to host before
        this returns; written in the background).
      config: the run's config, saved as JSON beside the state.
      progress: JSON-serialisable loop state (running epoch sums).
      metrics: {"val_loss": x} at epoch ends; None mid-epoch.
    """
    if step in self._manager.all_steps():
      return
    # The state is replicated: one host copy is the whole of it, and saving
    # host arrays spares orbax a per-shape slicing program for each replica.
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(jax.device_get(state)),
        config=ocp.args.JsonSave(config.to_dict()),
        progress=ocp.args.JsonSave(dict(progress))), metrics=dict(metrics or {}))

  def saved_config(self, step: int | str | None = None) -> dict[str, Any]:
    """The config saved with checkpoint `step` (int, "latest" or "best"), as a dict."""
    step = _resolve(self._manager, self.directory, step)
    return self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore())).config

  def restore(self, target, config: ml_collections.ConfigDict, step: int | str | None = None):
    """Restores a training run into `target`.

    Args:
      target: TrainState of the current config: real or abstract
      (`jax.eval_shape`) arrays; restored arrays take its shardings.
      config: the current config; must equal the saved one except for
        RESUMABLE_FIELDS.
      step: int, "latest" (default) or "best".

    Returns:
      (state, progress dict).

    Raises:
      CheckpointError: no such checkpoint, or it was written by another
        config (the message lists the differing fields and variable shapes).
    """
    step = _resolve(self._manager, self.directory, step)
    differing = config_differences(self.saved_config(step), config)
    shapes = shape_differences(_variable_shapes(self._manager.item_metadata(step)["state"]),
                               _variable_shapes(target))
    if differing or shapes:
      lines = ([f"  config {d}" for d in differing] + [f"  variable {s}" for s in shapes])
      raise errors.CheckpointError(
          f"{self.directory}/{step} was written by another config; restore into a "
          f"fresh workdir or use the saved config. Differences ({len(lines)}):\n"
          + "\n".join(lines[:20]))
    abstract = jax.tree.map(_abstract, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
      raise errors.CheckpointError(f"{self.directory}/{step}: cannot restore: {e}") from e
    return restored.state, dict(restored.progress)

  def wait(self) -> None:
    """Blocks until background saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _abstract(x):
  if isinstance(x, jax.ShapeDtypeStruct):
    return x
  return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


def _best_step(manager: ocp.CheckpointManager) -> int | None:
  scored = [(manager.metrics(s) or {}).get(BEST_METRIC) for s in manager.all_steps()]
  scored = [(m, s) for m, s in zip(scored, manager.all_steps()) if m is not None]
  return min(scored)[1] if scored else manager.latest_step()


def _resolve(manager: ocp.CheckpointManager, directory: str, step: int | str | None) -> int:
  """int, "latest"/None or "best" -> a step that exists; CheckpointError otherwise."""
  if step in (None, "latest"):
    resolved = manager.latest_step()
  elif step == "best":
    resolved = _best_step(manager)
  else:
    resolved = int(step) if int(step) in manager.all_steps() else None
  if resolved is None:
    raise errors.CheckpointError(
        f"{directory}: no checkpoint {step if step is not None else ''} "
        f"(steps present: {sorted(manager.all_steps()) or 'none'})")
  return resolved


def load_variables(workdir: str, step: int | str | None = "best"
                   ) -> tuple[dict[str, Any], dict[str, Any], int]:
  """Model variables of a run, for inference or grafting; never writes.

  Only "params" and "batch_stats" are read (the optimiser state is skipped),
  onto the first local device, in the structure they were saved in.

  Args:
    workdir: the run's folder (holding `checkpoints/`).
    step: int, "latest" or "best" (lowest validation loss; default).

  Returns:
    ({"params", "batch_stats"}, the saved config as a dict, the step).

  Raises:
    CheckpointError: no checkpoint folder or no such step.
  """
  quiet_orbax()
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise errors.CheckpointError(f"{directory}: no checkpoints (expected a training workdir)")
  manager = ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                     "config": ocp.JsonCheckpointHandler(),
                     "progress": ocp.JsonCheckpointHandler()})
  try:
    step = _resolve(manager, directory, step)
    metadata = manager.item_metadata(step)["state"]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = {col: jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                metadata[col]) for col in _VARIABLES}
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                     restore_args=restore_args),
        config=ocp.args.JsonRestore()))
  finally:
    manager.close()
  return {k: restored.state[k] for k in _VARIABLES}, dict(restored.config), step
