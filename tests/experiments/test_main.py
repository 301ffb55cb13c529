"""The main job end to end at smoke size: train the default pipeline's stages, score every input."""

import json
import os
import subprocess
import sys

import numpy as np
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
         "--train_labels=20", "--descriptor_examples_per_epoch=300",
         "--joint_examples_per_epoch=96", "--n_pairs=2000", "--classical=sift"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  doc = json.loads((workdir / "results.json").read_text())
  inputs = doc["details"]["inputs"]
  assert sorted(inputs) == ["clean", "denoised", "joint", "noisy"]
  assert doc["details"]["headline_input"] == "joint"   # the default pipeline's own descriptor
  for kind, sub in inputs.items():
    for task in ("verification", "matching", "retrieval"):
      assert 0.0 <= sub[task] <= 1.0, (kind, task, sub[task])
  for task in ("verification", "matching", "retrieval"):
    assert doc[task] == inputs["joint"][task]
  lines = (workdir / "results.md").read_text().strip().splitlines()
  at = lines.index("| task | noisy | denoised | clean | joint |")
  assert [row.split("|")[1].strip() for row in lines[at + 2:at + 5]] == [
      "verification", "matching", "retrieval"]
  # The classical reference on the same noisy and clean test patches.
  at = lines.index("| task | sift noisy | sift clean |")
  assert sorted(doc["details"]["classical"]) == ["sift clean", "sift noisy"]
  for row, task in zip(lines[at + 2:at + 5], ("verification", "matching", "retrieval")):
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == task
    assert [float(c) for c in cells[1:]] == [
        round(doc["details"]["classical"][k][task], 3) for k in ("sift noisy", "sift clean")]
  # The fine-tuned pair's checkpoints scored through the evaluate binary (noisy
  # input; a run folder takes the same path, runner.evaluate_workdir, as the
  # main job's own columns), and through an export in the official CSV
  # layout, give the same numbers.
  again = tmp_path / "again.json"
  _run(["experiments.evaluate", f"--workdir={workdir / 'joint'}", "--n_pairs=2000",
        f"--json_out={again}"])
  again = json.loads(again.read_text())
  for task in ("verification", "matching", "retrieval"):
    assert again[task] == pytest.approx(inputs["joint"][task], abs=1e-12)
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
  _check_exported_model(workdir, inputs["joint"], descs)
  assert (workdir / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "![mAP per task](results.png)" in (workdir / "results.md").read_text()
  # A rerun resumes each stage from its last checkpoint (loop.train_and_evaluate:
  # tests/experiments/test_binaries.py, tests/train/test_resume.py) and scores again.


def _check_exported_model(workdir, joint_column, joint_csv):
  """<workdir>/model is the fine-tuned pair: bit for bit the descriptors the joint column
  scored (as `export_descriptors` wrote them, 9 digits: float32 exactly), and its scores."""
  # pylint: disable=g-import-not-at-top
  import nhp_jax
  from nhp_jax.data import cache, embedded
  from nhp_jax.evaluation import descriptor_io
  model = nhp_jax.load(workdir / "model")
  assert model.kind == "joint"
  assert model.networks["joint"].source["workdir"] == str(workdir / "joint")
  data_dir = embedded.ensure_embedded(size="smoke")
  test = cache.load_split(data_dir, split="a", subset="test")
  descs = model.describe(test.noisy.reshape(-1, 32, 32))
  exported = descriptor_io.read_descriptor_folder(joint_csv, test.sequences)
  np.testing.assert_array_equal(descs, exported.descs.reshape(descs.shape))
  doc = nhp_jax.evaluate(descs, test, data_dir=data_dir, n_pairs=2000)
  for task in ("verification", "matching", "retrieval"):
    assert doc[task] == pytest.approx(joint_column[task], abs=1e-12)


@pytest.mark.parametrize("pipeline", ["fast", "dncnn", "baseline"])
def test_pipeline_configs_validate_at_every_size(pipeline):
  from experiments.configs import pipelines
  from nhp_jax.train import config_validation
  for size in ("smoke", "small"):
    c = pipelines.pipeline_config(pipeline, size, descriptor_epochs=1, joint_epochs=3)
    assert c.name == pipeline
    assert ("joint" in c) == (pipeline != "baseline")
    assert ("pretrain" in c) == (pipeline == "dncnn")
    if "pretrain" in c:
      c.denoiser.transfer.pretrained_workdir = "run"
    if "joint" in c:
      c.joint.finetune.denoiser_workdir = c.joint.finetune.descriptor_workdir = "run"
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


@pytest.mark.parametrize("pipeline", ["fast", "dncnn", "baseline"])
def test_full_scale_is_the_configs_own(pipeline):
  import importlib  # pylint: disable=g-import-not-at-top
  from experiments.configs import pipelines
  from nhp_jax.train import config_validation
  own = importlib.import_module(pipelines.PIPELINES[pipeline]).get_config("")
  full = pipelines.pipeline_config(pipeline, scale="full")
  main = pipelines.pipeline_config(pipeline)
  assert pipelines.settings(full) == pipelines.settings(own) != pipelines.settings(main)
  assert pipelines.settings(main) == {k: v for k, v in pipelines.DEFAULTS[pipeline].items()
                                      if k in pipelines.settings(main)}
  for stage in pipelines.STAGES:
    if stage in full:
      assert full[stage].to_dict() == own[stage].to_dict()   # nothing else changed either
      if "data" in full[stage]:
        assert main[stage].data.embedded_size == pipelines.MAIN_SIZE
  longer = pipelines.pipeline_config(pipeline, scale="full", descriptor_epochs=3)
  assert pipelines.settings(longer)["descriptor_epochs"] == 3
  with pytest.raises(ValueError, match="scale: expected one of main, full, found 'huge'"):
    pipelines.pipeline_config(pipeline, scale="huge")


_STAGE_SETTINGS = """
import json, sys
from absl import flags
from experiments import main
flags.FLAGS(sys.argv)
c, stages = main.stage_configs()
print(json.dumps({"stages": {s: [c[s].dtype, c[s].seed] for s in stages},
                  "examples": c.descriptor.descriptor.examples_per_epoch}))
"""


@pytest.mark.slow
def test_dtype_and_seed_flags_reach_every_stage():
  """In a process of its own: the binaries' flag names are process-global in absl."""
  def settings(*flags):
    proc = subprocess.run([sys.executable, "-c", _STAGE_SETTINGS, *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

  assert settings("--dtype=bfloat16", "--seed=7") == {   # the default: fast
      "stages": {s: ["bfloat16", 7] for s in ("denoiser", "descriptor", "joint")},
      "examples": 10_000}
  # --triplets_per_epoch: the name of --descriptor_examples_per_epoch until #21.
  assert settings("--pipeline=dncnn", "--seed=3", "--triplets_per_epoch=1234") == {
      "stages": {s: ["float32", 3] for s in ("pretrain", "denoiser", "descriptor", "joint")},
      "examples": 1234}
  assert settings("--pipeline=baseline", "--descriptor_examples_per_epoch=99") == {
      "stages": {s: ["float32", 0] for s in ("denoiser", "descriptor")}, "examples": 99}


# main() with training, scoring and loading replaced by recorders: what each stage and the
# scoring get, and which run the exported model comes from. Prints the record as JSON.
_WIRING = """
import json, sys
from absl import flags
from experiments import main
from nhp_jax import api
from nhp_jax.train import loop
calls = {"train": {}, "evaluate": [], "load": None, "export": None}
def train(config, workdir, data_dir):
  calls["train"][workdir.rsplit("/", 1)[1]] = [config.training.num_epochs, data_dir]
def evaluate(workdir, **kw):
  calls["evaluate"].append(dict(kw, workdir=workdir))
  sub = {"verification": 0.5, "matching": 0.25, "retrieval": 0.75}
  return dict(sub, details={"inputs": {k: sub for k in kw.get("inputs", ("noisy", "denoised"))}})
class Model:
  kind = "recorded"
  def export(self, path):
    calls["export"] = path
    return {"variables_sha256": "0" * 64}
def load(path):
  calls["load"] = path
  return Model()
from nhp_jax.evaluation import baselines, describe, runner
def load_test_split(data_config, **kw):
  calls["classical_data"] = dict(kw, embedded_size=data_config.embedded_size)
  return "TEST", kw.get("data_dir") or "embedded"
def classical(test, split, names, **kw):
  calls["classical"] = [test, split, list(names), kw.get("tasks_dir")]
  sub = {"verification": 0.1, "matching": 0.2, "retrieval": 0.3}
  return {f"{n} {k}": sub for n in names for k in ("noisy", "clean")}
loop.train_and_evaluate, runner.evaluate_workdir, api.load = train, evaluate, load
describe.load_test_split, baselines.score_patches = load_test_split, classical
flags.FLAGS(sys.argv)
main.main(["main"])
print(json.dumps(calls))
"""


@pytest.mark.slow
def test_flags_reach_the_stages_the_scoring_and_the_export(tmp_path):
  def wiring(*flags):
    proc = subprocess.run([sys.executable, "-c", _WIRING, f"--workdir={tmp_path}", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

  from experiments.configs import dncnn  # pylint: disable=g-import-not-at-top
  own = dncnn.get_config("")
  tasks_dir = tmp_path / "official_tasks"
  tasks_dir.mkdir()
  calls = wiring("--pipeline=dncnn", "--scale=full", f"--tasks_dir={tasks_dir}",
                 "--data_dir=/data/nhp")
  assert calls["train"] == {
      "pretrain": [own.pretrain.training.num_epochs, "/data/nhp"],
      "denoiser": [own.denoiser.training.num_epochs, "/data/nhp"],
      "descriptor": [own.descriptor.training.num_epochs, "/data/nhp"],
      "joint": [own.joint.training.num_epochs, "/data/nhp"]}
  assert [c["workdir"] for c in calls["evaluate"]] == [str(tmp_path), None]
  for c in calls["evaluate"]:
    assert (c["tasks_dir"], c["data_dir"], c["n_pairs"], c["split"]) == (
        str(tasks_dir), "/data/nhp", 1_000_000, "a")
  assert calls["evaluate"][1]["descriptor_workdir"] == str(tmp_path / "joint")
  assert calls["load"] == str(tmp_path / "joint")        # the fine-tuned pair
  assert calls["export"] == str(tmp_path / "model")
  assert (tmp_path / "results.png").is_file() and (tmp_path / "results.json").is_file()
  # The classical baselines: the same test split and task files, every default descriptor.
  assert calls["classical"] == ["TEST", "a", ["raw", "sift", "rootsift"], str(tasks_dir)]
  assert calls["classical_data"]["data_dir"] == "/data/nhp"
  assert "| task | raw noisy | raw clean |" in (tmp_path / "results.md").read_text()
  assert json.loads((tmp_path / "results.json").read_text())["details"]["classical"][
      "sift clean"] == {"verification": 0.1, "matching": 0.2, "retrieval": 0.3}

  proc = subprocess.run([sys.executable, "-m", "experiments.main", f"--workdir={tmp_path}",
                         f"--tasks_dir={tmp_path / 'no_tasks'}"], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      f"main: error: --tasks_dir={tmp_path / 'no_tasks'}: expected a folder of task CSVs, "
      f"found nothing")

  calls = wiring("--pipeline=baseline", "--denoiser_epochs=5")
  assert calls["train"] == {"denoiser": [5, None], "descriptor": [2, None]}   # main scale
  assert [(c["workdir"], c["tasks_dir"], c["n_pairs"]) for c in calls["evaluate"]] == [
      (str(tmp_path), None, 100_000)]
  assert calls["load"] == str(tmp_path)                  # the separately trained pair
