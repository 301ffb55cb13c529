"""nhp_jax vs the PyTorch yardstick, measured alternately in the same minutes, as one JSON line.

Each round runs the PyTorch reference (`../shared/peer-bench/torch_reference.py`
beside the repository, or --torch_script) with --torch_python, and
`benchmarks.train_throughput` (default device setting: what a user gets),
in alternating order (PyTorch first in odd rounds). For every figure it
prints both sides' median over the rounds of the per-run medians, their
min / max over the rounds (the spread), and the ratio nhp_jax / PyTorch
(of the medians, and the median of the per-round ratios). PyTorch's figure
is its faster memory format per run (channels_last unless --torch_layout
says otherwise). The load average before each run is recorded: the figures
are only comparable within one output line.

  python -m benchmarks.compare_torch --rounds=3
  python -m benchmarks.compare_torch --bf16          # bfloat16 on both sides
  python -m benchmarks.compare_torch --torch_python=python3 --torch_device=cuda \
      --batch=50,256,1024 --infer_batch=8192             # on a GPU, both sides on it

If the PyTorch interpreter or script is missing, prints a message and a
JSON line with "skipped".
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from nhp_jax import host_devices

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_SCRIPT = os.path.join(os.path.dirname(_ROOT), "shared", "peer-bench",
                               "torch_reference.py")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--torch_python", default=os.path.expanduser("~/.venvs/torch-peer/bin/python"),
                 help="interpreter with PyTorch: a path, or a name on PATH")
  p.add_argument("--torch_device", choices=("cpu", "cuda"), default="cpu",
                 help="where the PyTorch side runs (nhp_jax runs on JAX's default backend)")
  p.add_argument("--torch_script", default=_DEFAULT_SCRIPT)
  p.add_argument("--torch_layout", choices=("cl", "nchw", "both"), default="cl")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--steps", type=int, default=8, help="timed steps per figure, both sides")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--batch", default="50,256")
  p.add_argument("--infer_batch", type=int, default=1024)
  p.add_argument("--threads", type=int, default=host_devices.usable_cores(),
                 help="PyTorch intra-op threads (default: usable cores)")
  p.add_argument("--devices", default="default",
                 help="nhp_jax host devices, one setting of train_throughput --devices")
  p.add_argument("--bn_passes", type=int, choices=(1, 3), default=3)
  p.add_argument("--bf16", action="store_true",
                 help="PyTorch bf16 autocast vs nhp_jax dtype=bfloat16")
  return p.parse_args(argv)


def _run_json(cmd: list[str], env: dict | None = None) -> dict:
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=_ROOT)
  if proc.returncode:
    raise SystemExit(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode})")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_figures(out: dict) -> dict[str, float]:
  """{figure: median rate}, the faster layout of each figure."""
  best: dict[str, float] = {}
  for name, fig in out["results"].items():
    base = name.rsplit("_", 1)[0]
    best[base] = max(best.get(base, 0.0), fig["median"])
  return best


def _ours_figures(out: dict) -> dict[str, float]:
  (run,) = out["runs"].values()
  return {name: fig["median"] for name, fig in run["results"].items()}


def _spread(values: list[float]) -> dict:
  return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
          "max": round(max(values), 1), "runs": [round(v, 1) for v in values]}


def _commands(args) -> tuple[list[str], list[str]]:
  """The PyTorch reference's command line and train_throughput's, for the same workloads."""
  torch_cmd = [args.torch_python, args.torch_script, "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch", args.batch, "--infer-batch", str(args.infer_batch),
               "--layout", args.torch_layout, "--device", args.torch_device] + (
                   ["--bf16"] if args.bf16 else [])
  ours_cmd = [sys.executable, "-m", "benchmarks.train_throughput", f"--devices={args.devices}",
              f"--steps={args.steps}", f"--warmup={args.warmup}", f"--batch={args.batch}",
              f"--infer_batch={args.infer_batch}", f"--bn_passes={args.bn_passes}",
              "--only=triplet,unet,infer",
              f"--dtype={'bfloat16' if args.bf16 else 'float32'}"]
  return torch_cmd, ours_cmd


def main(argv=None) -> None:
  args = parse_args(argv)
  args.torch_python = shutil.which(args.torch_python) or args.torch_python
  if not (os.path.exists(args.torch_python) and os.path.exists(args.torch_script)):
    print(f"PyTorch yardstick not found ({args.torch_python}, {args.torch_script}): skipped",
          file=sys.stderr)
    print(json.dumps({"script": "compare_torch", "skipped": True}))
    return
  torch_cmd, ours_cmd = _commands(args)
  torch_env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
  rounds, loads = [], []
  start = time.perf_counter()
  for r in range(args.rounds):
    order = ("torch", "ours") if r % 2 == 0 else ("ours", "torch")
    figures, meta = {}, {}
    for side in order:
      loads.append((side, round(os.getloadavg()[0], 2)))
      if side == "torch":
        out = _run_json(torch_cmd, torch_env)
        figures["torch"], meta["torch"] = _torch_figures(out), out["torch"]
      else:
        out = _run_json(ours_cmd)
        figures["ours"] = _ours_figures(out)
        meta["ours"] = next(iter(out["runs"].values()))["xla_flags"]
      print(f"round {r + 1}/{args.rounds}: {side} done", file=sys.stderr)
    rounds.append(figures)

  table = {}
  for name in rounds[0]["ours"]:
    if name not in rounds[0]["torch"]:
      continue
    ours = [f["ours"][name] for f in rounds]
    ref = [f["torch"][name] for f in rounds]
    table[name] = {"nhp_jax": _spread(ours), "torch": _spread(ref),
                   "ratio": round(statistics.median(ours) / statistics.median(ref), 3),
                   "ratio_paired_median": round(statistics.median(
                       o / t for o, t in zip(ours, ref)), 3)}
  print(json.dumps({
      "script": "compare_torch",
      "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "precision": "bfloat16" if args.bf16 else "float32",
      "torch": meta["torch"], "nhp_jax_xla_flags": meta["ours"],
      "settings": {"rounds": args.rounds, "steps": args.steps, "warmup": args.warmup,
                   "threads": args.threads, "devices": args.devices,
                   "bn_passes": args.bn_passes, "torch_layout": args.torch_layout,
                   "torch_device": args.torch_device},
      "load_before_each_run": loads,
      "wall_s": round(time.perf_counter() - start, 1),
      "figures": table,
  }))


if __name__ == "__main__":
  main()
