"""Results document and tables, from stand-in kernel results."""

import json

import numpy as np
import pytest

from nhp_jax.evaluation import report
from nhp_jax.evaluation import types


def stand_in_results():
  """Result dicts shaped like the kernels' (numpy scalars included, as kernels return them)."""
  verif = {"mAP": np.float32(0.75), "levels": {
      lv: {"inter": {"ap": np.float64(0.9 - i / 10), "auc": 0.99 - i / 100},
           "intra": {"ap": 0.8 - i / 10, "auc": 0.98 - i / 100}}
      for i, lv in enumerate("eht")}}
  match = {"mAP": 0.3, "levels": {
      lv: {"ap": 0.4 - i / 10, "success": 0.5 - i / 10,
           "per_sequence": {"i_a": np.array([0.1, 0.2, 0.3, 0.4, 0.5]) + i}}
      for i, lv in enumerate("eht")}}
  retr = {"mAP": 0.5, "levels": {
      lv: {"ap": 0.6 - i / 10,
           "per_pool": {str(p): 0.9 - i / 10 - j / 100
                        for j, p in enumerate(types.RETRIEVAL_POOL_SIZES)}}
      for i, lv in enumerate("eht")}}
  return {"verification": verif, "matching": match, "retrieval": retr}


def test_results_json_layout_and_types():
  doc = report.results_json(stand_in_results(), {"verification": 1.23456, "matching": 2.0},
                            {"split": "a", "n": np.int64(3)})
  assert doc["verification"] == 0.75 and doc["matching"] == 0.3 and doc["retrieval"] == 0.5
  d = doc["details"]
  assert d["verification"]["levels"]["h"]["intra"] == {"ap": pytest.approx(0.7), "auc": 0.97}
  assert d["verification"]["wall_time_s"] == 1.235 and "wall_time_s" not in d["retrieval"]
  assert d["matching"]["levels"]["t"]["per_sequence"]["i_a"] == [2.1, 2.2, 2.3, 2.4, 2.5]
  assert sorted(d["retrieval"]["levels"]["e"]["per_pool"], key=int) == [
      str(p) for p in types.RETRIEVAL_POOL_SIZES]
  assert d["meta"] == {"split": "a", "n": 3}
  assert json.loads(json.dumps(doc)) == doc  # plain JSON types only


def test_tasks_not_run_are_null_and_unknown_tasks_rejected():
  doc = report.results_json({"matching": stand_in_results()["matching"]})
  assert doc["verification"] is None and doc["retrieval"] is None
  assert set(doc["details"]) == {"matching", "meta"}
  text = report.format_tables(doc)
  assert "Matching: mAP 0.3000" in text and "Verification" not in text
  assert "Headline: verification -  matching 0.3000  retrieval -" in text
  with pytest.raises(ValueError, match="unknown tasks \\['patching'\\]"):
    report.results_json({"patching": {}})


def _row(text, start):
  return next(line.split() for line in text.splitlines() if line.startswith(start))


def test_tables_show_every_level_variant_and_pool():
  doc = report.results_json(stand_in_results(), {"retrieval": 3.0}, {"split": "a"})
  text = report.format_tables(doc)
  imbalanced, balanced = text.split("Imbalanced variant (AP)")[1].split("Balanced variant (AUC)")
  assert _row(imbalanced, "Hard") == ["Hard", "0.8000", "0.7000"]
  assert _row(balanced, "Tough") == ["Tough", "0.9700", "0.9600"]
  assert _row(text, "mAP") == ["mAP", "0.4000", "0.3000", "0.2000", "0.3000"]
  assert _row(text, "success") == ["success", "rate", "0.5000", "0.4000", "0.3000", "0.4000"]
  retrieval = text.split("Retrieval:")[1]
  assert _row(retrieval, "Noise") == ["Noise"] + [str(p) for p in types.RETRIEVAL_POOL_SIZES] + [
      "mean"]
  assert _row(retrieval, "Easy")[:3] == ["Easy", "0.9000", "0.8900"]
  mean = _row(retrieval, "mean")
  assert mean[1] == "0.8000" and mean[-1] == "0.5000"  # mean over levels, per pool and overall
  assert "Retrieval: mAP 0.5000  (3.0 s)" in text


def test_write_results_is_atomic(tmp_path):
  path = tmp_path / "r.json"
  doc = report.results_json(stand_in_results())
  report.write_results(path, doc)
  assert json.loads(path.read_text()) == doc
  with pytest.raises(TypeError):
    report.write_results(path, {"bad": object()})
  assert json.loads(path.read_text()) == doc
  assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
