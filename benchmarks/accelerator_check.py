"""One prepared accelerator check: every figure and test a new backend needs, as one JSON line.

  python -m benchmarks.accelerator_check [--out=FILE]    # on a GPU / TPU: < 8 minutes
  python -m benchmarks.accelerator_check --short         # tiny sizes: about a minute on 2 CPU cores

Needs only JAX (and pytest for the tests; PyTorch where present). Not
TensorFlow: nothing here imports the tf.data pipelines (`input_to_step`,
which does, is not part of it). Each part runs in a subprocess of its own,
with its own timeout, so a part that fails or hangs is reported and the
check goes on. Parts, in order:

  device      backend, device kind and count, jax / jaxlib versions, one matmul
  pytest      the tests marked `any_backend` (models, losses, train steps,
              evaluation kernels and tasks against the NumPy reference):
              `pytest -m any_backend` over the test modules that carry the
              mark (all of them import without TensorFlow); on an
              accelerator, tests that fail are run once more with
              JAX_DEFAULT_MATMUL_PRECISION=highest (TF32 or bf16 passes of
              float32 matmuls and convolutions are the usual suspect).
              Skipped where pytest is not installed.
  train_throughput_float32 / _bfloat16
              `benchmarks.train_throughput --batch=50,256,1024 --roofline`:
              L2-Net triplet and shallow UNet train steps with each one's
              `conv_bound_fraction`, L2-Net inference and denoise + describe
              (inference patches/s)
  eval_speed  `benchmarks.eval_speed` at split-a scale (59,532 patches x 16)
  compare_torch_float32 / _bfloat16
              `benchmarks.compare_torch --rounds=1` on the same device
              (`--torch_device=cuda` on a GPU), with `python3` if it imports
              torch, else compare_torch's own default interpreter; skipped
              without PyTorch (or, on a GPU, without CUDA in it)

Each part's record holds its figures, "status" ("ok", "failed" or
"skipped", with a "reason" unless ok), "seconds" (wall time, start-up and
compilation included) and, when it failed, the tail of its stderr. Progress
lines go to stderr; the last line of stdout is

  {"script": "accelerator_check", "variant": "full" | "short", "backend": ..., "device_kind": ...,
   "devices": ..., "jax": ..., "python": ..., "date": ..., "wall_s": ..., "parts": {name: {...}}}

--out=FILE writes the same object with "raw" (every part's own JSON line in
full) added. The exit status is 1 if a part failed, else 0.

Time: the parts run under one budget (--budget_s, 450 s for the full check),
so the whole check ends within 8 minutes: a part gets at most what is left
of it, and one that would start with under 20 s left is skipped ("time
budget"). Expected on one H200 (an estimate: no GPU has run it yet): device
~10 s, pytest 1-2.5 min (compilation-bound: 195 tests), each train_throughput
~1.5 min (one process for all batch sizes, since host-device planning is a
CPU matter; 10 timed steps per figure, every layer of the roofline compiled
at three batch sizes), eval_speed ~30 s, each compare_torch ~1.5 min (one
round of 10 steps). If the budget runs out first, the bfloat16 comparison is
the part dropped; --parts reruns any subset.
"""

import argparse
import dataclasses
import glob
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "any_backend"
# The quick marked modules the short variant runs (a few seconds each on a CPU).
SHORT_TESTS = ("tests/test_losses.py", "tests/evaluation/test_hand_cases.py")
MIN_START_S = 20.0        # a part is not started with less of the budget left
STDERR_TAIL = 2000        # characters of a failed part's stderr kept in its record
_TORCH_SCRIPT = os.path.join("peer-bench", "torch_reference.py")


@dataclasses.dataclass(frozen=True)
class Part:
  """One part of the check.

  Attributes:
    name: its key in "parts".
    prepare: the check's context so far ({part name: its JSON}, plus
      "backend") -> the command to run, or a string: why it is skipped.
    timeout_s: its own limit (the budget may cut it shorter).
    summarize: its JSON line -> the figures kept in its record.
  """
  name: str
  prepare: Callable[[dict], "list[str] | str"]
  timeout_s: float
  summarize: Callable[[dict], dict] = lambda out: {}


def _log(message: str) -> None:
  print(f"[accelerator_check] {message}", file=sys.stderr, flush=True)


def _child_env() -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH", "")]))
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def _last_json(text: str) -> dict | None:
  """The last line of `text` that is a JSON object."""
  for line in reversed(text.strip().splitlines()):
    line = line.strip()
    if line.startswith("{"):
      try:
        value = json.loads(line)
      except ValueError:
        continue
      if isinstance(value, dict):
        return value
  return None


def _kill_group(proc: subprocess.Popen) -> None:
  """Ends the part's process group (the part and what it started), TERM first, then KILL."""
  for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
    try:
      os.killpg(proc.pid, sig)
    except ProcessLookupError:
      return
    try:
      proc.wait(timeout=wait)
      return
    except subprocess.TimeoutExpired:
      continue


def _shown(cmd: list[str]) -> str:
  return " ".join(shlex.quote("python" if c == sys.executable else c) for c in cmd)


def run_part(part: Part, context: dict, deadline: float) -> tuple[dict, dict | None]:
  """Runs one part; returns (its record, its JSON line or None). Never raises for the part."""
  start = time.monotonic()

  def record(status: str, **fields) -> dict:
    return {"status": status, "seconds": round(time.monotonic() - start, 1), **fields}

  context["_seconds_left"] = deadline - start
  try:
    cmd = part.prepare(context)
  except Exception as e:  # pylint: disable=broad-except  (reported as the part's failure)
    return record("failed", reason=f"could not prepare: {type(e).__name__}: {e}"), None
  if isinstance(cmd, str):
    return record("skipped", reason=cmd), None
  left = deadline - time.monotonic()
  if left < MIN_START_S:
    return record("skipped", reason=f"time budget: {max(left, 0):.0f} s left",
                  command=_shown(cmd)), None
  timeout = min(part.timeout_s, left)
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_child_env(), stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    timed_out = False
    try:
      proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      timed_out = True
    finally:
      _kill_group(proc)   # also ends anything a finished part left running
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  shown = _shown(cmd)
  tail = stderr[-STDERR_TAIL:]
  if timed_out:
    why = "the check's time budget" if timeout < part.timeout_s else "its timeout"
    return record("failed", reason=f"timed out after {timeout:.0f} s ({why})", command=shown,
                  stderr_tail=tail), _last_json(stdout)
  result = _last_json(stdout)
  if proc.returncode:
    return record("failed", reason=f"exit status {proc.returncode}", command=shown,
                  stderr_tail=tail), result
  if result is None:
    return record("failed", reason="no JSON line on stdout", command=shown,
                  stderr_tail=tail), None
  if result.get("skipped"):
    reason = result.get("reason") or (stderr.strip().splitlines() or ["skipped"])[-1]
    return record("skipped", reason=reason, command=shown), result
  try:
    figures = {k: v for k, v in part.summarize(result).items()
               if k not in ("status", "seconds", "command", "reason", "stderr_tail")}
  except Exception as e:  # pylint: disable=broad-except
    return record("failed", reason=f"unexpected output: {type(e).__name__}: {e}",
                  command=shown), result
  if result.get("ok") is False:
    return record("failed", reason=result.get("reason", "not ok"), command=shown,
                  **figures), result
  return record("ok", command=shown, **figures), result


def run_check(parts: list[Part], *, budget_s: float, variant: str = "full",
              out: str | None = None, context: dict | None = None) -> dict:
  """Runs `parts` in order under one time budget; prints (and returns) the final object."""
  began = time.monotonic()
  deadline = began + budget_s
  context = dict(context or {})
  records, raw = {}, {}
  for i, part in enumerate(parts, 1):
    _log(f"{i}/{len(parts)} {part.name}: started")
    rec, result = run_part(part, context, deadline)
    records[part.name], raw[part.name] = rec, result
    if result is not None:
      context[part.name] = result
    _log(f"{i}/{len(parts)} {part.name}: {rec['status']} ({rec['seconds']} s)"
         + (f": {rec['reason']}" if "reason" in rec else ""))
  device = context.get("device") or {}
  final = {
      "script": "accelerator_check", "variant": variant,
      "backend": device.get("backend"), "device_kind": device.get("device_kind"),
      "devices": device.get("devices"), "jax": device.get("jax"),
      "python": platform.python_version(),
      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "wall_s": round(time.monotonic() - began, 1), "budget_s": budget_s,
      "parts": records,
  }
  print(json.dumps(final), flush=True)
  if out:
    from nhp_jax import atomic  # pylint: disable=import-outside-toplevel  (no JAX import)
    atomic.write_text(out, json.dumps({**final, "raw": raw}, indent=1) + "\n")
  return final


# --- the parts ---------------------------------------------------------------------------

def marked_test_files(root: str = ROOT) -> list[str]:
  """Test modules (relative paths) with a module-level `pytestmark` naming `any_backend`."""
  mark = re.compile(rf"^pytestmark\s*=.*\bpytest\.mark\.{MARKER}\b", re.MULTILINE)
  files = []
  for path in sorted(glob.glob(os.path.join(root, "tests", "**", "test_*.py"), recursive=True)):
    with open(path, encoding="utf-8") as f:
      if mark.search(f.read()):
        files.append(os.path.relpath(path, root))
  return files


def pytest_summary(text: str) -> dict:
  """Counts, failed and erroring node ids, and the summary line of `pytest -q -rfE` output."""
  lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
  counts = {}
  summary = next((line for line in reversed(lines)
                  if re.search(r"\d+ (passed|failed|error|errors|skipped|deselected)\b", line)
                  and " in " in line), "")
  for n, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)",
                            summary):
    counts["errors" if kind.startswith("error") else kind] = int(n)
  return {
      "passed": counts.get("passed", 0), "failed": counts.get("failed", 0),
      "errors": counts.get("errors", 0), "skipped": counts.get("skipped", 0),
      "deselected": counts.get("deselected", 0),
      "failed_tests": [line.split()[1] for line in lines if line.startswith("FAILED ")],
      "error_tests": [line[len("ERROR "):][:300] for line in lines if line.startswith("ERROR ")],
      "summary": summary.strip("= "),
  }


# `python -m pytest` with SIGINT handled again: a parent started in the
# background (`cmd &`, nohup, some pytest-xdist workers) ignores SIGINT, a child
# inherits that, and the time-limit interrupt would end in SIGKILL and no summary.
_PYTEST_WITH_SIGINT = ("import signal, sys; "
                       "signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "import pytest; sys.exit(pytest.main(sys.argv[1:]))")


def _run_pytest(cmd: list[str], env: dict, time_limit_s: float | None) -> tuple[int, str, bool]:
  """(exit status, output, interrupted): past the limit pytest gets SIGINT, after which it
  still prints its summary of the tests run so far (then SIGKILL if it does not end)."""
  with tempfile.TemporaryFile("w+") as out:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    interrupted = False
    try:
      proc.wait(timeout=time_limit_s)
    except subprocess.TimeoutExpired:
      interrupted = True
      proc.send_signal(signal.SIGINT)
      try:
        proc.wait(timeout=20)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.seek(0)
    return proc.returncode, out.read(), interrupted


def pytest_child(files: list[str], rerun_highest: bool, workers: int = 0,
                 time_limit_s: float | None = None) -> dict:
  """Runs `pytest -m any_backend` over `files`: its summary, as the pytest part's JSON line.

  workers > 0: that many pytest-xdist workers where it is installed, each
  allocating accelerator memory as it goes (XLA_PYTHON_CLIENT_PREALLOCATE=false)
  instead of 75% of it up front; the tests are compilation-bound, and
  compilation runs on the host's cores. time_limit_s: pytest is interrupted
  then, and the tests run so far are reported.
  """
  if importlib.util.find_spec("pytest") is None:
    return {"skipped": True, "reason": "pytest is not installed"}
  if not files:
    return {"ok": False, "reason": f"no test module carries the {MARKER} mark"}
  base = [sys.executable, "-c", _PYTEST_WITH_SIGINT, "-q", "-m", MARKER, "-p", "no:cacheprovider",
          "-rfE"]
  env = dict(os.environ)
  if workers and importlib.util.find_spec("xdist") is not None:
    base += ["-n", str(workers)]
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
  else:
    workers = 0
  began = time.monotonic()
  rc, output, interrupted = _run_pytest(base + files, env, time_limit_s)
  result = {"files": files, "workers": workers, **pytest_summary(output), "rc": rc,
            "ok": rc == 0 and not interrupted, "interrupted": interrupted}
  if not result["ok"]:
    result["reason"] = ((f"interrupted after {time_limit_s:.0f} s: " if interrupted else "")
                        + (result["summary"] or f"pytest exit status {rc}"))
    result["output_tail"] = output[-STDERR_TAIL:]
  left = None if time_limit_s is None else time_limit_s - (time.monotonic() - began)
  if rerun_highest and result["failed_tests"] and (left is None or left > 10):
    _, again, _ = _run_pytest(base + result["failed_tests"],
                              dict(env, JAX_DEFAULT_MATMUL_PRECISION="highest"), left)
    rerun = pytest_summary(again)
    result["rerun_highest_precision"] = {k: rerun[k] for k in ("passed", "failed", "errors",
                                                              "failed_tests", "summary")}
  return result


def device_probe() -> dict:
  """The backend as the binaries set it up (`platform.setup()`), and one checked matmul."""
  from nhp_jax import platform as nhp_platform  # pylint: disable=import-outside-toplevel
  nhp_platform.setup()
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel

  devices = jax.devices()
  x = jnp.arange(256 * 256, dtype=jnp.float32).reshape(256, 256) % 7
  matmul_ok = bool(jnp.allclose(x @ jnp.eye(256), x))
  out = {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
         "devices": len(devices), "device_list": [str(d) for d in devices[:16]],
         "process_count": jax.process_count(), "jax": jax.__version__,
         "jaxlib": jaxlib.__version__, "matmul_ok": matmul_ok, "ok": matmul_ok}
  try:
    out["platform_version"] = devices[0].client.platform_version
  except Exception:  # pylint: disable=broad-except  (informative only)
    pass
  try:
    stats = devices[0].memory_stats() or {}
    if "bytes_limit" in stats:
      out["memory_gib"] = round(stats["bytes_limit"] / 2**30, 1)
  except Exception:  # pylint: disable=broad-except
    pass
  return out


def _backend(context: dict) -> str:
  """"cpu", "gpu", "tpu" from the device part; else as judged without starting JAX."""
  if "device" in context:
    return context["device"]["backend"]
  from nhp_jax import platform as nhp_platform  # pylint: disable=import-outside-toplevel
  return nhp_platform.expected_backend()   # "cpu" or "accelerator"


def _settings(short: bool, backend: str) -> dict:
  """Sizes of the train_throughput, compare_torch and eval_speed runs."""
  accelerator = backend != "cpu"
  if short:
    return {"devices": "1", "batch": "4", "steps": 1, "warmup": 0, "infer_batch": 32,
            "infer_blocks": 2, "rounds": 1,
            "eval": ["--sequences=8", "--patches=2000", "--pairs=20000", "--queries=200",
                     "--distractors=400"]}
  # On an accelerator one process runs every batch size (host-device planning is a CPU
  # matter; `--devices=1` only sets the CPU count, which an accelerator process ignores).
  return {"devices": "1" if accelerator else "default", "batch": "50,256,1024", "steps": 10,
          "warmup": 2, "infer_batch": 8192 if accelerator else 1024, "infer_blocks": 4,
          "rounds": 1, "eval": []}


_FIGURE_KEYS = ("unit", "median", "min", "max", "median_step_ms", "gflops", "peak_fraction",
                "conv_bound", "conv_bound_fraction", "devices_used")


def summarize_train_throughput(out: dict) -> dict:
  figures = {}
  for run in out["runs"].values():
    for name, fig in run["results"].items():
      figures[name] = {k: fig[k] for k in _FIGURE_KEYS if k in fig}
  if not figures:
    raise ValueError("no figures")
  run = next(iter(out["runs"].values()))
  return {"device": run["device"], "dtype": out["settings"]["dtype"], "figures": figures,
          "inference_patches_per_s": {k: v["median"] for k, v in figures.items()
                                      if k.startswith(("l2net_infer", "denoise_describe"))}}


def summarize_compare_torch(out: dict) -> dict:
  figures = {name: {"nhp_jax": f["nhp_jax"]["median"], "torch": f["torch"]["median"],
                    "ratio": f["ratio"]} for name, f in out["figures"].items()}
  return {"precision": out["precision"], "torch": out.get("torch"),
          "torch_device": out["settings"]["torch_device"], "figures": figures}


def summarize_eval_speed(out: dict) -> dict:
  keys = ("verification_s", "matching_s", "retrieval_s", "total_s", "peak_rss_mib", "device",
          "mAP", "patches", "pairs", "queries", "distractors")
  return {k: out[k] for k in keys if k in out}


def _torch_script() -> str | None:
  for base in (os.path.join(os.path.dirname(ROOT), "shared"), os.path.join(ROOT, "shared")):
    path = os.path.join(base, _TORCH_SCRIPT)
    if os.path.exists(path):
      return path
  return None


_TORCH_PROBE = ("import json, torch; print(json.dumps({'version': torch.__version__, "
                "'cuda': bool(torch.cuda.is_available())}))")


def find_torch(backend: str) -> tuple[str, str] | str:
  """(interpreter, torch device) for compare_torch, or why it is skipped."""
  if backend not in ("cpu", "gpu"):
    return f"the PyTorch yardstick runs on a CPU or CUDA GPU only (backend {backend})"
  script = _torch_script()
  if script is None:
    return f"PyTorch yardstick script not found (shared/{_TORCH_SCRIPT})"
  candidates = ["python3", os.path.expanduser("~/.venvs/torch-peer/bin/python")]
  for name in candidates:
    python = shutil.which(name) or (name if os.path.exists(name) else None)
    if python is None:
      continue
    try:
      proc = subprocess.run([python, "-c", _TORCH_PROBE], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
      continue
    info = _last_json(proc.stdout) if proc.returncode == 0 else None
    if info is None:
      continue
    if backend == "gpu" and not info["cuda"]:
      return f"PyTorch {info['version']} ({python}) has no CUDA device"
    # compare_torch looks a name up on PATH itself: "python3" as the name, as documented.
    return (name if name == "python3" else python), ("cuda" if backend == "gpu" else "cpu")
  return f"no interpreter imports torch ({', '.join(candidates)})"


def build_parts(short: bool) -> list[Part]:
  """The parts of the check, in the order they run."""
  py = sys.executable
  limits = ({"device": 120, "pytest": 150, "train": 120, "eval": 90, "torch": 150} if short else
            {"device": 120, "pytest": 210, "train": 200, "eval": 150, "torch": 200})

  def pytest_cmd(context):
    files = marked_test_files()
    if short:
      files = [f for f in files if f in SHORT_TESTS]
    accelerator = _backend(context) != "cpu"
    # On an accelerator machine the host's cores compile for several workers at once.
    workers = min(4, (os.cpu_count() or 1) // 4) if accelerator else 0
    # pytest stops itself in time to report what it ran (SIGINT, then its summary).
    limit = max(10.0, min(limits["pytest"], context["_seconds_left"]) - 30)
    return [py, "-m", "benchmarks.accelerator_check", "--pytest_child",
            f"--workers={workers}", f"--time_limit_s={limit:.0f}",
            *(["--rerun_highest"] if accelerator else []), *files]

  def train_cmd(dtype):
    def prepare(context):
      s = _settings(short, _backend(context))
      cmd = [py, "-m", "benchmarks.train_throughput", f"--devices={s['devices']}",
             f"--batch={s['batch']}", f"--steps={s['steps']}", f"--warmup={s['warmup']}",
             f"--infer_batch={s['infer_batch']}", f"--infer_blocks={s['infer_blocks']}",
             f"--dtype={dtype}"]
      if short:   # the smallest run that still covers each code path once
        return cmd + (["--only=triplet,infer", "--roofline"] if dtype == "float32"
                      else ["--only=infer"])
      return cmd + ["--roofline"]
    return prepare

  def torch_cmd(bf16):
    def prepare(context):
      backend = _backend(context)
      if "_torch" not in context:
        context["_torch"] = find_torch(backend)
      found = context["_torch"]
      if isinstance(found, str):
        return found
      python, device = found
      s = _settings(short, backend)
      return [py, "-m", "benchmarks.compare_torch", f"--torch_python={python}",
              f"--torch_device={device}", f"--torch_script={_torch_script()}",
              f"--rounds={s['rounds']}", f"--steps={max(s['steps'], 1)}",
              f"--warmup={s['warmup']}", f"--batch={s['batch']}",
              f"--infer_batch={s['infer_batch']}", f"--devices={s['devices']}"] + (
                  ["--bf16"] if bf16 else [])
    return prepare

  def eval_cmd(context):
    return [py, "-m", "benchmarks.eval_speed", *_settings(short, _backend(context))["eval"]]

  return [
      Part("device", lambda context: [py, "-m", "benchmarks.accelerator_check", "--probe"],
           limits["device"], lambda out: {k: v for k, v in out.items() if k != "ok"}),
      Part("pytest", pytest_cmd, limits["pytest"],
           lambda out: {k: v for k, v in out.items() if k not in ("ok", "reason")}),
      Part("train_throughput_float32", train_cmd("float32"), limits["train"],
           summarize_train_throughput),
      Part("train_throughput_bfloat16", train_cmd("bfloat16"), limits["train"],
           summarize_train_throughput),
      Part("eval_speed", eval_cmd, limits["eval"], summarize_eval_speed),
      Part("compare_torch_float32", torch_cmd(False), limits["torch"], summarize_compare_torch),
      Part("compare_torch_bfloat16", torch_cmd(True), limits["torch"], summarize_compare_torch),
  ]


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--short", action="store_true",
                 help="tiny sizes and a few quick tests (the variant the test suite runs)")
  p.add_argument("--out", default="", help="also write the result (with each part's raw JSON)")
  p.add_argument("--budget_s", type=float, default=None,
                 help="time budget of all parts (default 450 s, --short 300 s)")
  p.add_argument("--parts", default="", help="comma-separated subset of the parts to run")
  p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--pytest_child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--rerun_highest", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--time_limit_s", type=float, default=None, help=argparse.SUPPRESS)
  p.add_argument("files", nargs="*", help=argparse.SUPPRESS)
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.probe:
    out = device_probe()
    print(json.dumps(out))
    return 0 if out["ok"] else 1
  if args.pytest_child:
    print(json.dumps(pytest_child(args.files, args.rerun_highest, args.workers,
                                  args.time_limit_s)))
    return 0
  parts = build_parts(args.short)
  if args.parts:
    wanted = ["device"] + [name for name in args.parts.split(",") if name]   # always: the backend
    unknown = sorted(set(wanted) - {part.name for part in parts})
    if unknown:
      raise SystemExit(f"--parts: unknown {unknown}; known: "
                       f"{','.join(part.name for part in parts)}")
    parts = [part for part in parts if part.name in wanted]
  budget = args.budget_s if args.budget_s is not None else (300.0 if args.short else 450.0)
  final = run_check(parts, budget_s=budget, variant="short" if args.short else "full",
                    out=args.out or None)
  return 1 if any(rec["status"] == "failed" for rec in final["parts"].values()) else 0


if __name__ == "__main__":
  sys.exit(main())
