"""Training and inference throughput of the project's own step functions, as one JSON line.

Times, for each requested host-device count (one subprocess each, since
XLA_FLAGS must be set before JAX is imported):

  * the L2-Net triplet train step (`steps.descriptor_train_step`, SGD lr 0.1,
    dropout on), patches/s = 3 * B / step time, for each B in --batch;
  * the shallow UNet MAE train step (`steps.denoiser_train_step`, SGD
    Nesterov lr 1e-5 momentum 0.9), pairs/s = B / step time;
  * the DnCNN-17 MAE train step of `pretrain_dncnn` (Adam), pairs/s
    (not in the default --only: no PyTorch yardstick runs it);
  * L2-Net inference through `inference.make_describe_fn` (eval mode), one
    call on --infer_batch uint8 patches, patches/s;
  * the evaluator's path: denoise (shallow UNet) -> clip -> uint8 -> L2-Net,
    through `inference.make_describe_fn(denoiser=...)` over
    --infer_blocks blocks of --infer_batch patches, patches/s.

Train steps are jitted with `sharding.jit_train_step` on the ("data",) mesh
that `sharding.data_parallel_size` picks (as the training loop does), and
each timed step includes sharding the host uint8 batch onto the mesh. Every
figure is the median / min / max of the per-step rates. Achieved FLOP/s use
the multiply-add counts of the timed models' convolutions and dense head
(`common.forward_flops`; training = `common.TRAIN_FACTOR` x forward:
forward, input gradient, kernel gradient); on a CPU the fraction of peak
uses cores (`host_devices.usable_cores`) x --flops_per_cycle x the clock in
/proc/cpuinfo. On an accelerator (where a clock-based peak says little for
small convolutions), --roofline adds each train figure's `conv_bound`: the
rate its model's convolutions allow at that batch, each layer timed alone on
one device (`common.model_bound`, as `benchmarks.conv_roofline` times them),
and the step's `conv_bound_fraction` of it.

  python -m benchmarks.train_throughput                     # what a user gets
  python -m benchmarks.train_throughput --devices=1,2,4,8   # scaling table
  python -m benchmarks.train_throughput --bn_passes=1 --dtype=bfloat16
  python -m benchmarks.train_throughput --batch=50,256,1024,4096 --roofline   # on a GPU

Device settings: "default" is what the binaries do
(`platform.setup(batch_sizes=...)`, on a CPU: $NHP_CPU_DEVICES if set,
else the devices the batch is split over, `host_devices.plan_device_count`),
so each training batch size runs in a process of its own, as a training
binary with that batch would, and inference in one with a device per core,
as `evaluate` and `export_descriptors`; a number forces
`--xla_force_host_platform_device_count` for every workload. A setting is
ignored if XLA_FLAGS already names a count. Each figure records the host
devices its process had (`host_devices`) and the devices its batch used.
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from benchmarks import common
from nhp_jax import host_devices

TRAIN_WORKLOADS = ("triplet", "unet", "dncnn")
WORKLOADS = TRAIN_WORKLOADS + ("infer", "describe")
DEFAULT_WORKLOADS = ("triplet", "unet", "infer", "describe")
def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--devices", default="default",
                 help="comma-separated host-device settings: 'default' (as the binaries: "
                      "planned from each batch size) or a count")
  p.add_argument("--batch", default="50,256", help="comma-separated train batch sizes")
  p.add_argument("--bn_passes", type=int, choices=(1, 3), default=3,
                 help="descriptor batch-norm passes (3: the Keras baseline)")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--steps", type=int, default=10, help="timed steps per figure")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps (after compiling)")
  p.add_argument("--infer_batch", type=int, default=1024)
  p.add_argument("--infer_blocks", type=int, default=4,
                 help="blocks per timed call of the denoise -> describe path")
  p.add_argument("--only", default=",".join(DEFAULT_WORKLOADS),
                 help=f"comma-separated subset of {','.join(WORKLOADS)}")
  p.add_argument("--flops_per_cycle", type=float, default=64.0,
                 help="fp32 FLOP per cycle per core for the CPU peak (2 x 512-bit FMA = 64)")
  p.add_argument("--roofline", action="store_true",
                 help="also time each train figure's model layer by layer "
                      "(benchmarks.conv_roofline) and report the step's fraction of that bound")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  unknown = set(args.only.split(",")) - set(WORKLOADS)
  if unknown:
    p.error(f"--only: unknown workloads {sorted(unknown)}; known: {','.join(WORKLOADS)}")
  return args


def _summary(times: list[float], items: int, flops_per_item: float, peak: float | None) -> dict:
  """Median / min / max rate of the per-step times; the fraction of `peak` FLOP/s where known."""
  rates = [items / t for t in times]
  median = statistics.median(rates)
  summary = {"median": round(median, 1), "min": round(min(rates), 1),
             "max": round(max(rates), 1),
             "median_step_ms": round(1000 * statistics.median(times), 2), "steps": len(times),
             "gflops": round(median * flops_per_item / 1e9, 1)}
  if peak:
    summary["peak_fraction"] = round(median * flops_per_item / peak, 3)
  return summary


def clock_hz() -> float:
  """The first 'cpu MHz' of /proc/cpuinfo in Hz (0 where there is none)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("cpu MHz"):
          return float(line.split(":")[1]) * 1e6
  except OSError:
    pass
  return 0.0


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def run_child(args) -> dict:
  """Runs the workloads in this process; returns the results.

  The process is set up as the training binaries set theirs up
  (`nhp_jax.platform.setup()`, before JAX's backend starts), so the
  figures follow whatever that does.
  """
  from nhp_jax import platform as nhp_platform
  nhp_platform.setup(
      batch_sizes=[int(x) for x in args.batch.split(",") if x]
      if set(args.only.split(",")) & set(TRAIN_WORKLOADS) else None)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from experiments.configs import denoiser as denoiser_config
  from experiments.configs import descriptor as descriptor_config
  from experiments.configs import dncnn_pretrain as dncnn_config
  from nhp_jax import inference
  from nhp_jax.models import get_model
  from nhp_jax.train import sharding
  from nhp_jax.train import state as state_lib
  from nhp_jax.train import steps

  cores = host_devices.usable_cores()
  # The clock-based peak describes a CPU only; on an accelerator --roofline is the measure.
  peak = (cores * args.flops_per_cycle * (clock_hz() or 1.0)
          if jax.default_backend() == "cpu" else None)
  rng = np.random.default_rng(0)
  only = set(args.only.split(","))
  results = {}

  def train_figure(config, step_fn, keys, batch, items_per_example):
    config.dtype = args.dtype
    mesh = sharding.make_mesh(sharding.data_parallel_size(batch))
    model = state_lib.build_model(config)
    layers = common.model_layers(model)
    state = state_lib.create_train_state(config, model, jax.random.PRNGKey(0),
                                         jnp.zeros((1, 32, 32, 1)), 1000)
    state = sharding.replicate(state, mesh)
    host = {k: rng.integers(0, 256, (batch, 32, 32, 1), dtype=np.uint8) for k in keys}
    step = sharding.jit_train_step(step_fn, mesh)
    box = [state]

    def one():
      box[0], metrics = step(box[0], sharding.shard_batch(host, mesh))
      jax.block_until_ready(metrics["loss"])

    one()  # compile
    figure = dict(host_devices=jax.device_count(), devices_used=mesh.size, **_summary(
        common.timed(one, args.warmup, args.steps), items_per_example * batch,
        common.TRAIN_FACTOR * sum(layer.forward_flops for layer in layers), peak))
    if args.roofline:
      # The bound counts examples of one pass: patches for L2-Net, pairs for the UNet,
      # the same units as the figure.
      bound = common.model_bound(layers, batch, dtype, args.steps, args.warmup)
      figure["conv_bound"] = bound["examples_per_s"]
      figure["conv_bound_fraction"] = round(figure["median"] / bound["examples_per_s"], 3)
    return figure

  dtype = state_lib.DTYPES[args.dtype]
  pairs = ("noisy", "clean")
  # workload -> (figure name, unit, config module, step, batch keys, items per example);
  # the FLOP per item are counted from the model the config builds.
  train_specs = {
      "triplet": ("l2net_triplet_train", "patches/s", descriptor_config,
                  functools.partial(steps.descriptor_train_step, bn_passes=args.bn_passes),
                  ("anchor", "positive", "negative"), 3),
      "unet": ("unet_train", "pairs/s", denoiser_config, steps.denoiser_train_step, pairs, 1),
      "dncnn": ("dncnn17_train", "pairs/s", dncnn_config, steps.denoiser_train_step, pairs, 1),
  }
  for b in (int(x) for x in args.batch.split(",") if x):
    for workload in (w for w in TRAIN_WORKLOADS if w in only):
      name, unit, config_module, step_fn, keys, per_example = train_specs[workload]
      results[f"{name}_b{b}"] = dict(unit=unit, **train_figure(
          config_module.get_config(), step_fn, keys, b, per_example))

  nb = args.infer_batch
  kwargs = {} if args.dtype == "float32" else {"dtype": dtype}
  l2net = get_model("l2net", **kwargs)
  l2net_vars = l2net.init(jax.random.PRNGKey(1), jnp.zeros((1, 32, 32, 1)))
  if "infer" in only:
    fn = inference.make_describe_fn(l2net, l2net_vars, nb)
    x = rng.integers(0, 256, (nb, 32, 32, 1), dtype=np.uint8)
    fn(x)
    results[f"l2net_infer_b{nb}"] = dict(unit="patches/s", host_devices=jax.device_count(),
                                         **_summary(
        common.timed(lambda: fn(x), args.warmup, args.steps), nb, common.forward_flops(l2net),
        peak))
  if "describe" in only:
    unet = get_model("unet_shallow", **kwargs)
    unet_vars = unet.init(jax.random.PRNGKey(2), jnp.zeros((1, 32, 32, 1)))
    fn = inference.make_describe_fn(l2net, l2net_vars, nb, denoiser=(unet, unet_vars))
    x = rng.integers(0, 256, (nb * args.infer_blocks, 32, 32, 1), dtype=np.uint8)
    fn(x)
    results[f"denoise_describe_b{nb}"] = dict(unit="patches/s", host_devices=jax.device_count(),
                                              **_summary(
        common.timed(lambda: fn(x), args.warmup, max(args.steps // 2, 3)), x.shape[0],
        common.forward_flops(l2net) + common.forward_flops(unet), peak))
  return {"jax": jax.__version__, "backend": jax.default_backend(),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "device": jax.devices()[0].device_kind, "device_count": jax.device_count(),
          "peak_gflops": round(peak / 1e9, 1) if peak else None,
          "results": results}


def _child_jobs(args, devices: str) -> list[list[str]]:
  """Extra child arguments, one list per process: 'default' gives each training batch size
  a process (the devices planned for it) and inference one more; a count, one for all."""
  only = args.only.split(",")
  if devices != "default":
    return [[]]
  train = ",".join(w for w in only if w in TRAIN_WORKLOADS)
  infer = ",".join(w for w in only if w not in TRAIN_WORKLOADS)
  jobs = [[f"--batch={b}", f"--only={train}"] for b in args.batch.split(",") if b and train]
  return jobs + ([["--batch=", f"--only={infer}"]] if infer else [])


def _child_env(devices: str) -> dict:
  """Environment of the subprocess for one device setting, read by `host_devices`."""
  env = dict(os.environ)
  if devices != "default":
    env["NHP_CPU_DEVICES"] = devices
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
  return env


def _forwarded(args) -> list[str]:
  """The parent's arguments for its children (all but --devices and --child)."""
  out = []
  for k, v in vars(args).items():
    if k in ("devices", "child") or v is False:
      continue
    out.append(f"--{k}" if v is True else f"--{k}={v}")
  return out


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.child:
    print(json.dumps(run_child(args)))
    return
  forwarded = _forwarded(args)
  runs = {}
  start = time.perf_counter()
  for devices in args.devices.split(","):
    runs[devices] = None
    for extra in _child_jobs(args, devices):
      proc = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", "--child",
                             *forwarded, *extra], env=_child_env(devices),
                            stdout=subprocess.PIPE, text=True)
      if proc.returncode:
        raise SystemExit(f"train_throughput child for devices={devices} {extra} failed "
                         f"(exit {proc.returncode})")
      run = json.loads(proc.stdout.strip().splitlines()[-1])
      if runs[devices] is None:
        runs[devices] = run
      else:
        runs[devices]["results"].update(run["results"])
    print(f"done devices={devices}", file=sys.stderr)
  print(json.dumps({
      "script": "train_throughput",
      "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "python": platform.python_version(),
      "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
      "affinity": sorted(os.sched_getaffinity(0)), "clock_mhz": round(clock_hz() / 1e6),
      "flops_per_cycle": args.flops_per_cycle,
      "settings": {"bn_passes": args.bn_passes, "dtype": args.dtype, "batch": args.batch,
                   "roofline": args.roofline,
                   "steps": args.steps, "warmup": args.warmup,
                   "infer_batch": args.infer_batch, "infer_blocks": args.infer_blocks},
      "loadavg": os.getloadavg(),
      "wall_s": round(time.perf_counter() - start, 1),
      "runs": runs,
  }))


if __name__ == "__main__":
  main()
