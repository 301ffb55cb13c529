"""The study runner: study 1 (Fig. 4) end to end at smoke scale, reuse, and config checks."""

import json
import os

import numpy as np
import pytest

from experiments import reproduce
from experiments.configs.studies import baseline
from experiments.configs.studies import catalogue
from nhp_jax import errors
from nhp_jax import platform
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.workflows import studies as study_runner


@pytest.fixture(scope="module")
def smoke_baseline(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("studies"))
  config = baseline.get_config("smoke")
  config.evaluation.labels_per_sequence = 25   # a subset of each sequence's 40 labels
  return root, config, study_runner.run_study(catalogue.RUNS, config, root).doc


def test_study1_smoke_table(smoke_baseline):
  root, config, doc = smoke_baseline
  assert [r["label"] for r in doc["rows"]] == [r["label"] for r in config.rows]
  for r in doc["rows"]:
    values = [r["verification"], r["matching"], r["retrieval"]]
    assert all(0.0 <= v <= 1.0 for v in values), r
    assert r["mean"] == pytest.approx(np.mean(values))
  md = open(os.path.join(root, "baseline", "results.md")).read()
  table = [line for line in md.splitlines() if line.startswith("| ")]
  assert len(table) == 1 + len(config.rows) + 1 + 2   # results header + rows, runs header + 2
  assert all(line.count("|") == 7 for line in table[:1 + len(config.rows)])
  with open(os.path.join(root, "baseline", "results.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert json.load(open(os.path.join(root, "baseline", "results.json"))) == doc


def test_study1_scores_the_subset(smoke_baseline):
  root, _, _ = smoke_baseline
  evals = os.listdir(os.path.join(root, study_runner.EVALS_DIR))
  assert sorted(evals) == ["l2net_clean-clean.json", "l2net_clean-denoised-unet_shallow.json",
                           "l2net_clean-noisy.json"]
  doc = json.load(open(os.path.join(root, study_runner.EVALS_DIR, "l2net_clean-noisy.json")))
  meta = doc["details"]["meta"]
  assert meta["patches"] == meta["sequences"] * 25   # labels: 25 of each sequence's 40


def test_rerun_reuses_runs_and_scores(smoke_baseline):
  root, config, doc = smoke_baseline
  paths = [os.path.join(root, study_runner.EVALS_DIR, f)
           for f in os.listdir(os.path.join(root, study_runner.EVALS_DIR))]
  before = {p: os.stat(p).st_mtime_ns for p in paths}
  again = study_runner.run_study(catalogue.RUNS, config, root).doc
  assert {p: os.stat(p).st_mtime_ns for p in paths} == before
  assert again["rows"] == doc["rows"]


def test_other_processes_of_a_job_write_nothing(smoke_baseline, monkeypatch):
  """Process 1 of a multi-process job trains (here: finds the runs done) and writes nothing."""
  root, config, _ = smoke_baseline
  files = {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}
  before = {p: os.stat(p).st_mtime_ns for p in files}
  monkeypatch.setattr(platform, "is_writer", lambda: False)
  assert study_runner.run_study(catalogue.RUNS, config, root) is None
  assert study_runner.reproduce(catalogue.RUNS, "smoke", [config], root) == []
  assert not os.path.exists(os.path.join(root, "RESULTS.md"))
  after = {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}
  assert after == files and {p: os.stat(p).st_mtime_ns for p in files} == before


def test_finished_run_of_another_config_is_an_error(smoke_baseline, monkeypatch):
  root, config, _ = smoke_baseline
  make = catalogue.RUNS["unet_shallow"].make

  def changed(scale):
    c = make(scale)
    c.seed = 7
    return c
  monkeypatch.setitem(catalogue.RUNS, "unet_shallow", catalogue.Run(changed))
  with pytest.raises(errors.ConfigError, match="unet_shallow.*another config.*seed: 0 -> 7"):
    study_runner.train_run(catalogue.RUNS, "unet_shallow", "smoke", root, None)


def test_config_conflicts_accept_added_fields_at_their_old_value():
  saved = {"a": 1, "descriptor": {"margin": 1.0}}
  added = {"a": 1, "descriptor": {"margin": 1.0, "loss": "triplet"}}
  assert study_runner.config_conflicts(saved, added) == []
  added["descriptor"]["loss"] = "hardest_in_batch"
  assert study_runner.config_conflicts(saved, added) == [
      "descriptor.loss: 'triplet' -> 'hardest_in_batch'"]
  assert study_runner.config_conflicts(saved, {"a": 2, "descriptor": {"margin": 1.0}}) == [
      "a: 1 -> 2"]
  assert study_runner.config_conflicts(saved, {"a": 1}) == ["descriptor.margin: 1.0 -> '<absent>'"]


def test_first_labels_matches_a_loop(random_patchset):
  sub = patchset_lib.first_labels(random_patchset, 3)
  for name in random_patchset.sequences:
    want = random_patchset.clean[random_patchset.sequence_slice(name)][:3]
    np.testing.assert_array_equal(sub.clean[sub.sequence_slice(name)], want)
  assert patchset_lib.first_labels(random_patchset, 0) is random_patchset
  assert isinstance(sub, patchset_lib.PatchSet)


@pytest.mark.parametrize("scale", catalogue.SCALES)
def test_every_study_config_builds(scale, tmp_path):
  for name in reproduce.STUDIES:
    config = reproduce.study_config(name, scale)
    runs = {r[k] for r in config.rows for k in ("descriptor", "denoiser") if r[k]}
    runs |= {n for c in config.curves for n in c["runs"]}
    assert runs, name
    for run in runs:
      study_runner.run_config(catalogue.RUNS, run, scale, str(tmp_path))


def test_unknown_names_are_errors(tmp_path):
  with pytest.raises(errors.ConfigError, match="unknown study 'fig99'.*baseline"):
    reproduce.study_config("fig99", "smoke")
  with pytest.raises(errors.ConfigError, match="unknown run 'resnet'.*unet_shallow"):
    study_runner.run_config(catalogue.RUNS, "resnet", "smoke", str(tmp_path))
  with pytest.raises(errors.ConfigError, match="data_dir"):
    study_runner.run_study(catalogue.RUNS, baseline.get_config("full"), str(tmp_path))


def test_colab_notebook_cells_are_python():
  path = os.path.join(os.path.dirname(reproduce.__file__), "colab_tpu.ipynb")
  with open(path) as f:
    nb = json.load(f)
  code = [c for c in nb["cells"] if c["cell_type"] == "code"]
  assert any("experiments.reproduce" in "".join(c["source"]) for c in code)
  for cell in code:   # shell (!) and magic (%) lines are IPython's; the rest must compile
    lines = "".join(cell["source"]).splitlines()
    python = "\n".join(
        line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip()[:1] in ("!", "%")
        else line for line in lines)
    compile(python, path, "exec")
