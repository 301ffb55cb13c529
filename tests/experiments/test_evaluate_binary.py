"""experiments.evaluate in descriptor-folder mode: inputs validated first, tables and JSON out."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nhp_jax.errors import CheckpointError, ConfigError, DescriptorError, TaskFileError
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import types

REPO = pathlib.Path(__file__).resolve().parents[2]
COUNTS = {"i_one": 9, "v_two": 14, "i_three": 6}


@pytest.fixture
def dataset(tmp_path):
  """A data root (ref.png stacks + splits.json) and a descriptor export of its test sequences."""
  rng = np.random.default_rng(0)
  data = tmp_path / "data"
  for name, n in COUNTS.items():
    (data / "hpatches" / name).mkdir(parents=True)
    pixels = rng.integers(0, 256, (n * 32, 32), dtype=np.uint8)
    Image.fromarray(pixels).save(data / "hpatches" / name / "ref.png")
  (data / "splits.json").write_text(json.dumps(
      {"a": {"name": "a", "test": list(COUNTS), "train": ["v_train"]}}))
  offsets = np.concatenate([[0], np.cumsum(list(COUNTS.values()))]).astype(np.int64)
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
    return {t: scorer(t) for t in runner.TASKS}


def test_descriptor_mode_scores_and_writes_json(dataset, tmp_path, capsys):
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
  printed = capsys.readouterr().out
  assert "Verification: mAP 0.4500" in printed and "Headline:" in printed
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


def test_binary_reports_bad_input_clearly(dataset):
  data, descs_dir, _ = dataset
  os.remove(descs_dir / "i_three" / "t4.csv")
  proc = _binary(f"--descriptors_dir={descs_dir}", f"--data_dir={data}")
  assert proc.returncode != 0
  assert "DescriptorError" in proc.stderr and "missing 1: i_three/t4.csv" in proc.stderr


_KERNELS = all(importlib.util.find_spec(f"nhp_jax.evaluation.{m}")
               for m in ("verification", "matching", "retrieval"))


@pytest.mark.skipif(not _KERNELS, reason="scoring kernels not in this checkout yet")
def test_unknown_metric_fails_before_reading_anything(tmp_path):
  with pytest.raises(ConfigError, match="metric: expected one of l1, l2, found 'cosine'"):
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
  for task in runner.TASKS:
    assert 0.0 <= doc[task] <= 1.0
    assert set(doc["details"][task]["levels"]) == {"e", "h", "t"}
  assert "Retrieval: mAP" in proc.stdout
