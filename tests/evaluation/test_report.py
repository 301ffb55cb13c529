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
  assert "Matching: mAP 0.3" in text and "Verification" not in text
  assert "Headline: verification -  matching 0.3  retrieval -" in text
  with pytest.raises(ValueError, match="unknown tasks \\['patching'\\]"):
    report.results_json({"patching": {}})


def _row(text, start):
  return next(line.split() for line in text.splitlines() if line.startswith(start))


def test_tables_in_the_official_printers_order():
  """hpatches_results.py: tasks in order; verification balanced (auc) before imbalanced (ap)."""
  doc = report.results_json(stand_in_results(), {"retrieval": 3.0},
                            {"split": "a", "descriptor_name": "mine"})
  text = report.format_tables(doc)
  titles = ["Verification task results:", "MINE - Balanced variant (auc)",
            "MINE - Imbalanced variant (ap)", "Matching task results:", "MINE - mAP",
            "Retrieval task results:", "MINE - mAP all queries", "nhp_jax summary"]
  at = [text.index(t) for t in titles]
  assert at == sorted(at)
  balanced, imbalanced = text.split("Balanced variant (auc)")[1].split("Imbalanced variant (ap)")
  imbalanced = imbalanced.split("Matching task results:")[0]
  assert [_row(balanced, n) for n in ("Noise", "Easy", "Hard", "Tough")] == [
      ["Noise", "Inter", "Intra"], ["Easy", "0.99", "0.98"], ["Hard", "0.98", "0.97"],
      ["Tough", "0.97", "0.96"]]
  assert _row(imbalanced, "Hard") == ["Hard", "0.8", "0.7"]
  matching = text.split("MINE - mAP\n")[1]
  assert matching.splitlines()[0].split() == ["Easy", "Hard", "Tough", "mean"]
  # per_sequence holds one sequence: the level mAP is its mean over k.
  assert matching.splitlines()[2].split() == ["0.3", "1.3", "2.3", "1.3"]
  retrieval = text.split("Retrieval task results:")[1]
  assert _row(retrieval, "Noise") == ["Noise"] + [str(p) for p in types.RETRIEVAL_POOL_SIZES]
  assert _row(retrieval, "Easy")[:3] == ["Easy", "0.9", "0.89"]
  mean = _row(retrieval, "mean")
  assert mean[1] == format(float(np.float32(0.8)), "g")  # the printer's float32 mean row
  assert len(mean) == 1 + len(types.RETRIEVAL_POOL_SIZES)  # no mean column: as the printer
  assert "Retrieval: mAP 0.5  (3.0 s)" in text
  assert "Matching success rate: Easy 0.5  Hard 0.4  Tough 0.3" in text


def test_simple_table_aligns_like_tabulate():
  table = report.simple_table(["Noise", "Inter"],
                              [["Easy", 0.5], ["Hard", 0.123456789], ["T", 1.0]])
  assert table.splitlines() == ["Noise       Inter",
                                "-------  --------",
                                "Easy     0.5",
                                "Hard     0.123457",
                                "T        1"]


def test_side_by_side_holds_the_official_blocks():
  results = {name: stand_in_results() for name in ("a", "bb")}
  official = report.format_official(results, types.BENCHMARKS, layout="official")
  assert official.index("A - mAP") < official.index("BB - mAP")
  assert report.format_official({"a": results["a"]}, layout="side_by_side") == (
      report.format_official({"a": results["a"]}, layout="official"))
  side = report.format_official(results, ["matching"], layout="side_by_side", width=200)
  block_a = "\n\n".join(report.official_blocks("matching", results["a"]["matching"], "a"))
  block_b = "\n\n".join(report.official_blocks("matching", results["bb"]["matching"], "bb"))
  width = max(len(line) for line in block_a.splitlines())
  lines = side.splitlines()[1:]
  assert [line[:width].rstrip() for line in lines] == block_a.splitlines()
  assert [line[width + 4:] for line in lines] == block_b.splitlines()
  wrapped = report.format_official(results, ["matching"], layout="side_by_side", width=width)
  assert wrapped == report.format_official(results, ["matching"], layout="official")
  with pytest.raises(ValueError, match="layout"):
    report.format_official(results, layout="wide")


def test_write_results_is_atomic(tmp_path):
  path = tmp_path / "r.json"
  doc = report.results_json(stand_in_results())
  report.write_results(path, doc)
  assert json.loads(path.read_text()) == doc
  with pytest.raises(TypeError):
    report.write_results(path, {"bad": object()})
  assert json.loads(path.read_text()) == doc
  assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
