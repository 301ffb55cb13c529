"""The main job end to end at smoke size: train the best pipeline's stages, score every input."""

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
def test_main_job_smoke_writes_table_and_json(tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "experiments.main", "--size=smoke", f"--workdir={workdir}",
         "--train_labels=0", "--triplets_per_epoch=300", "--joint_examples_per_epoch=96",
         "--pretrain_crops=4", "--pretrain_epochs=1", "--n_pairs=2000"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  doc = json.loads((workdir / "results.json").read_text())
  inputs = doc["details"]["inputs"]
  assert sorted(inputs) == ["clean", "denoised", "joint", "noisy"]
  assert doc["details"]["headline_input"] == "joint"   # the best pipeline's own descriptor
  for kind, sub in inputs.items():
    for task in ("verification", "matching", "retrieval"):
      assert 0.0 <= sub[task] <= 1.0, (kind, task, sub[task])
  for task in ("verification", "matching", "retrieval"):
    assert doc[task] == inputs["joint"][task]
  table = (workdir / "results.md").read_text().strip().splitlines()
  assert table[-5].startswith("| task | noisy | denoised | clean | joint |")
  assert [row.split("|")[1].strip() for row in table[-3:]] == [
      "verification", "matching", "retrieval"]
  # The same checkpoints scored through the evaluate binary (the separately
  # trained pair: denoised input; the fine-tuned pair: noisy input), and
  # through an export in the official CSV layout, give the same numbers.
  for args, expected in (([f"--workdir={workdir}"], inputs["denoised"]),
                         ([f"--workdir={workdir / 'joint'}"], inputs["joint"])):
    again = tmp_path / "again.json"
    _run(["experiments.evaluate", *args, "--n_pairs=2000", f"--json_out={again}"])
    again = json.loads(again.read_text())
    for task in ("verification", "matching", "retrieval"):
      assert again[task] == pytest.approx(expected[task], abs=1e-12)
  descs = tmp_path / "descs"
  _run(["experiments.export_descriptors", f"--workdir={workdir / 'joint'}", "--input=noisy",
        f"--out_dir={descs}"])
  assert sorted(p.name for p in (descs / sorted(os.listdir(descs))[0]).iterdir())[:2] == [
      "e1.csv", "e2.csv"]
  exported = tmp_path / "exported.json"
  _run(["experiments.evaluate", f"--descriptors_dir={descs}", "--embedded_size=smoke",
        "--n_pairs=2000", f"--json_out={exported}"])
  exported = json.loads(exported.read_text())
  for task in ("verification", "matching", "retrieval"):
    assert exported[task] == pytest.approx(doc[task], abs=1e-6)
  # A rerun finds every training finished and only scores again.
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stderr.count("resumed from") == 4   # pretrain, denoiser, descriptor, joint


@pytest.mark.parametrize("pipeline", ["best", "fast", "baseline"])
def test_pipeline_configs_validate_at_every_size(pipeline):
  from experiments.configs import pipelines
  from nhp_jax.train import config_validation
  for size in ("smoke", "small"):
    c = pipelines.pipeline_config(pipeline, size, descriptor_epochs=1, joint_epochs=3)
    assert c.name == pipeline
    assert ("joint" in c) == (pipeline != "baseline")
    assert ("pretrain" in c) == (pipeline == "best")
    if "pretrain" in c:
      c.denoiser.transfer.pretrained_workdir = "run"
    if "joint" in c:
      c.joint.joint.denoiser_workdir = c.joint.joint.descriptor_workdir = "run"
      # The joint stage fine-tunes exactly the two networks of the other stages.
      assert c.joint.model.kwargs.denoiser.to_dict() == c.denoiser.model.to_dict()
      assert c.joint.model.kwargs.descriptor.to_dict() == c.descriptor.model.to_dict()
      assert c.joint.training.num_epochs == 3
    assert c.descriptor.training.num_epochs == 1   # the override
    assert c.denoiser.data.max_train_labels == pipelines.DEFAULTS[pipeline]["train_labels"]
    for stage in pipelines.STAGES:
      if stage in c:
        if "data" in c[stage]:
          assert c[stage].data.embedded_size == size
        config_validation.validate(c[stage])
  with pytest.raises(ValueError, match="unknown main-job scale"):
    pipelines.pipeline_config(pipeline, "small", epochs=3)


_STAGE_SETTINGS = """
import json, sys
from absl import flags
from experiments import main
flags.FLAGS(sys.argv)
c, stages = main.stage_configs()
print(json.dumps({s: [c[s].dtype, c[s].seed] for s in stages}))
"""


def test_dtype_and_seed_flags_reach_every_stage():
  """In a process of its own: the binaries' flag names are process-global in absl."""
  def settings(*flags):
    proc = subprocess.run([sys.executable, "-c", _STAGE_SETTINGS, *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

  assert settings("--dtype=bfloat16", "--seed=7") == {
      s: ["bfloat16", 7] for s in ("pretrain", "denoiser", "descriptor", "joint")}
  assert settings("--pipeline=baseline") == {s: ["float32", 0]
                                             for s in ("denoiser", "descriptor")}
