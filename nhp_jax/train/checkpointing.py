"""Checkpoints of a run: the only module that imports orbax.

Layout: `<workdir>/checkpoints/<step>/` with three items: `state` (the
TrainState arrays), `config` (the experiment config as JSON, so a checkpoint
can be restored without its command line) and `progress` (the loop's running
sums of the current epoch, so a resumed run logs the same epoch means).
Orbax writes each step into a temporary folder and renames it when complete,
so a run killed while saving leaves only whole checkpoints behind; the
temporary folders of killed saves are deleted when the next Checkpointer opens
the workdir.

Integrity: `progress` also holds a SHA-256 digest of the state's arrays,
taken from the host copy that is saved. Before the newest checkpoint is
trusted (`latest_step`, restoring "latest") it is read back in full and
checked against that digest; a checkpoint that cannot be read or does not
match (a truncated or deleted file, flipped bytes) is reported with a
warning naming its folder, moved to `<workdir>/corrupt_checkpoints/`, and
the previous checkpoint is used.

Kept: the last `keep` checkpoints plus the one with the lowest validation
loss (saves without one, mid-epoch, never count as best).
"""

import hashlib
import json
import logging as std_logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

from nhp_jax import errors
from nhp_jax.train import renamed_fields

CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "corrupt_checkpoints"
DIGEST_KEY = "state_sha256"  # reserved key of the saved `progress` item
BEST_METRIC = "val_loss"
# Fields that may change between a run and its resumption: they steer logging,
# saving and placement, not the computation. `num_epochs` may grow to train
# longer (decaying schedules then follow the new total).
RESUMABLE_FIELDS = ("training.log_every", "training.checkpoint_every",
                    "training.keep_checkpoints", "training.num_epochs",
                    "parallel.num_devices", "parallel.distributed")
_VARIABLES = ("params", "batch_stats")


# Warnings orbax gives every read-only restore (the read-only options it sets
# itself, and that the folder is opened read-only): nothing a user can act on.
_READ_ONLY_NOTICES = ("Given directory is read only", "CheckpointManagerOptions.read_only=True")


class _OrbaxInfoFilter(std_logging.Filter):
  """Drops orbax's INFO lines (dozens per save) and its read-only restore notices; its other
  warnings and errors pass."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
      return True
    if record.levelno < std_logging.WARNING:
      return False
    return not str(record.msg).startswith(_READ_ONLY_NOTICES)


_ORBAX_FILTER = _OrbaxInfoFilter()


def quiet_orbax() -> None:
  """Keeps orbax's per-save INFO chatter out of the training log (idempotent)."""
  absl_logger = logging.get_absl_logger()
  if _ORBAX_FILTER not in absl_logger.filters:
    absl_logger.addFilter(_ORBAX_FILTER)


def state_digest(state) -> str:
  """SHA-256 over the arrays of a state-like tree, independent of how the tree is nested.

  Checkpoints are read back as plain nested dicts, not as the TrainState
  that was saved, so the digest hashes each leaf (dtype, shape, bytes) on its
  own and combines the sorted leaf hashes.
  """
  leaves = []
  for leaf in jax.tree.leaves(jax.device_get(state)):
    a = np.ascontiguousarray(np.asarray(leaf))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    leaves.append(h.hexdigest())
  return hashlib.sha256("".join(sorted(leaves)).encode()).hexdigest()


def _best_metric(metrics: Mapping[str, float]) -> float:
  return metrics.get(BEST_METRIC, math.inf)


def flat_config(config: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
  """{"a.b": value}, JSON-normalised (tuples become lists) so saved and live configs compare."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  return traverse_util.flatten_dict(json.loads(json.dumps(config)), sep=".")


# Config fields added after checkpoints were already being written, with the
# value that keeps the earlier behaviour: a saved config without the field
# matches a current one holding this value (and only this value).
ADDED_FIELDS = {
    "descriptor.loss": "triplet",
    "descriptor.sos_weight": 0.0,
    "descriptor.sos_k": 8,
    "descriptor.augment": "none",
    "model.kwargs.final_bn": False,
}


def config_differences(saved: Mapping[str, Any],
                       current: Mapping[str, Any] | ml_collections.ConfigDict,
                       ignore: tuple[str, ...] = RESUMABLE_FIELDS) -> list[str]:
  """Fields whose values differ, as "field: saved -> current" lines, sorted.

  A field of `ADDED_FIELDS` missing from `saved` counts as its earlier value.
  """
  a, b = flat_config(saved), flat_config(current)
  a = {**{k: v for k, v in ADDED_FIELDS.items() if k in b}, **a}
  return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(a.keys() | b.keys())
          if k not in ignore and a.get(k, "<absent>") != b.get(k, "<absent>")]


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in path)


def variable_shapes(tree) -> dict[str, tuple[int, ...]]:
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
    self._workdir = os.path.abspath(workdir)
    self._verified: set[int] = set()
    self._corrupt: set[int] = set()  # reported; gone from disk on process 0 only
    options = ocp.CheckpointManagerOptions(
        best_fn=_best_metric, best_mode="min", enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=_best_metric, reverse=True, n=1,
                           keep_checkpoints_without_metrics=False)]))
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
        "state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler(),
        "progress": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    """The newest intact step (see the module docstring), or None.

    A newest checkpoint that fails verification is reported, moved to
    `<workdir>/corrupt_checkpoints/` (by process 0) and skipped.
    """
    while True:
      steps = [s for s in self._manager.all_steps() if s not in self._corrupt]
      step = max(steps, default=None)
      if step is None or step in self._verified:
        return step
      problem = self._verify(step)
      if problem is None:
        self._verified.add(step)
        return step
      self._quarantine(step, problem)

  def _verify(self, step: int) -> str | None:
    """None if checkpoint `step` reads back whole and matches its digest, else the problem."""
    try:
      metadata = self._manager.item_metadata(step)["state"]
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            metadata)
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore(),
          progress=ocp.args.JsonRestore()))
      expected = dict(restored.progress).get(DIGEST_KEY)
    except Exception as e:  # pylint: disable=broad-except  (any read failure means corrupt)
      return f"cannot be read back ({type(e).__name__}: {str(e)[:300]})"
    if expected is not None and state_digest(restored.state) != expected:
      return "its arrays do not match the digest saved with them"
    return None

  def _quarantine(self, step: int, problem: str) -> None:
    folder = os.path.join(self.directory, str(step))
    dest = os.path.join(self._workdir, CORRUPT_DIR, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    logging.warning("checkpoint %s is corrupt: %s; moving it to %s and using the previous "
                    "checkpoint", folder, problem, dest)
    self._corrupt.add(step)
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      while os.path.exists(dest):
        dest += "+"
      os.replace(folder, dest)
    self._manager.reload()

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
    host_state = jax.device_get(state)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(host_state),
        config=ocp.args.JsonSave(config.to_dict()),
        progress=ocp.args.JsonSave({**progress, DIGEST_KEY: state_digest(host_state)})),
        metrics=dict(metrics or {}))
    self._verified.add(step)  # written from memory: nothing to verify

  def _resolve(self, step: int | str | None) -> int:
    """Like `_resolve`, with "latest" the newest intact step (`latest_step`)."""
    if step in (None, "latest") and self.latest_step() is not None:
      return self.latest_step()
    return _resolve(self._manager, self.directory, step)

  def saved_config(self, step: int | str | None = None) -> dict[str, Any]:
    """The config saved with checkpoint `step` (int, "latest" or "best"), as a dict.

    In today's field names (`renamed_fields.upgrade`), whatever version wrote it.
    """
    step = self._resolve(step)
    try:
      return renamed_fields.upgrade(self._manager.restore(step, args=ocp.args.Composite(
          config=ocp.args.JsonRestore())).config)
    except Exception as e:  # pylint: disable=broad-except
      raise errors.CheckpointError(
          f"{self.directory}/{step}: cannot read the saved config ({type(e).__name__}: "
          f"{e}); restore another step or delete this folder") from e

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
    step = self._resolve(step)
    differing = config_differences(self.saved_config(step), config)
    try:
      saved_shapes = variable_shapes(self._manager.item_metadata(step)["state"])
    except Exception as e:  # pylint: disable=broad-except
      raise errors.CheckpointError(f"{self.directory}/{step}: cannot read the state's "
                                   f"metadata ({type(e).__name__}: {e})") from e
    shapes = shape_differences(saved_shapes, variable_shapes(target))
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
    except Exception as e:  # pylint: disable=broad-except  (orbax and tensorstore raise many kinds)
      raise errors.CheckpointError(f"{self.directory}/{step}: cannot restore: {e}") from e
    progress = dict(restored.progress)
    progress.pop(DIGEST_KEY, None)
    return restored.state, progress

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
    CheckpointError: no checkpoint folder, no such step, or a checkpoint
      that cannot be read (naming its folder).
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
  except errors.CheckpointError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (orbax and tensorstore raise many kinds)
    raise errors.CheckpointError(f"{directory}/{step}: cannot read checkpoint ({type(e).__name__}: "
                                 f"{str(e)[:300]}); pass another step") from e
  finally:
    manager.close()
  return ({k: restored.state[k] for k in _VARIABLES}, renamed_fields.upgrade(restored.config),
          step)
