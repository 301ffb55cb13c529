"""The results cache of runner.run (--results_dir): reuse, invalidation, layout, reading it back."""

import json
import os

import numpy as np
import pytest

from tests.evaluation import tiny_data
from nhp_jax.errors import ConfigError
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import results_cache
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import types

COUNTS = {"i_one": 9, "v_two": 14, "i_three": 6}


@pytest.fixture
def dataset(tmp_path):
  """A data root (ref.png stacks + splits.json) and a descriptor export `descrs/mine`."""
  rng = np.random.default_rng(0)
  data = tmp_path / "data"
  offsets = tiny_data.write_data_root(data, COUNTS, rng)
  descs = types.DescriptorSet(tuple(COUNTS), offsets,
                              rng.standard_normal((int(offsets[-1]), 16, 8)).astype(np.float32))
  descriptor_io.write_descriptor_folder(descs, tmp_path / "descrs" / "mine")
  return data, tmp_path / "descrs" / "mine"


class Counting:
  """Stand-in scorers (no JAX) counting which tasks they score."""

  def __init__(self):
    self.calls = []

  def scorers(self):
    def scorer(task):
      def score(descs, verif, retr, metric):
        self.calls.append(task)
        levels = {"verification": {"inter": {"ap": 0.5, "auc": 0.6},
                                   "intra": {"ap": 0.4, "auc": 0.7}},
                  "matching": {"ap": 0.2, "success": 0.3, "per_sequence": {}},
                  "retrieval": {"ap": 0.1, "per_pool": {"100": 0.1}}}[task]
        return {"mAP": {"verification": 0.45, "matching": 0.2, "retrieval": 0.1}[task],
                "levels": {lv: levels for lv in "eht"}}
      return score
    return {t: scorer(t) for t in types.BENCHMARKS}


def _run(data, descs_dir, results, counting, **kw):
  kw.setdefault("n_pairs", 50)
  return runner.run(descriptors_dir=str(descs_dir), data_dir=str(data), results_dir=str(results),
                    scorers=counting.scorers(), **kw)


def test_second_run_reuses_every_task(dataset, tmp_path):
  data, descs_dir = dataset
  results = tmp_path / "results"
  counting = Counting()
  first = _run(data, descs_dir, results, counting)
  assert counting.calls == list(types.BENCHMARKS)
  assert first["details"]["meta"]["cached_tasks"] == []
  # The official names: <descr>_<task>_<split>, JSON instead of pickles.
  assert sorted(os.listdir(results)) == [f"mine_{t}_a.json" for t in sorted(types.BENCHMARKS)]
  entry = json.loads((results / "mine_verification_a.json").read_text())
  assert entry["format"] == results_cache.FORMAT and entry["task"] == "verification"
  assert entry["key"]["descriptors"]["files"] == 16 * len(COUNTS)
  assert entry["info"]["verification_pairs"] == 50
  assert entry["result"] == first["details"]["verification"]
  second = _run(data, descs_dir, results, counting)
  assert counting.calls == list(types.BENCHMARKS)  # nothing scored again
  assert second["details"]["meta"]["cached_tasks"] == list(types.BENCHMARKS)
  for task in types.BENCHMARKS:
    assert second[task] == first[task]
    assert second["details"][task] == first["details"][task]
  assert second["details"]["meta"]["verification_pairs"] == 50


def test_changed_descriptor_files_or_settings_are_scored_again(dataset, tmp_path):
  data, descs_dir = dataset
  results = tmp_path / "results"
  counting = Counting()
  _run(data, descs_dir, results, counting)
  path = descs_dir / "v_two" / "h3.csv"
  st = os.stat(path)
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, newer
  _run(data, descs_dir, results, counting)
  assert counting.calls == 2 * list(types.BENCHMARKS)
  path.write_text(path.read_text().replace(",", ", "))  # new bytes, mtime set back
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
  _run(data, descs_dir, results, counting)
  assert counting.calls == 3 * list(types.BENCHMARKS)
  del counting.calls[:]
  _run(data, descs_dir, results, counting, n_pairs=60)   # verification pairs only
  assert counting.calls == ["verification"]
  _run(data, descs_dir, results, counting, n_pairs=60, metric="L1")  # every task
  assert counting.calls == ["verification"] + list(types.BENCHMARKS)
  _run(data, descs_dir, results, counting, n_pairs=60, metric="l1", overwrite=True)
  assert counting.calls == ["verification"] + 2 * list(types.BENCHMARKS)


def test_partial_cache_scores_only_the_missing_tasks(dataset, tmp_path):
  data, descs_dir = dataset
  results = tmp_path / "results"
  counting = Counting()
  _run(data, descs_dir, results, counting, tasks=["matching"])
  doc = _run(data, descs_dir, results, counting, tasks=["retrieval", "matching"])
  assert counting.calls == ["matching", "retrieval"]
  assert doc["details"]["meta"]["cached_tasks"] == ["matching"]
  assert doc["details"]["meta"]["tasks"] == ["matching", "retrieval"]
  (results / "mine_retrieval_a.json").write_text("{not json")  # unreadable: scored again
  _run(data, descs_dir, results, counting, tasks=["retrieval"])
  assert counting.calls == ["matching", "retrieval", "retrieval"]


def test_descriptor_name_names_the_files(dataset, tmp_path):
  data, descs_dir = dataset
  results = tmp_path / "results"
  _run(data, descs_dir, results, Counting(), tasks=["matching"], descriptor_name="sift.v2")
  assert os.listdir(results) == ["sift.v2_matching_a.json"]
  with pytest.raises(ConfigError, match=r"descriptor name: expected letters.*found '\.\./x'"):
    _run(data, descs_dir, results, Counting(), descriptor_name="../x")
  with pytest.raises(ConfigError, match="results_dir: caches the scores of a descriptor folder"):
    runner.run(workdir=str(tmp_path), results_dir=str(results))


def test_load_results_for_compare(dataset, tmp_path):
  data, descs_dir = dataset
  results = tmp_path / "results"
  _run(data, descs_dir, results, Counting(), tasks=["matching", "retrieval"])
  got = results_cache.load_results(results, ["mine"], ["retrieval", "matching"], "a")
  assert list(got["mine"]) == ["retrieval", "matching"] and got["mine"]["matching"]["mAP"] == 0.2
  with pytest.raises(ConfigError, match=r"mine_verification_a.json: expected the cached "
                     r"verification results of 'mine' on split a, found no file"):
    results_cache.load_results(results, ["mine"], ["verification"], "a")
  (results / "mine_matching_a.json").write_text(json.dumps({"format": "other"}))
  with pytest.raises(ConfigError, match=r"mine_matching_a.json: expected a nhp_jax.results/1 "
                     r"document of task matching, found format 'other'"):
    results_cache.load_results(results, ["mine"], ["matching"], "a")
  with pytest.raises(ConfigError, match="expected a folder of cached results"):
    results_cache.load_results(tmp_path / "none", ["mine"], ["matching"], "a")


def test_compare_refuses_results_of_descriptor_files_changed_since(dataset, tmp_path):
  data, descs_dir = dataset
  results = tmp_path / "results"
  _run(data, descs_dir, results, Counting(), tasks=["matching"])
  assert results_cache.load_results(results, ["mine"], ["matching"], "a")["mine"]["matching"]
  path = descs_dir / "i_one" / "e2.csv"
  path.write_text(path.read_text().replace(",", ", "))       # rescaled, re-exported, ...
  with pytest.raises(ConfigError, match=r"mine_matching_a.json: stale: the descriptor files in "
                     r".*mine changed since these matching results were scored; score them "
                     r"again \(python -m experiments.evaluate --descriptors_dir="):
    results_cache.load_results(results, ["mine"], ["matching"], "a")
  _run(data, descs_dir, results, Counting(), tasks=["matching"])   # scored again: fresh
  assert results_cache.load_results(results, ["mine"], ["matching"], "a")["mine"]["matching"]
  os.rename(descs_dir, tmp_path / "moved")                  # cannot be checked: read as it is
  assert results_cache.load_results(results, ["mine"], ["matching"], "a")["mine"]["matching"]
