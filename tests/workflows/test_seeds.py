"""The seeds study's arithmetic: spread, ties, the default it picks, its table and plot."""

import pytest

from nhp_jax.workflows import seeds


def _record(v, m, r, train=60.0, rate=1000.0, patches=16_000):
  return {"headline": {"verification": v, "matching": m, "retrieval": r},
          "stage_seconds": {"denoiser": train / 2, "descriptor": train / 2},
          "inference": {"patches": patches, "patches_per_s": rate, "seconds": patches / rate}}


def test_summary_is_mean_sample_std_and_range_over_seeds():
  s = seeds.summarize({"d": {"p": [_record(.9, .3, .6), _record(.8, .5, .7)]}})["d"]["p"]
  assert s["verification"]["mean"] == pytest.approx(.85)
  assert s["verification"]["std"] == pytest.approx(0.0707107, rel=1e-5)   # ddof=1
  assert s["mean"]["min"] == pytest.approx(0.6) and s["mean"]["max"] == pytest.approx(2 / 3)
  assert seeds.spread(s) == pytest.approx(2 / 3 - 0.6)
  assert s["train_seconds"]["mean"] == 60.0 and s["mean"]["n"] == 2


def _summary(**by_pipeline):
  return seeds.summarize({"d1": by_pipeline, "d2": by_pipeline})


def test_a_gap_within_the_spread_is_a_tie_and_the_cheaper_pipeline_wins():
  summary = _summary(
      dear=[_record(.80, .50, .70, train=600), _record(.78, .48, .70, train=600)],
      cheap=[_record(.79, .49, .69, train=60), _record(.77, .47, .69, train=60)])
  choice = seeds.recommend(summary, {"d1": 16_000, "d2": 16_000})
  assert choice["leaders"] == {"d1": "dear", "d2": "dear"}
  assert choice["candidates"] == ["cheap", "dear"]     # cheapest first
  assert choice["default"] == "cheap"


def test_a_gap_beyond_the_spread_keeps_the_leader_even_when_dearer():
  summary = _summary(
      dear=[_record(.90, .60, .80, train=600), _record(.90, .60, .80, train=600)],
      cheap=[_record(.79, .49, .69, train=60), _record(.78, .48, .69, train=60)])
  choice = seeds.recommend(summary, {"d1": 16_000, "d2": 16_000})
  assert choice["default"] == "dear" and choice["candidates"] == ["dear"]
  gap, allowed = choice["gaps"]["d1"]["cheap"]
  assert gap > allowed


def test_exact_tie_in_mean_and_cost_picks_by_name_deterministically():
  summary = _summary(b=[_record(.8, .5, .7)], a=[_record(.8, .5, .7)])
  choice = seeds.recommend(summary, {"d1": 16_000, "d2": 16_000})
  assert choice["default"] == "a"


def test_losing_on_one_dataset_is_enough_to_drop_a_pipeline():
  good = [_record(.8, .5, .7, train=600)] * 2
  summary = seeds.summarize({
      "d1": {"dear": good, "cheap": [_record(.8, .5, .7, train=60)] * 2},
      "d2": {"dear": good, "cheap": [_record(.6, .3, .5, train=60)] * 2}})
  assert seeds.recommend(summary, {"d1": 1, "d2": 1})["default"] == "dear"


def test_inference_rate_counts_in_the_cost():
  summary = _summary(slow=[_record(.8, .5, .7, train=60, rate=10)],
                     fast=[_record(.8, .5, .7, train=60, rate=10_000)])
  assert seeds.recommend(summary, {"d1": 16_000, "d2": 16_000})["default"] == "fast"


def test_table_and_plot(tmp_path):
  summary = _summary(p=[_record(.9, .3, .6), _record(.8, .5, .7)], q=[_record(.7, .4, .6)] * 2)
  md = seeds.table(summary)
  assert "**d1** (2 seeds" in md and "| p | 0.850 ± 0.071 | 0.400 ± 0.141 |" in md
  assert md.count("| q |") == 2
  seeds.plot(summary, str(tmp_path / "s.png"), "t")
  assert (tmp_path / "s.png").stat().st_size > 1000


def test_a_partial_study_leaves_out_what_has_not_run():
  """Pipelines without runs on a dataset are absent, and only those run everywhere compete."""
  summary = seeds.summarize({
      "d1": {"a": [_record(.9, .6, .8)], "b": [_record(.7, .4, .6)], "c": []},
      "d2": {"a": [], "b": [_record(.7, .4, .6)], "c": []},
      "d3": {"a": [], "b": [], "c": []}})
  assert {d: sorted(p) for d, p in summary.items()} == {"d1": ["a", "b"], "d2": ["b"]}
  choice = seeds.recommend(summary, {"d1": 1, "d2": 1})
  assert choice["candidates"] == ["b"] and choice["default"] == "b"
  assert choice["leaders"] == {"d1": "a", "d2": "b"}


def test_report_only_trains_nothing_and_needs_a_finished_run(tmp_path, monkeypatch):
  """--report_only reads run.json records; with none finished it is one clear error."""
  from experiments.configs.studies import seeds as seeds_config  # pylint: disable=g-import-not-at-top
  from nhp_jax import errors  # pylint: disable=g-import-not-at-top
  study = seeds_config.get_config("smoke")
  monkeypatch.setattr(seeds.loop, "train_and_evaluate",
                      lambda *a, **k: pytest.fail("report_only trained"))
  monkeypatch.setattr(seeds, "dataset_dir", lambda root, name, spec: None)
  with pytest.raises(errors.ConfigError, match="no run of study seeds has finished"):
    seeds.run(study, str(tmp_path), report_only=True)
  # One finished run (its run.json as train_and_score writes it) is enough for a report.
  dataset, pipeline, seed = study.datasets[0]["name"], "fast", int(study.seeds[0])
  spec = seeds.dataset_spec(study, dataset)
  c = seeds.run_config(study, pipeline, seed, spec)
  settings = {"pipeline": pipeline, "seed": seed, "dataset": dict(spec),
              "n_pairs": study.n_pairs, "config": seeds._digest(c.to_dict())}
  path = tmp_path / seeds.RUNS_DIR / dataset / seeds.run_name(pipeline, seed) / seeds.RUN_FILE
  path.parent.mkdir(parents=True)
  path.write_text(__import__("json").dumps(dict(_record(.8, .5, .7), settings=settings)))
  result = seeds.run(study, str(tmp_path), report_only=True)
  assert result.doc["finished_runs"] == 1 and result.doc["total_runs"] == 8
  assert "Partial: 1 of 8 runs finished" in result.markdown
  assert result.doc["recommendation"]["default"] == "fast"


def test_the_committed_records_match_todays_configs_under_their_old_field_names():
  """docs/results/seeds was written before #21 renamed config fields: its runs still count.

  Each record's config digest is that of today's config written the old way,
  so `train_and_score` takes the finished run as it is (and the configs the
  study trained are still the ones the code builds).
  """
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  from experiments.configs.studies import seeds as seeds_config  # pylint: disable=g-import-not-at-top,line-too-long
  root = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "seeds")
  with open(os.path.join(root, "results.json")) as f:
    doc = json.load(f)
  study = seeds_config.get_config("main")
  checked = 0
  for dataset, by_pipeline in doc["runs"].items():
    for pipeline, records in by_pipeline.items():
      if pipeline not in study.pipelines:   # "best": dncnn's name then, another config name
        continue
      for record in records:
        c = seeds.run_config(study, pipeline, record["settings"]["seed"],
                             seeds.dataset_spec(study, dataset))
        assert seeds._legacy_digest(c) == record["settings"]["config"], (dataset, pipeline)
        assert seeds._digest(c.to_dict()) != record["settings"]["config"]
        checked += 1
  assert checked == 12


def test_a_run_record_written_before_the_renames_is_finished(tmp_path, monkeypatch):
  from experiments.configs.studies import seeds as seeds_config  # pylint: disable=g-import-not-at-top
  study = seeds_config.get_config("smoke")
  monkeypatch.setattr(seeds.loop, "train_and_evaluate", lambda *a, **k: pytest.fail("trained"))
  monkeypatch.setattr(seeds, "dataset_dir", lambda root, name, spec: None)
  dataset, pipeline, seed = study.datasets[0]["name"], "fast", int(study.seeds[0])
  spec = seeds.dataset_spec(study, dataset)
  c = seeds.run_config(study, pipeline, seed, spec)
  old = {"pipeline": pipeline, "seed": seed, "dataset": dict(spec), "n_pairs": study.n_pairs,
         "config": seeds._legacy_digest(c)}
  path = tmp_path / seeds.RUNS_DIR / dataset / seeds.run_name(pipeline, seed) / seeds.RUN_FILE
  path.parent.mkdir(parents=True)
  path.write_text(__import__("json").dumps(dict(_record(.8, .5, .7), settings=old)))
  record = seeds.train_and_score(study, str(tmp_path), dataset, pipeline, seed)
  assert record["headline"] == {"verification": .8, "matching": .5, "retrieval": .7}
  # Another config (here: another digest) is still refused.
  path.write_text(__import__("json").dumps(dict(_record(.8, .5, .7),
                                                settings=dict(old, config="0" * 16))))
  with pytest.raises(seeds.errors.ConfigError, match="written for other settings"):
    seeds.train_and_score(study, str(tmp_path), dataset, pipeline, seed)
