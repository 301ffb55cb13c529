"""Input to step: the real tf.data pipeline through host-to-device transfer into the step.

For each task of --tasks, builds what `loop.train_and_evaluate` builds: the
experiment config (its `:smoke` variant, on the embedded dataset, with
--batch as the global batch), the ("data",) mesh of
`sharding.data_parallel_size`, the Recipe (`recipes.get_recipe`), a fresh train
state (replicated) and the jitted step (`sharding.jit_train_step`). Then it
times, after --warmup untimed steps of each:

  * step_only: one device batch re-fed --steps times (the step's own rate,
    as `train_throughput` measures it, but without re-sharding the batch);
  * end_to_end: the training loop's feed, --steps steps:
    `recipe.train_batches` (tf.data -> numpy) -> `sharding.process_rows` ->
    `sharding.prefetch` (two batches copied to the devices ahead of the
    step) -> the step;
  * host_input: the tf.data -> numpy iterator alone (no device), for context.

Steps are dispatched without waiting, as the loop does, and the clock stops
when the last step's state and metrics are ready (`jax.block_until_ready`).
Rates are patches/s (patches per step = batch x patches per example: 3 for
triplets, 2 for HardNet's anchor-positive pairs, 1 for denoiser pairs);
`ratio` is end_to_end / step_only (1.0: the input costs nothing). With
--rounds > 1 the two timings alternate and each figure is the median.

  python -m benchmarks.input_to_step                                  # hardnet, denoiser
  python -m benchmarks.input_to_step --tasks=hardnet,triplet,denoiser --steps=50
  python -m benchmarks.input_to_step --batch=1024 --steps=100         # on an accelerator

Tasks: hardnet (experiments/configs/hardnet.py: L2-Net, hardest-in-batch
loss), triplet (descriptor.py: the seed's triplet loss), denoiser
(denoiser.py: shallow UNet, MAE). The embedded dataset (generated on first
use, cached) is the smallest whose training split holds --batch distinct
labels (the descriptor tasks draw distinct labels per batch): smoke up to
batch 100, small up to 1,000, medium beyond; --embedded_size overrides.

Needs TensorFlow (tf.data). Without it, prints one JSON line with
"skipped": true and the reason, and exits 0.
"""

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

TASK_CONFIGS = {   # --tasks name -> config module of experiments/configs
    "hardnet": "hardnet",
    "triplet": "descriptor",
    "denoiser": "denoiser",
}
# Embedded sizes by the largest batch their training split of split a holds
# (distinct labels): smoke 120 labels, small 1,050, medium 11,500.
_SIZE_FOR_BATCH = ((100, "smoke"), (1000, "small"))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", default="hardnet,denoiser",
                 help=f"comma-separated subset of {','.join(TASK_CONFIGS)}")
  p.add_argument("--batch", type=int, default=50, help="global batch (examples per step)")
  p.add_argument("--steps", type=int, default=20, help="timed steps per figure")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps before each timing")
  p.add_argument("--rounds", type=int, default=1,
                 help="alternated step_only / end_to_end timings; medians reported")
  p.add_argument("--prefetch", type=int, default=2, help="batches in flight (sharding.prefetch)")
  p.add_argument("--embedded_size", default="auto",
                 help="embedded dataset size (smoke, small, medium, large) or auto")
  args = p.parse_args(argv)
  args.tasks = [t for t in args.tasks.split(",") if t]
  unknown = sorted(set(args.tasks) - set(TASK_CONFIGS))
  if unknown or not args.tasks:
    p.error(f"--tasks: unknown {unknown}; known: {','.join(TASK_CONFIGS)}")
  for name in ("batch", "steps", "rounds", "prefetch"):
    if getattr(args, name) < 1:
      p.error(f"--{name}: expected >= 1, found {getattr(args, name)}")
  if args.warmup < 0:
    p.error(f"--warmup: expected >= 0, found {args.warmup}")
  if args.embedded_size == "auto":
    args.embedded_size = next((size for limit, size in _SIZE_FOR_BATCH if args.batch <= limit),
                              "medium")
  return args


def _missing_tensorflow() -> str | None:
  """Why the tf.data pipelines cannot be imported here, or None if they can."""
  if importlib.util.find_spec("tensorflow") is None:
    return "TensorFlow is not installed (the tf.data input pipeline needs it)"
  try:
    importlib.import_module("nhp_jax.data.pipelines")
  except ImportError as e:
    return f"the tf.data input pipeline cannot be imported: {e}"
  return None


def _config(name: str, args):
  module = importlib.import_module(f"experiments.configs.{TASK_CONFIGS[name]}")
  c = module.get_config("smoke")
  c.data.embedded_size = args.embedded_size
  c.data.max_train_labels = 0           # every training label of the embedded split
  c.training.batch_size = args.batch
  if "descriptor" in c:                 # enough triplets (pairs) per epoch for a few epochs' worth
    c.descriptor.examples_per_epoch = args.batch * (args.steps + args.warmup + args.prefetch + 2)
  return c


def _wait(state, metrics) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  jax.block_until_ready((state, metrics))


def measure_task(name: str, args) -> dict:
  """Builds task `name` as the training loop does and times its step both ways."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from nhp_jax.train import config_validation  # pylint: disable=import-outside-toplevel
  from nhp_jax.train import sharding  # pylint: disable=import-outside-toplevel
  from nhp_jax.train import state as state_lib  # pylint: disable=import-outside-toplevel
  from nhp_jax.train import recipes  # pylint: disable=import-outside-toplevel

  config = _config(name, args)
  config_validation.validate(config)
  config_validation.validate(config, device_count=jax.device_count())
  began = time.perf_counter()
  mesh = sharding.make_mesh(sharding.data_parallel_size(config.training.batch_size,
                                                        config.parallel.num_devices))
  recipe = recipes.get_recipe(config, None)
  total_steps = max(config.training.num_epochs * recipe.steps_per_epoch,
                    args.rounds * 2 * (args.steps + args.warmup) + 1)
  model = state_lib.build_model(config)

  def init():
    return state_lib.create_train_state(config, model, jax.random.PRNGKey(config.seed),
                                        jnp.zeros((1, 32, 32, 1), jnp.float32), total_steps)

  state = sharding.replicate(recipe.prepare(jax.jit(init)()), mesh)
  step = sharding.jit_train_step(recipe.train_step, mesh)
  patches = args.batch * recipe.patches_per_example
  build_s = time.perf_counter() - began

  def host_batches(start_step: int):
    return map(sharding.process_rows, recipe.train_batches(start_step, args.batch, config.seed))

  # Compile on the first batch (not timed).
  began = time.perf_counter()
  fixed = sharding.shard_batch(next(host_batches(0)), mesh)
  state, metrics = step(state, fixed)
  _wait(state, metrics)
  compile_s = time.perf_counter() - began

  def step_only(state):
    for _ in range(args.warmup):
      state, metrics = step(state, fixed)
    if args.warmup:
      _wait(state, metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
      state, metrics = step(state, fixed)
    _wait(state, metrics)
    return state, time.perf_counter() - start

  def end_to_end(state, start_step):
    # A fresh stream, as a (resumed) run starts one; its start-up is in the warm-up.
    batches = sharding.prefetch(host_batches(start_step), mesh, size=args.prefetch)
    try:
      for _ in range(args.warmup):
        state, metrics = step(state, next(batches))
      if args.warmup:
        _wait(state, metrics)
      start = time.perf_counter()
      for _ in range(args.steps):
        state, metrics = step(state, next(batches))
      _wait(state, metrics)
      return state, time.perf_counter() - start
    finally:
      batches.close()   # its tf.data iterator stops gathering before the next timing

  def host_input(start_step):
    batches = host_batches(start_step)
    for _ in range(max(args.warmup, 1)):   # the iterator's start-up is not timed
      next(batches)
    start = time.perf_counter()
    for _ in range(args.steps):
      next(batches)
    return time.perf_counter() - start

  times = {"step_only": [], "end_to_end": []}
  for r in range(args.rounds):
    order = ("step_only", "end_to_end") if r % 2 == 0 else ("end_to_end", "step_only")
    for kind in order:
      if kind == "step_only":
        state, seconds = step_only(state)
      else:
        state, seconds = end_to_end(state, 1 + r * (args.steps + args.warmup))
      times[kind].append(seconds)
  host_s = host_input(0)

  def rate(seconds: float) -> float:
    return args.steps * patches / seconds

  figures = {kind: round(statistics.median(rate(s) for s in ts), 1) for kind, ts in times.items()}
  out = {
      "unit": "patches/s", "config": f"experiments/configs/{TASK_CONFIGS[name]}.py:smoke",
      "loss": config.descriptor.loss if "descriptor" in config else "mae",
      "batch": args.batch, "patches_per_step": patches, "devices_used": mesh.size,
      "step_only": figures["step_only"], "end_to_end": figures["end_to_end"],
      "ratio": round(figures["end_to_end"] / figures["step_only"], 3),
      "step_only_ms": round(1e3 * statistics.median(times["step_only"]) / args.steps, 2),
      "end_to_end_ms": round(1e3 * statistics.median(times["end_to_end"]) / args.steps, 2),
      "host_input": round(rate(host_s), 1),
      "build_s": round(build_s, 2), "compile_s": round(compile_s, 2),
  }
  if args.rounds > 1:
    out["rounds"] = {kind: [round(rate(s), 1) for s in ts] for kind, ts in times.items()}
  return out


def main(argv=None) -> None:
  args = parse_args(argv)
  start = time.perf_counter()
  header = {"script": "input_to_step",
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version()}
  reason = _missing_tensorflow()
  if reason:
    print(f"input_to_step: {reason}: skipped", file=sys.stderr)
    print(json.dumps({**header, "skipped": True, "reason": reason}))
    return
  from nhp_jax import platform as nhp_platform  # pylint: disable=import-outside-toplevel
  nhp_platform.setup(batch_sizes=[args.batch])   # before JAX's backend starts, as the binaries
  import jax  # pylint: disable=import-outside-toplevel

  results = {}
  for name in args.tasks:
    results[name] = measure_task(name, args)
    print(f"input_to_step: {name} done ({results[name]['ratio']} end-to-end / step-only)",
          file=sys.stderr)
  print(json.dumps({
      **header, "jax": jax.__version__, "backend": jax.default_backend(),
      "device": jax.devices()[0].device_kind, "device_count": jax.device_count(),
      "settings": {"batch": args.batch, "steps": args.steps, "warmup": args.warmup,
                   "rounds": args.rounds, "prefetch": args.prefetch,
                   "embedded_size": args.embedded_size},
      "loadavg": [round(x, 2) for x in os.getloadavg()],
      "wall_s": round(time.perf_counter() - start, 1),
      "tasks": results,
  }))


if __name__ == "__main__":
  main()
