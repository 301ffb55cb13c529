"""Printed tables and details JSON against the reference transcription of the official code.

Two descriptor folders are scored with the real kernels into a results
cache; the tables `experiments.compare` prints from it must show, digit for
digit and in the official order, what `hpatches_results.py` prints for
results computed by `tests/reference/hpatches_reference.py` (the official
`tasks.py`/`metrics.py`). The printer's arithmetic is restated here on the
official result layout (res[seq][t][k]['ap'], res[qid][t][P]['ap'], ...),
separately from `nhp_jax.evaluation.summary`.
"""

import json

import numpy as np
import pytest

from tests.evaluation import tiny_data
from nhp_jax.evaluation import score
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import report
from nhp_jax.evaluation import results_cache
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import summary
from nhp_jax.evaluation import task_files
from nhp_jax.evaluation import types
from nhp_jax.evaluation import verification
from nhp_jax.evaluation import retrieval
from tests.reference import hpatches_reference as ref

COUNTS = {"i_one": 9, "v_two": 14, "i_three": 6, "v_four": 11}
N_PAIRS = 200
LEVEL = {"e": "Easy", "h": "Hard", "t": "Tough"}


def _descriptor_sets():
  rng = np.random.default_rng(3)
  offsets = np.concatenate([[0], np.cumsum(list(COUNTS.values()))]).astype(np.int64)
  base = rng.standard_normal((int(offsets[-1]), 1, 8)).astype(np.float32)
  out = {}
  for name, noise in (("weak", 1.2), ("strong", 0.4)):
    d = base + noise * rng.standard_normal((int(offsets[-1]), 16, 8)).astype(np.float32)
    out[name] = types.DescriptorSet(tuple(COUNTS), offsets, d.astype(np.float32))
  return out


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
  """Both folders scored into one results cache, full curves; with the tasks used."""
  root = tmp_path_factory.mktemp("official")
  rng = np.random.default_rng(0)
  data = root / "data"
  tiny_data.write_data_root(data, COUNTS, rng, train="v_x")
  sets = _descriptor_sets()
  docs = {}
  for name, descs in sets.items():
    descriptor_io.write_descriptor_folder(descs, root / "descrs" / name)
    docs[name] = runner.run(descriptors_dir=str(root / "descrs" / name), data_dir=str(data),
                            n_pairs=N_PAIRS, results_dir=str(root / "results"),
                            curve_points=10**6, json_out=str(root / f"{name}.json"))
  first = next(iter(sets.values()))
  verif, retr = task_files.load_tasks(
      "a", first, data_dir=data, n_pairs=N_PAIRS,
      ref_patches=score.ref_patches_reader(data, first.sequences))
  return root, sets, docs, verif, retr


# ------------------------------------------- the official printer, on the official layout


def _tpfp(scores, labels):
  """metrics.tpfp of the official code, in numpy as it is written there."""
  p = int(np.sum(labels))
  n = len(labels) - p
  perm = np.argsort(-scores, kind="mergesort", axis=0)
  stop = np.max(np.where(scores[perm] > -np.inf))
  labels = labels[perm[:stop + 1]]
  return np.hstack((0, np.cumsum(labels == 1))), np.hstack((0, np.cumsum(labels == 0))), p, n


def _official_auc(scores, labels):
  tp, fp, p, n = _tpfp(scores, labels)
  return np.trapezoid(tp / float(np.maximum(p, 1e-10)), fp / float(np.maximum(n, 1e-10)))


def _official_ap(scores, labels):
  tp, fp, p, _ = _tpfp(scores, labels)
  return np.trapezoid(np.maximum(tp, 1e-10) / np.maximum(tp + fp, 1e-10),
                      tp / float(np.maximum(p, 1e-10)))


def _official_verification(descs, verif):
  """The official eval_verification on the reference's pair distances (np.trapz, as there).

  The reference's own AP/AUC add the trapezoids one after another; numpy adds
  them pairwise: an AUC k / (n p) exactly halfway at the 7th digit prints by
  those last bits.
  """
  # pylint: disable-next=protected-access
  dist = {k: ref._pair_file_distances(descs, pairs, "l2")
          for k, pairs in (("pos", verif.positives), ("intra", verif.intra_negatives),
                           ("inter", verif.inter_negatives))}
  n_imb = len(verif.positives) + int(len(verif.positives) * 0.2)
  out = {}
  for t in "eht":
    labels = np.concatenate([np.zeros(len(verif.positives)), np.ones(len(verif.positives))])
    out[t] = {}
    for neg in ("inter", "intra"):
      d = np.concatenate([dist[neg][t], dist["pos"][t]])
      out[t][neg] = {"balanced": {"auc": _official_auc(-d, labels)},
                     "imbalanced": {"ap": _official_ap(-d[:n_imb], labels[:n_imb])}}
  return out


def _official_results(descs, verif, retr):
  """Reference results in the official pickles' layout."""
  vres = _official_verification(descs, verif)
  m = ref.matching(descs)
  mres = {seq: {t: {k + 1: {"ap": m["levels"][t]["per_sequence"][seq][k]} for k in range(5)}
                for t in "eht"} for seq in descs.sequences}
  q = ref.retrieval_query_aps(descs, retr)
  rres = {i: {t: {p: {"ap": q[i, lv, j]} for j, p in enumerate(ref.POOL_SIZES)}
              for lv, t in enumerate("eht")} for i in range(q.shape[0])}
  return vres, mres, rres


def _printed_rows(vres, mres, rres):
  """{block title suffix: rows} of what hpatches_results.py prints, numbers unformatted."""
  out = {}
  for variant, key in (("Balanced variant (auc)", "auc"), ("Imbalanced variant (ap)", "ap")):
    r = variant.split()[0].lower()
    out[variant] = [[LEVEL[t], vres[t]["inter"][r][key], vres[t]["intra"][r][key]]
                    for t in "eht"]
  sums, count = {"e": 0, "h": 0, "t": 0}, 0
  for seq in mres:
    for t in "eht":
      for k in range(1, 6):
        sums[t] += mres[seq][t][k]["ap"]
        count += 1
  per_level = count / 3.0
  row = [sums[t] / per_level for t in "eht"]
  out["mAP"] = [row + [sum(row) / float(len(row))]]
  n_q = float(len(rres))
  cells = {t: {p: 0 for p in ref.POOL_SIZES} for t in "eht"}
  for qid in rres:
    for t in "eht":
      for p in ref.POOL_SIZES:
        cells[t][p] += rres[qid][t][p]["ap"]
  rows = [[LEVEL[t]] + [cells[t][p] / n_q for p in sorted(cells[t])] for t in "eht"]
  table = np.array(rows)[:, 1:].astype(np.float32)
  rows.append(["mean"] + list(np.mean(table, axis=0)))
  out["queries"] = rows
  return out


def _tables(text):
  """[(title, [row tokens])] of every printed table, in order."""
  blocks, lines = [], text.splitlines()
  for i, line in enumerate(lines):
    if i + 2 < len(lines) and lines[i + 2].startswith("----"):
      rows = []
      for row in lines[i + 3:]:
        if not row.strip():
          break
        rows.append(row.split())
      blocks.append((line, lines[i + 1].split(), rows))
  return blocks


def _g(x):
  return format(float(x), "g")


def test_compare_tables_equal_the_official_printer_on_reference_results(scored):
  root, sets, _, verif, retr = scored
  loaded = results_cache.load_results(root / "results", ["weak", "strong"], list(types.BENCHMARKS),
                                      "a")
  text = report.format_official(loaded, types.BENCHMARKS, layout="official")
  tables = _tables(text)
  assert [t[0] for t in tables] == [
      "WEAK - Balanced variant (auc)", "WEAK - Imbalanced variant (ap)",
      "STRONG - Balanced variant (auc)", "STRONG - Imbalanced variant (ap)",
      "WEAK - mAP", "STRONG - mAP", f"WEAK - mAP {len(retr.queries)} queries",
      f"STRONG - mAP {len(retr.queries)} queries"]
  at = [text.index(f"{t} task results:") for t in ("Verification", "Matching", "Retrieval")]
  assert at == sorted(at)
  by_title = {title: (heads, rows) for title, heads, rows in tables}
  for name, descs in sets.items():
    want = _printed_rows(*_official_results(descs, verif, retr))
    for suffix, rows in want.items():
      title = next(t for t in by_title if t.startswith(name.upper()) and t.endswith(suffix))
      heads, got = by_title[title]
      if suffix == "mAP":
        assert heads == ["Easy", "Hard", "Tough", "mean"]
        assert got == [[_g(x) for x in rows[0]]]
      else:
        assert heads[0] == "Noise" and [r[0] for r in got] == [r[0] for r in rows]
        assert got == [[r[0]] + [_g(x) for x in r[1:]] for r in rows]
    assert by_title[f"{name.upper()} - mAP {len(retr.queries)} queries"][0] == (
        ["Noise"] + [str(p) for p in ref.POOL_SIZES])
  side = report.format_official(loaded, types.BENCHMARKS)  # compare's default layout
  assert [t[0].split("    ")[0] for t in _tables(side)][:2] == [
      "WEAK - Balanced variant (auc)", "WEAK - Imbalanced variant (ap)"]


def test_evaluate_prints_the_same_numbers(scored):
  _, sets, docs, verif, retr = scored
  text = report.format_tables(docs["strong"])
  want = _printed_rows(*_official_results(sets["strong"], verif, retr))
  tables = {title.split(" - ", 1)[1]: rows for title, _, rows in _tables(text)}
  assert tables["mAP"] == [[_g(x) for x in want["mAP"][0]]]
  assert tables["Balanced variant (auc)"] == [[r[0]] + [_g(x) for x in r[1:]]
                                              for r in want["Balanced variant (auc)"]]
  assert tables[f"mAP {len(retr.queries)} queries"][-1] == (
      ["mean"] + [_g(x) for x in want["queries"][-1][1:]])


def test_details_per_query_aps_average_to_the_printed_map(scored):
  root, sets, docs, _, retr = scored
  doc = json.loads((root / "strong.json").read_text())
  assert doc == docs["strong"]
  r = doc["details"]["retrieval"]
  assert r["queries"] == [[sets["strong"].sequences[s], int(i)] for s, i in retr.queries]
  want = ref.retrieval_query_aps(sets["strong"], retr)
  pools, rows = summary.retrieval_rows(r)
  for lv, level in enumerate("eht"):
    per_query = r["levels"][level]["per_query"]
    for j, p in enumerate(pools):
      aps = per_query[str(p)]
      assert len(aps) == len(retr.queries)
      assert np.allclose(aps, want[:, lv, j], rtol=0, atol=1e-12)
      total = 0.0
      for ap in aps:
        total += ap
      assert rows[lv][j + 1] == total / len(aps)  # what is printed: their mean, summed in order
      assert r["levels"][level]["per_pool"][str(p)] == pytest.approx(np.mean(aps), abs=1e-15)
    assert r["levels"][level]["ap"] == pytest.approx(
        np.mean([np.mean(per_query[str(p)]) for p in pools]), abs=1e-15)
  assert doc["retrieval"] == pytest.approx(np.mean([r["levels"][lv]["ap"] for lv in "eht"]))
  assert doc["details"]["matching"]["sequences"] == list(COUNTS)


def test_details_verification_curves(scored):
  """The official pickle's balanced (ROC) and imbalanced (PR) entries, full curves here."""
  _, sets, docs, verif, _ = scored
  levels = docs["strong"]["details"]["verification"]["levels"]
  cut = verification.imbalanced_list_size(N_PAIRS)
  positives_in_cut = cut - N_PAIRS  # the list is [negatives..., positives...]
  want = ref.verification(sets["strong"], verif)
  for lv in "eht":
    for neg in ("inter", "intra"):
      d = levels[lv][neg]
      pr, roc = d["imbalanced"], d["balanced"]
      assert pr["points"] == cut + 1 and pr["rank"] == list(range(cut + 1))
      assert roc["points"] == 2 * N_PAIRS + 1 == len(roc["tpr"])
      assert (pr["rc"][0], pr["pr"][0]) == (0.0, 1.0)
      assert pr["rc"][-1] == 1.0 and pr["pr"][-1] == positives_in_cut / cut
      assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
      assert np.all(np.diff(pr["rc"]) >= 0) and np.all(np.diff(roc["fpr"]) >= 0)
      # The official ap/auc: the trapezoid areas of these curves, the kernels' to rounding.
      assert pr["ap"] == np.trapezoid(pr["pr"], pr["rc"])
      assert roc["auc"] == np.trapezoid(roc["tpr"], roc["fpr"])
      assert pr["ap"] == pytest.approx(d["ap"], abs=1e-12)
      assert roc["auc"] == pytest.approx(d["auc"], abs=1e-12)
      assert d["ap"] == pytest.approx(want["levels"][lv][neg]["ap"], abs=1e-12)


def test_printed_auc_is_the_official_arithmetic_where_digits_tie():
  """AUC = k / (n p): with n = p = 2000 a multiple of 2.5e-7, so a quarter of them end in a 5
  at the 7th digit, and the last bits decide the printed 6th. The kernel's exact ratio and
  numpy's pairwise trapezoid differ there; the tables print the official (numpy) one."""
  from nhp_jax.evaluation import kernels  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(35)
  pos = rng.gamma(2.0, 1.0, 2000).astype(np.float32)
  neg = rng.gamma(4.0, 1.0, 2000).astype(np.float32)
  _, kernel_auc = kernels.verification_ap_auc(neg, pos, 2400)
  curves = score.verification_curves(neg, pos, 2400, 0)
  d = np.concatenate([neg, pos]).astype(np.float64)
  labels = np.concatenate([np.zeros(2000), np.ones(2000)])
  assert curves["balanced"]["auc"] == _official_auc(-d, labels)
  assert curves["imbalanced"]["ap"] == _official_ap(-d[:2400], labels[:2400])
  assert kernel_auc == pytest.approx(curves["balanced"]["auc"], abs=1e-15)
  assert _g(kernel_auc) != _g(curves["balanced"]["auc"])  # the kernel's would print otherwise
  result = {"levels": {lv: {n: {"ap": 0.0, "auc": kernel_auc, **curves}
                            for n in ("inter", "intra")} for lv in "eht"}}
  assert summary.verification_rows(result)["balanced"][0][1] == curves["balanced"]["auc"]
  assert "fpr" not in curves["balanced"] and "pr" not in curves["imbalanced"]  # max_points 0


def test_detail_scorers_keep_the_kernels_numbers(scored):
  _, sets, _, verif, retr = scored
  descs = sets["weak"]
  plain = verification.evaluate_verification(descs, verif, "l2")
  sampled = score.verification_with_curves(descs, verif, "l2", curve_points=7)
  full = score.verification_with_curves(descs, verif, "l2", curve_points=10**6)
  for lv in "eht":
    for neg in ("inter", "intra"):
      s, f = sampled["levels"][lv][neg], full["levels"][lv][neg]
      assert {k: s[k] for k in ("ap", "auc")} == plain["levels"][lv][neg]
      assert s["balanced"]["auc"] == f["balanced"]["auc"]  # from the whole curve either way
      for curve, keys in (("imbalanced", ("pr", "rc")), ("balanced", ("fpr", "tpr"))):
        ranks = s[curve]["rank"]
        assert len(ranks) == 7 and ranks[0] == 0 and ranks[-1] == s[curve]["points"] - 1
        for k in keys:
          assert s[curve][k] == [f[curve][k][i] for i in ranks]
  assert sampled["mAP"] == plain["mAP"]
  none = score.verification_with_curves(descs, verif, "l2", 0)["levels"]["e"]["inter"]
  assert set(none["imbalanced"]) == {"ap", "points"}
  per_query = score.retrieval_with_queries(descs, retr)
  kernel = retrieval.evaluate_retrieval(descs, retr)
  assert per_query["mAP"] == kernel["mAP"]
  for lv in "eht":
    got = {k: v for k, v in per_query["levels"][lv].items() if k != "per_query"}
    assert got == kernel["levels"][lv]
