"""The training loop shared by the denoiser, the descriptor and DnCNN pretraining.

`train_and_evaluate(config, workdir, data_dir)`:
  * validates the config, builds the ("data",) mesh and the recipe;
  * resumes from the latest checkpoint in `workdir` if there is one (the data
    stream restarts at the restored step, so the run ends with the same
    parameters as an uninterrupted one);
  * logs progress every `training.log_every` steps (loss, recipe metrics, lr,
    grad norm, steps/s, patches/s, ETA), to the log and TensorBoard;
  * at every epoch end: validation, one line in `metrics.jsonl`, the
    learning-curve PNG, a checkpoint (kept if it is the best by validation
    loss); also a checkpoint every `training.checkpoint_every` steps;
  * stops with NumericsError at the first NaN/Inf loss, gradient norm or
    validation loss, before anything from that step is saved.

Workdir contents: `checkpoints/<step>/`, `metrics.jsonl` (one JSON object
per epoch: epoch, step, lr (of the epoch's last step), train_<metric> (mean
over the epoch's steps), val_<metric>), `learning_curves.png`, TensorBoard
event files. On resumption `metrics.jsonl` drops the lines past the restored
step (it is rewritten whole, atomically, at every epoch end); TensorBoard
keeps the scalars a killed run logged past its last checkpoint, so those
steps appear twice there.
"""

import json
import math
import os
import time

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import metric_writers

from nhp_jax import atomic, errors, platform, progress
from nhp_jax.models import count_params
from nhp_jax.train import checkpointing, config_validation, plots, recipes, sharding
from nhp_jax.train import state as state_lib

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "learning_curves.png"
_NOT_AVERAGED = ("lr",)  # logged at its latest value, not as a mean


def read_records(workdir: str, up_to_step: int) -> list[dict]:
  """Epoch records of `metrics.jsonl` with step <= up_to_step (later ones belong to a lost run)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if r["step"] <= up_to_step]


def _write_records(workdir: str, records: list[dict]) -> None:
  atomic.write_text(os.path.join(workdir, METRICS_FILE),
                    "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def _format_metrics(metrics: dict[str, float]) -> str:
  return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def _log_start(config, mesh, state, recipe, total_steps):
  logging.info("jax %s, flax %s, optax %s; %d process(es); devices: %s", jax.__version__,
               flax.__version__, optax.__version__, jax.process_count(), jax.devices())
  logging.info("mesh %s over %d device(s); %d epochs x %d steps = %d steps of batch %d",
               dict(mesh.shape), mesh.size, config.training.num_epochs, recipe.steps_per_epoch,
               total_steps, config.training.batch_size)
  logging.info("model %s: %s", config.model.name,
               count_params({"params": state.params, "batch_stats": state.batch_stats}))
  logging.info("config:\n%s", config)


class _EpochMeans:
  """Running sums of per-step metrics over the current epoch (checkpointed as `progress`)."""

  def __init__(self, progress: dict):
    self.sums = dict(progress.get("epoch_sums", {}))
    self.steps = int(progress.get("epoch_steps", 0))
    self.latest: dict[str, float] = {}

  def add(self, metrics: dict[str, float]) -> None:
    for k, v in metrics.items():
      if k in _NOT_AVERAGED:
        self.latest[k] = v
      else:
        self.sums[k] = self.sums.get(k, 0.0) + v
    self.steps += 1

  def record(self) -> dict[str, float]:
    """The epoch's line of metrics.jsonl: train_<metric> means, and the last lr."""
    return {**{f"train_{k}": v / self.steps for k, v in self.sums.items()},
            **{k: self.latest[k] for k in _NOT_AVERAGED if k in self.latest}}

  def reset(self) -> None:
    self.sums, self.steps = {}, 0

  def progress(self) -> dict:
    return {"epoch_sums": dict(self.sums), "epoch_steps": self.steps}


def _check_finite(step: int, metrics: dict[str, float], checkpoint_dir: str,
                  last_saved: int | None) -> None:
  for key in ("loss", "grad_norm", "val_loss"):
    if key in metrics and not math.isfinite(metrics[key]):
      raise errors.NumericsError(
          f"{key} is {metrics[key]} at step {step}; training stopped. The last good "
          f"checkpoint is step {last_saved} in {checkpoint_dir}" if last_saved is not None else
          f"{key} is {metrics[key]} at step {step}; training stopped before any checkpoint")


def evaluate(eval_step, state, data: dict[str, np.ndarray], batch_size: int, mesh) -> dict:
  """Sums of `eval_step` over the whole validation set, in fixed-size padded batches.

  Args:
    eval_step: jitted (state, batch with "mask") -> dict of () sums.
    state: the TrainState.
    data: {name: (N, ...) uint8}, identical on every process.
    batch_size: global rows per call, a multiple of the mesh size.
    mesh: the ("data",) mesh.

  Returns:
    {name: float} sums over the N real rows.
  """
  n = len(next(iter(data.values())))
  per_process = batch_size // jax.process_count()
  lo = jax.process_index() * per_process
  totals: dict[str, float] = {}
  for start in range(0, n, batch_size):
    rows = min(batch_size, n - start)
    batch = {}
    for k, v in data.items():
      padded = np.zeros((batch_size,) + v.shape[1:], v.dtype)
      padded[:rows] = v[start:start + rows]
      batch[k] = padded[lo:lo + per_process]
    batch["mask"] = (np.arange(batch_size) < rows).astype(np.float32)[lo:lo + per_process]
    for k, v in jax.device_get(eval_step(state, sharding.shard_batch(batch, mesh))).items():
      totals[k] = totals.get(k, 0.0) + float(v)
  return totals


def _init_or_restore(config, recipe, mesh, checkpointer, total_steps):
  """(state, start step, progress): the latest checkpoint's, or a fresh (prepared) state."""
  model = state_lib.build_model(config)
  example = jnp.zeros((1, 32, 32, 1), jnp.float32)

  def init():
    return state_lib.create_train_state(config, model, jax.random.PRNGKey(config.seed),
                                        example, total_steps)

  start = checkpointer.latest_step()
  if start is None:
    return sharding.replicate(recipe.prepare(jax.jit(init)()), mesh), 0, {}
  replicated = sharding.replicated(mesh)
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated),
                          jax.eval_shape(init))
  state, progress = checkpointer.restore(abstract, config, start)
  logging.info("resumed from %s at step %d", checkpointer.directory, start)
  return state, start, progress


class _Progress:
  """Progress lines and TensorBoard scalars; steps/s is timed over training work only."""

  def __init__(self, writer, start: int, total_steps: int, steps_per_epoch: int,
               num_epochs: int, patches_per_step: int):
    self.writer, self.total, self.steps_per_epoch = writer, total_steps, steps_per_epoch
    self.num_epochs, self.patches_per_step = num_epochs, patches_per_step
    self.restart(start)

  def restart(self, step: int) -> None:
    """Starts the clock again (after validation or saving, which are not training)."""
    self.clock, self.clock_step = time.perf_counter(), step

  def log(self, step: int, means: dict[str, float]) -> None:
    rate = (step - self.clock_step) / max(time.perf_counter() - self.clock, 1e-9)
    logging.info("step %d/%d (epoch %d/%d) %s | %.2f steps/s %.0f patches/s ETA %s",
                 step, self.total, -(-step // self.steps_per_epoch), self.num_epochs,
                 _format_metrics(means), rate, rate * self.patches_per_step,
                 progress.format_duration((self.total - step) / rate if rate > 0 else math.inf))
    self.writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()}
                              | {"train/steps_per_s": rate})
    self.restart(step)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       data_dir: str | None = None) -> state_lib.TrainState:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if any.

  Args:
    config: an experiment config (experiments/configs/*.py).
    workdir: folder for checkpoints, metrics.jsonl, plots and TensorBoard.
    data_dir: an N-HPatches / HPatches root; None: the embedded dataset.

  Returns:
    The final TrainState.

  Raises:
    ConfigError: invalid config (before any work).
    CheckpointError: `workdir` holds checkpoints of another config.
    NumericsError: a loss or the gradient norm became NaN or Inf.
  """
  config_validation.validate(config)
  if config.parallel.distributed:   # once per process (binaries join in platform.setup)
    platform.initialize_distributed()
  config_validation.validate(config, device_count=jax.device_count())
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  cfg = config.training
  is_chief = jax.process_index() == 0

  mesh = sharding.make_mesh(sharding.data_parallel_size(cfg.batch_size,
                                                        config.parallel.num_devices))
  eval_batch = -(-cfg.eval_batch_size // mesh.size) * mesh.size
  recipe = recipes.get_recipe(config, data_dir)
  total_steps = cfg.num_epochs * recipe.steps_per_epoch
  checkpointer = checkpointing.Checkpointer(workdir, keep=cfg.keep_checkpoints)
  state, start, progress = _init_or_restore(config, recipe, mesh, checkpointer, total_steps)
  _log_start(config, mesh, state, recipe, total_steps)

  records = read_records(workdir, start) if is_chief else []
  # TensorBoard only: the progress lines already go to the log.
  writer = metric_writers.MultiWriter(
      [metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))] if is_chief else [])
  if start == 0:
    writer.write_hparams({k: v for k, v in checkpointing.flat_config(config).items()
                          if isinstance(v, (int, float, str, bool))})
  train_step = sharding.jit_train_step(recipe.train_step, mesh)
  eval_step = sharding.jit_eval_step(recipe.eval_step, mesh)
  # Every process draws the global batches and keeps its rows; two are
  # copied to the devices ahead of the step.
  batches = sharding.prefetch(map(sharding.process_rows,
                                  recipe.train_batches(start, cfg.batch_size, config.seed)), mesh)
  epoch = _EpochMeans(progress)
  window: list[tuple[int, dict]] = []   # (step, device metrics) not yet on the host
  last_saved = start or None
  report = _Progress(writer, start, total_steps, recipe.steps_per_epoch, cfg.num_epochs,
                     cfg.batch_size * recipe.patches_per_example)

  def flush() -> dict[str, float]:
    """Brings the window's metrics to the host, checks them, adds them to the epoch means."""
    means: dict[str, float] = {}
    for step, metrics in jax.device_get(window):
      metrics = {k: float(v) for k, v in metrics.items()}
      _check_finite(step, metrics, checkpointer.directory, last_saved)
      epoch.add(metrics)
      for k, v in metrics.items():
        means[k] = v if k in _NOT_AVERAGED else means.get(k, 0.0) + v / len(window)
    window.clear()
    return means

  try:
    for step in range(start + 1, total_steps + 1):   # `step` counts completed steps
      state, metrics = train_step(state, next(batches))
      window.append((step, metrics))
      epoch_end = step % recipe.steps_per_epoch == 0
      save = epoch_end or step % cfg.checkpoint_every == 0
      if not (save or step % cfg.log_every == 0):
        continue
      means = flush()   # before any save: a NaN step never reaches a checkpoint
      if step % cfg.log_every == 0 or step == total_steps:
        report.log(step, means)
      val = None
      if epoch_end:
        val = _validate(recipe, eval_step, state, eval_batch, mesh, step, epoch, writer)
        _check_finite(step, {"val_" + k: v for k, v in val.items()}, checkpointer.directory,
                      last_saved)
        if is_chief:
          records.append({"epoch": step // recipe.steps_per_epoch, "step": step,
                          **epoch.record(), **{f"val_{k}": v for k, v in val.items()}})
          _write_records(workdir, records)
          plots.plot_learning_curves(records, os.path.join(workdir, CURVES_FILE),
                                     metrics=recipe.curves, title=recipe.title)
        epoch.reset()
      if save:
        checkpointer.save(step, state, config, epoch.progress(),
                          metrics=None if val is None else {checkpointing.BEST_METRIC: val["loss"]})
        last_saved = step
        report.restart(step)
  finally:
    checkpointer.close()
    writer.close()
  return state


def _validate(recipe, eval_step, state, eval_batch, mesh, step, epoch, writer) -> dict[str, float]:
  """Scores the validation set; logs it beside the epoch's training means."""
  began = time.perf_counter()
  val = recipe.eval_summary(evaluate(eval_step, state, recipe.val_data, eval_batch, mesh))
  logging.info("epoch %d: %s | validation %s (%.1f s)", step // recipe.steps_per_epoch,
               _format_metrics(epoch.record()), _format_metrics(val), time.perf_counter() - began)
  writer.write_scalars(step, {f"val/{k}": v for k, v in val.items()})
  return val
