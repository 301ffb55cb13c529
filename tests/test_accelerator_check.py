"""benchmarks/accelerator_check.py: the short check on the CPU, and its part runner."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from benchmarks import accelerator_check
from tests import tf_blocker

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("device", "pytest", "train_throughput_float32", "train_throughput_bfloat16",
         "eval_speed", "compare_torch_float32", "compare_torch_bfloat16")


def _positive_numbers(tree):
  """Every int or float in `tree` (bools and strings left out)."""
  if isinstance(tree, dict):
    for value in tree.values():
      yield from _positive_numbers(value)
  elif isinstance(tree, (list, tuple)):
    for value in tree:
      yield from _positive_numbers(value)
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    yield tree


@pytest.mark.slow
def test_short_check_on_cpu(tmp_path):
  """The short check, where TensorFlow cannot be imported (as on the GPU image): the step
  benchmarks, inference and eval_speed need JAX alone."""
  out = tmp_path / "check.json"
  env = tf_blocker.blocked_env(tmp_path, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "benchmarks.accelerator_check", "--short",
                         f"--out={out}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=600, check=False)
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
  assert tf_blocker.VIOLATION not in proc.stderr
  assert result["script"] == "accelerator_check" and result["variant"] == "short"
  assert result["backend"] == "cpu" and result["device_kind"] and result["devices"] >= 1
  assert set(result["parts"]) == set(PARTS)
  for name, part in result["parts"].items():
    assert part["status"] in ("ok", "skipped"), (name, part)
    assert part["seconds"] >= 0
    if part["status"] == "skipped":
      assert part["reason"]
  parts = result["parts"]
  for name in ("device", "pytest", "train_throughput_float32", "train_throughput_bfloat16",
               "eval_speed"):
    assert parts[name]["status"] == "ok", (name, parts[name])   # none needs more than JAX
  assert parts["pytest"]["passed"] > 0 and parts["pytest"]["failed"] == 0
  for name in ("train_throughput_float32", "train_throughput_bfloat16"):
    figures = parts[name]["figures"]
    assert figures and all(f["median"] > 0 for f in figures.values())
    assert all(v > 0 for v in parts[name]["inference_patches_per_s"].values())
  triplet = parts["train_throughput_float32"]["figures"]["l2net_triplet_train_b4"]
  assert triplet["conv_bound"] > 0 and triplet["conv_bound_fraction"] > 0
  assert all(parts["eval_speed"][k] > 0 for k in ("verification_s", "matching_s",
                                                  "retrieval_s", "total_s"))
  for name in ("compare_torch_float32", "compare_torch_bfloat16"):
    if parts[name]["status"] == "ok":
      assert all(x > 0 for x in _positive_numbers(parts[name]["figures"]))
  written = json.loads(out.read_text())
  assert written["parts"] == result["parts"] and set(written["raw"]) == set(PARTS)


def _python(code: str) -> list[str]:
  return [sys.executable, "-c", textwrap.dedent(code)]


def test_failing_and_hanging_parts_are_reported(capsys):
  Part = accelerator_check.Part
  parts = [
      Part("fine", lambda ctx: _python('print("noise"); print(\'{"x": 3}\')'), 60,
           lambda out: {"x": out["x"]}),
      Part("exits_1", lambda ctx: _python("import sys; print('{}'); sys.exit(1)"), 60),
      # The part and a process it started both hang: the whole group is ended.
      Part("hangs", lambda ctx: _python("""
          import subprocess, sys, time
          subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
          time.sleep(120)"""), 2),
      Part("no_json", lambda ctx: _python("print('done')"), 60),
      Part("says_skipped", lambda ctx: _python(
          'print(\'{"skipped": true, "reason": "no yardstick"}\')'), 60),
      Part("not_run", lambda ctx: "nothing to compare with", 60),
      Part("bad_prepare", lambda ctx: ctx["missing"], 60),
      Part("bad_output", lambda ctx: _python("print('{\"y\": 1}')"), 60,
           lambda out: {"x": out["x"]}),
      Part("sees_context", lambda ctx: _python(f"print('{{\"x\": {ctx['fine']['x'] + 1}}}')"),
           60, lambda out: {"x": out["x"]}),
  ]
  began = time.monotonic()
  final = accelerator_check.run_check(parts, budget_s=120, variant="test")
  assert time.monotonic() - began < 60
  printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert printed == final
  p = final["parts"]
  assert p["fine"]["status"] == "ok" and p["fine"]["x"] == 3
  assert p["exits_1"]["status"] == "failed" and "exit status 1" in p["exits_1"]["reason"]
  assert p["hangs"]["status"] == "failed" and "timed out" in p["hangs"]["reason"]
  assert p["no_json"]["status"] == "failed" and "no JSON" in p["no_json"]["reason"]
  assert p["says_skipped"] == {**p["says_skipped"], "status": "skipped",
                               "reason": "no yardstick"}
  assert p["not_run"]["status"] == "skipped"
  assert p["not_run"]["reason"] == "nothing to compare with"
  assert p["bad_prepare"]["status"] == "failed" and "KeyError" in p["bad_prepare"]["reason"]
  assert p["bad_output"]["status"] == "failed"
  assert p["sees_context"]["status"] == "ok" and p["sees_context"]["x"] == 4
  assert final["backend"] is None   # no device part ran


def test_spent_budget_skips_the_remaining_parts(capsys, monkeypatch):
  monkeypatch.setattr(accelerator_check, "MIN_START_S", 1.0)
  Part = accelerator_check.Part
  sleep = Part("sleeps", lambda ctx: _python("import time; time.sleep(60)"), 600)
  after = Part("after", lambda ctx: _python("print('{}')"), 60)
  final = accelerator_check.run_check([sleep, after], budget_s=2.5)
  capsys.readouterr()
  assert final["parts"]["sleeps"]["status"] == "failed"
  assert "budget" in final["parts"]["sleeps"]["reason"]
  assert final["parts"]["after"]["status"] == "skipped"
  assert "budget" in final["parts"]["after"]["reason"]


def test_pytest_summary_parsing():
  text = textwrap.dedent("""
      ..F.E
      =========================== short test summary info ============================
      FAILED tests/test_losses.py::test_x[0] - AssertionError: assert 1 == 2
      ERROR tests/evaluation/test_kernels.py - ModuleNotFoundError: No module named 'hypothesis'
      1 failed, 3 passed, 2 deselected, 1 error in 4.20s
      """)
  summary = accelerator_check.pytest_summary(text)
  assert (summary["passed"], summary["failed"], summary["errors"], summary["deselected"]) == (
      3, 1, 1, 2)
  assert summary["failed_tests"] == ["tests/test_losses.py::test_x[0]"]
  assert summary["error_tests"][0].startswith("tests/evaluation/test_kernels.py")
  assert summary["summary"] == "1 failed, 3 passed, 2 deselected, 1 error in 4.20s"


def test_marked_modules_import_without_tensorflow():
  """What the pytest part collects imports on a machine without TensorFlow."""
  files = accelerator_check.marked_test_files()
  assert {"tests/test_losses.py", "tests/train/test_steps.py", "tests/models/test_models.py",
          "tests/evaluation/test_kernels.py"} <= set(files)
  assert set(accelerator_check.SHORT_TESTS) <= set(files)
  modules = [f[:-3].replace(os.sep, ".") for f in files] + ["tests.conftest"]
  code = textwrap.dedent(f"""
      import importlib, sys
      for name in ("tensorflow", "tensorflow_datasets", "tensorboard"):
        sys.modules[name] = None     # `import` fails, find_spec answers None
      for module in {modules!r}:
        importlib.import_module(module)
      print("ok")
      """)
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=300, check=False,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_pytest_child_reports_failures_and_reruns_them(tmp_path):
  test_file = tmp_path / "test_tiny.py"
  test_file.write_text(textwrap.dedent("""
      import os
      import pytest

      pytestmark = pytest.mark.any_backend

      def test_passes():
        pass

      def test_needs_highest_precision():
        assert os.environ.get("JAX_DEFAULT_MATMUL_PRECISION") == "highest"

      @pytest.mark.skip
      def test_skipped():
        pass
      """))
  result = accelerator_check.pytest_child([str(test_file)], rerun_highest=True)
  assert not result["ok"] and result["rc"] == 1
  assert (result["passed"], result["failed"], result["skipped"]) == (1, 1, 1)
  assert [t.split("::")[-1] for t in result["failed_tests"]] == ["test_needs_highest_precision"]
  rerun = result["rerun_highest_precision"]
  assert (rerun["passed"], rerun["failed"]) == (1, 0)


def test_pytest_child_past_its_limit_reports_the_tests_run(tmp_path):
  test_file = tmp_path / "test_slow.py"
  test_file.write_text(textwrap.dedent("""
      import time
      import pytest

      pytestmark = pytest.mark.any_backend

      def test_passes():
        pass

      def test_hangs():
        time.sleep(120)
      """))
  began = time.monotonic()
  # The limit leaves a loaded machine time to start pytest and pass the first
  # test; the hang would last 120 s without the interrupt. The test process may
  # ignore SIGINT (started in the background): the child must not inherit that.
  result = accelerator_check.pytest_child([str(test_file)], rerun_highest=False,
                                          time_limit_s=8)
  assert time.monotonic() - began < 100
  assert result["interrupted"] and not result["ok"]
  assert result["passed"] == 1 and "interrupted" in result["reason"]
