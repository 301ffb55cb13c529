"""The main job end to end at smoke size: train both networks, score three input kinds."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args):
  proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


@pytest.mark.slow
def test_main_job_smoke_writes_fig4_table_and_json(tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "experiments.main", "--size=smoke", f"--workdir={workdir}",
         "--train_labels=0", "--triplets_per_epoch=300", "--n_pairs=2000"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  doc = json.loads((workdir / "results.json").read_text())
  inputs = doc["details"]["inputs"]
  assert sorted(inputs) == ["clean", "denoised", "noisy"]
  assert doc["details"]["headline_input"] == "denoised"
  for kind, sub in inputs.items():
    for task in ("verification", "matching", "retrieval"):
      assert 0.0 <= sub[task] <= 1.0, (kind, task, sub[task])
  for task in ("verification", "matching", "retrieval"):
    assert doc[task] == inputs["denoised"][task]
  table = (workdir / "results.md").read_text().strip().splitlines()
  assert table[-5].startswith("| task | noisy | denoised | clean |")
  assert [row.split("|")[1].strip() for row in table[-3:]] == [
      "verification", "matching", "retrieval"]
  # The same checkpoints scored through the evaluate binary, and through an
  # export in the official CSV layout, give the same numbers.
  again = tmp_path / "again.json"
  _run(["experiments.evaluate", f"--workdir={workdir}", "--n_pairs=2000", f"--json_out={again}"])
  again = json.loads(again.read_text())
  for task in ("verification", "matching", "retrieval"):
    assert again[task] == pytest.approx(doc[task], abs=1e-12)
  descs = tmp_path / "descs"
  _run(["experiments.export_descriptors", f"--workdir={workdir}", f"--out_dir={descs}"])
  assert sorted(p.name for p in (descs / sorted(os.listdir(descs))[0]).iterdir())[:2] == [
      "e1.csv", "e2.csv"]
  exported = tmp_path / "exported.json"
  _run(["experiments.evaluate", f"--descriptors_dir={descs}", "--embedded_size=smoke",
        "--n_pairs=2000", f"--json_out={exported}"])
  exported = json.loads(exported.read_text())
  for task in ("verification", "matching", "retrieval"):
    assert exported[task] == pytest.approx(doc[task], abs=1e-6)
  # A rerun finds both trainings finished and only scores again.
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "resumed from" in proc.stderr
