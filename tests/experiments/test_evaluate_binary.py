"""experiments.evaluate in descriptor-folder mode: inputs validated first, tables and JSON out."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.evaluation import tiny_data
from nhp_jax.errors import CheckpointError, ConfigError, DescriptorError, TaskFileError
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import report
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import types

REPO = pathlib.Path(__file__).resolve().parents[2]
COUNTS = {"i_one": 9, "v_two": 14, "i_three": 6}


@pytest.fixture
def dataset(tmp_path):
  """A data root (ref.png stacks + splits.json) and a descriptor export of its test sequences."""
  rng = np.random.default_rng(0)
  data = tmp_path / "data"
  offsets = tiny_data.write_data_root(data, COUNTS, rng)
  descs = types.DescriptorSet(tuple(COUNTS), offsets,
                              rng.standard_normal((int(offsets[-1]), 16, 8)).astype(np.float32))
  descriptor_io.write_descriptor_folder(descs, tmp_path / "descs")
  return data, tmp_path / "descs", descs


class StandIns:
  """Kernel stand-ins that record what they were given."""

  def __init__(self):
    self.calls = []

  def __call__(self):
    def scorer(task):
      def score(descs, verif, retr, metric):
        self.calls.append((task, descs, verif, retr, metric))
        levels = {"verification": {"inter": {"ap": 0.5, "auc": 0.6},
                                   "intra": {"ap": 0.4, "auc": 0.7}},
                  "matching": {"ap": 0.2, "success": 0.3, "per_sequence": {}},
                  "retrieval": {"ap": 0.1, "per_pool": {"100": 0.1}}}[task]
        return {"mAP": {"verification": 0.45, "matching": 0.2, "retrieval": 0.1}[task],
                "levels": {lv: levels for lv in "eht"}}
      return score
    return {t: scorer(t) for t in types.BENCHMARKS}


def test_descriptor_mode_scores_and_writes_json(dataset, tmp_path):
  data, descs_dir, descs = dataset
  stand_ins = StandIns()
  out = tmp_path / "out" / "results.json"
  doc = runner.run(descriptors_dir=str(descs_dir), split="a", data_dir=str(data), n_pairs=120,
                   json_out=str(out), scorers=stand_ins())
  assert [c[0] for c in stand_ins.calls] == ["verification", "matching", "retrieval"]
  _, got, verif, retr, metric = stand_ins.calls[0]
  assert np.array_equal(got.descs, descs.descs) and got.sequences == descs.sequences
  assert len(verif.positives) == 120 and metric == "l2"
  assert retr.queries.shape[1] == 2 and len(retr.queries) > 0
  assert json.loads(out.read_text()) == doc
  assert doc["verification"] == 0.45 and doc["details"]["meta"]["split"] == "a"
  assert doc["details"]["meta"]["verification_pairs"] == 120
  assert "wall_time_s" in doc["details"]["retrieval"]
  printed = report.format_tables(doc)   # what the binary prints
  assert "Verification task results:" in printed and "Verification: mAP 0.45" in printed
  assert "Headline:" in printed
  assert os.path.isdir(data / ".nhp_cache" / "tasks")  # generated task files cached by the data


def test_only_requested_tasks_run(dataset):
  data, descs_dir, _ = dataset
  stand_ins = StandIns()
  doc = runner.run(descriptors_dir=str(descs_dir), data_dir=str(data), tasks=["matching"],
                   scorers=stand_ins())
  assert [c[0] for c in stand_ins.calls] == ["matching"]
  assert stand_ins.calls[0][2] is None and stand_ins.calls[0][3] is None
  assert doc["verification"] is None and doc["matching"] == 0.2


def test_bad_inputs_fail_before_any_scoring(dataset):
  data, descs_dir, _ = dataset
  stand_ins = StandIns()
  (descs_dir / "v_two" / "h2.csv").write_text("1,2,3,4,5,6,7,nan\n" * 14)
  with pytest.raises(DescriptorError, match=r"v_two/h2.csv: line 1, column 8"):
    runner.run(descriptors_dir=str(descs_dir), data_dir=str(data), scorers=stand_ins())
  with pytest.raises(TaskFileError, match=r"splits.json: unknown split 'z'; known splits: a"):
    runner.run(descriptors_dir=str(descs_dir), data_dir=str(data), split="z",
               scorers=stand_ins())
  with pytest.raises(ConfigError, match="tasks: expected a non-empty subset"):
    runner.run(descriptors_dir=str(descs_dir), data_dir=str(data), tasks=["speed"])
  with pytest.raises(CheckpointError, match="expected a descriptor training workdir"):
    runner.run(workdir=str(data))
  with pytest.raises(ConfigError, match="pass --descriptors_dir"):
    runner.run()
  with pytest.raises(ConfigError, match="n_pairs: expected at least 1"):
    runner.run(descriptors_dir=str(descs_dir), data_dir=str(data), n_pairs=0,
               scorers=stand_ins())
  assert stand_ins.calls == []


def _binary(*args, timeout=240):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "experiments.evaluate", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, env=env)


def _one_error_line(proc):
  """Exit status 2, no traceback, and one line saying what was wrong."""
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines()
            if line.startswith(("evaluate: error: ", "compare: error: "))]
  assert len(errors) == 1, proc.stderr
  return errors[0]


def test_binary_reports_bad_input_clearly(dataset):
  data, descs_dir, _ = dataset
  os.remove(descs_dir / "i_three" / "t4.csv")
  line = _one_error_line(_binary(f"--descriptors_dir={descs_dir}", f"--data_dir={data}"))
  assert "DescriptorError" in line and "missing 1: i_three/t4.csv" in line


@pytest.mark.parametrize("args,message", [
    (["--dist=L3"], "--dist: expected one of l1, l2 in any case (L2, L1 as the official "
                    "--dist), found 'L3'"),
    (["--metric=cosine"], "--metric: expected one of l1, l2"),
    (["--descr-dir", "x", "--descr-name", "s", "--task=speed"], "--task: expected verification, "
                                                             "matching, retrieval, found 'speed'"),
    (["--bogus=1"], "Unknown command line flag 'bogus'"),
])
def test_binary_bad_flags_exit_2_with_one_line(args, message):
  line = _one_error_line(_binary(*args, timeout=60))
  assert message in line


# Parses each argv (JSON list of lists) as the binary would and prints runner.run's arguments
# or the error: one process for many cases (absl flags are process-global).
_FLAG_HARNESS = """
import json, sys
from absl import flags
from experiments import evaluate
from nhp_jax import errors
out = []
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(["evaluate"] + argv)
    out.append(evaluate.run_arguments())
  except (errors.NhpError, flags.Error) as e:
    out.append(str(e))
print(json.dumps(out))
"""


def test_official_flags_map_to_the_runner():
  cases = {
      "dashes": ["--descr-name=sift", "--descr-dir=D", "--task=verification", "--task=retrieval",
                 "--dist=L2", "--delimiter=;", "--split=full", "--results-dir=R"],
      "spaces": ["--descr-name", "sift", "--descr-dir", "D", "--task", "matching", "--dist", "l1",
                 "--results-dir", "R", "--delimiter", ","],
      "underscores": ["--descr_name=sift", "--descr_dir=D", "--results_dir=R", "--dist=L1",
                      "--overwrite", "--curve_points=0", "--pcapl=no"],
      "project": ["--descriptors_dir=D/x", "--tasks=retrieval,matching", "--metric=L2"],
      "label": ["--descriptors_dir=D/x", "--descr-name=mine", "--metric=l1", "--dist=L1"],
      "both_tasks": ["--descriptors_dir=D", "--task=matching", "--tasks=matching"],
      "dist_metric": ["--descriptors_dir=D", "--dist=L1", "--metric=L2"],
      "bad_delimiter": ["--descriptors_dir=D", "--delimiter=|"],
      "name_alone": ["--descr-name=sift"],
      "dir_alone": ["--descr-dir=D"],
      "two_dirs": ["--descr-dir=D", "--descr-name=s", "--descriptors_dir=E"],
      "pcapl": ["--descriptors_dir=D", "--pcapl=yes"],
      "curve_points": ["--descriptors_dir=D", "--curve_points=1"],
      "n_pairs": ["--descriptors_dir=D", "--n_pairs=0"],
  }
  proc = subprocess.run([sys.executable, "-c", _FLAG_HARNESS, json.dumps(list(cases.values()))],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = dict(zip(cases, json.loads(proc.stdout)))
  dashes = got["dashes"]
  assert dashes["descriptors_dir"] == os.path.join("D", "sift")
  assert dashes["descriptor_name"] == "sift" and dashes["results_dir"] == "R"
  assert dashes["tasks"] == ["verification", "retrieval"] and dashes["metric"] == "l2"
  assert dashes["split"] == "full"
  spaces = got["spaces"]
  assert (spaces["descriptors_dir"], spaces["tasks"], spaces["metric"], spaces["results_dir"]) == (
      os.path.join("D", "sift"), ["matching"], "l1", "R")
  under = got["underscores"]
  assert under["descriptors_dir"] == os.path.join("D", "sift") and under["metric"] == "l1"
  assert under["overwrite"] is True and under["curve_points"] == 0
  assert under["tasks"] == list(types.BENCHMARKS)
  assert got["project"]["tasks"] == ["retrieval", "matching"] and got["project"]["metric"] == "l2"
  assert got["project"]["descriptor_name"] is None
  assert got["label"]["descriptors_dir"] == "D/x" and got["label"]["descriptor_name"] == "mine"
  assert got["label"]["metric"] == "l1"
  assert got["both_tasks"].startswith("--task and --tasks: expected one of them")
  assert got["dist_metric"] == ("--dist and --metric: expected the same distance, found "
                                "--dist=L1 and --metric=L2")
  assert got["bad_delimiter"] == "--delimiter: expected ',' or ';', found '|'"
  assert got["name_alone"].startswith("--descr-name=sift: expected --descr-dir")
  assert got["dir_alone"].startswith("--descr-dir=D: expected --descr-name too")
  assert got["two_dirs"].startswith("--descr-dir and --descriptors_dir: expected one of them")
  assert got["pcapl"].startswith("--pcapl: expected 'no'")
  assert got["curve_points"].startswith("--curve_points: expected 0 (no curves) or at least 2")
  assert got["n_pairs"].startswith("--n_pairs: expected at least 1 pair")


_KERNELS = all(importlib.util.find_spec(f"nhp_jax.evaluation.{m}")
               for m in ("verification", "matching", "retrieval"))


@pytest.mark.skipif(not _KERNELS, reason="scoring kernels not in this checkout yet")
def test_unknown_metric_fails_before_reading_anything(tmp_path):
  with pytest.raises(ConfigError, match=r"metric: expected one of l1, l2 in any case \(L2, L1 as "
                     r"the official --dist\), found 'cosine'"):
    runner.run(descriptors_dir=str(tmp_path / "never_read"), data_dir=str(tmp_path),
               metric="cosine")


@pytest.mark.skipif(not _KERNELS, reason="scoring kernels not in this checkout yet")
def test_binary_end_to_end_with_kernels(dataset, tmp_path):
  data, descs_dir, _ = dataset
  out = tmp_path / "r.json"
  proc = _binary(f"--descriptors_dir={descs_dir}", f"--data_dir={data}", "--n_pairs=300",
                 f"--json_out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  doc = json.loads(out.read_text())
  for task in types.BENCHMARKS:
    assert 0.0 <= doc[task] <= 1.0
    assert set(doc["details"][task]["levels"]) == {"e", "h", "t"}
  assert "Retrieval task results:" in proc.stdout and "Retrieval: mAP" in proc.stdout


@pytest.mark.skipif(not _KERNELS, reason="scoring kernels not in this checkout yet")
def test_official_flags_cache_and_compare_end_to_end(dataset, tmp_path):
  """hpatches_eval.py's flags score into --results-dir, a rerun reuses it, compare prints it."""
  data, descs_dir, _ = dataset
  results = tmp_path / "results"
  args = ["--descr-name", descs_dir.name, f"--descr-dir={descs_dir.parent}", "--task=matching",
          "--task", "retrieval", "--dist=L2", "--delimiter=,", "--split=a",
          f"--results-dir={results}", f"--data_dir={data}"]
  first = _binary(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  assert sorted(os.listdir(results)) == ["descs_matching_a.json", "descs_retrieval_a.json"]
  again = _binary(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "results of descs, matching task, split a: cached" in again.stderr
  assert "reading descriptors" not in again.stderr
  tables = [line for line in first.stdout.splitlines() if line and not line.startswith("split=")]
  assert [line for line in again.stdout.splitlines() if line in tables] == [
      line for line in tables if "s)" not in line]  # same tables; timings say "from the cache"
  png = tmp_path / "cmp.png"
  cmp = subprocess.run([sys.executable, "-m", "experiments.compare", f"--results-dir={results}",
                        "--task=matching", "--task=retrieval", f"--plot_out={png}",
                        f"--json_out={tmp_path / 'cmp.json'}", "descs"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
  assert cmp.returncode == 0, cmp.stderr[-3000:]
  assert cmp.stdout.splitlines()[0] == "Matching task results:"
  assert "DESCS - mAP" in cmp.stdout and "Retrieval task results:" in cmp.stdout
  start = first.stdout.index("Matching task results:")
  official = first.stdout[start:first.stdout.index("nhp_jax summary")].strip()
  assert cmp.stdout.strip() == official  # one descriptor: the same tables as evaluate printed
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  numbers = json.loads((tmp_path / "cmp.json").read_text())
  assert numbers["descriptors"] == ["descs"] and list(numbers["tasks"]) == ["matching", "retrieval"]
  mean = numbers["tasks"]["matching"]["descs"]["mean"]
  assert f"{mean:g}" in cmp.stdout.split("DESCS - mAP\n")[1].splitlines()[2].split()
  missing = subprocess.run([sys.executable, "-m", "experiments.compare",
                            f"--results-dir={results}", "--descr=descs,other"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
  line = _one_error_line(missing)
  assert "descs_verification_a.json: expected the cached verification results" in line
