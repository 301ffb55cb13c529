"""Small cases worked out on paper, with ties where the official tie order decides.

Descriptors are 1-d, so a distance is |a - b|. AP follows the official
trapezoid: each positive at rank k, with tp positives up to it, adds
(tp / k + max(tp - 1, 1e-10) / max(k - 1, 1e-10)) / 2, divided by the
number of positives.
"""

import numpy as np
import pytest

from nhp_jax.evaluation import kernels
from nhp_jax.evaluation import matching
from nhp_jax.evaluation import retrieval
from nhp_jax.evaluation import types
from nhp_jax.evaluation import verification
from tests.evaluation.routes import route  # noqa: F401  (fixture: both device routes)
from tests.reference import hpatches_reference as ref

pytestmark = pytest.mark.any_backend


def _term(tp, k):
  return (tp / k + max(tp - 1, 1e-10) / max(k - 1, 1e-10)) / 2


def _flat(tree, path=""):
  """Nested dicts and lists of numbers -> {path: number}."""
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{path}/{key}").items()}
  if isinstance(tree, list):
    return {k: v for i, sub in enumerate(tree) for k, v in _flat(sub, f"{path}/{i}").items()}
  return {path: tree}


def _assert_close(got, want):
  assert _flat(got) == pytest.approx(_flat(want), abs=1e-12)


def _descriptor_set(values: dict[str, np.ndarray]) -> types.DescriptorSet:
  """{sequence: (N, 16) values} -> DescriptorSet of 1-d descriptors."""
  counts = [len(v) for v in values.values()]
  return types.DescriptorSet(
      sequences=tuple(values), offsets=np.concatenate([[0], np.cumsum(counts)]),
      descs=np.concatenate(list(values.values())).astype(np.float32)[..., None])


def test_average_precision_tie_goes_to_the_earlier_entry(route):
  # Distances 0.1 P, 0.2 N, 0.2 P, 0.3 N: the tied negative is listed first,
  # so it ranks first: P N P N. Points (recall, precision): (0, 1),
  # (.5, 1), (.5, .5), (1, 2/3), (1, .5). Area .5 + .5 (.5 + 2/3) / 2 = 19/24.
  dist = np.array([0.1, 0.2, 0.2, 0.3])
  labels = np.array([True, False, True, False])
  assert kernels.average_precision(dist, labels) == pytest.approx(19 / 24, abs=1e-15)
  # Listed the other way round the positive wins the tie: P P N N, AP 1.
  assert kernels.average_precision(dist, np.array([True, True, False, False])) == 1.0
  # Two more positives never retrieved (official numpos): recall halves.
  assert kernels.average_precision(dist, labels, num_positives=4) == pytest.approx(19 / 48)
  # ROC: the negative at .2 follows one positive, the one at .3 two: (1 + 2) / 4.
  assert kernels.roc_auc(dist, labels) == pytest.approx(0.75, abs=1e-15)


def test_verification_by_hand(route):
  # Every `ref` is 0 and image 1 of each level (e1, h1, t1) holds the value
  # below, so a pair (s, 0, i, s', 1, j) has distance image1[s'][j].
  image1 = {"A": [1, 3, 2, 5, 4, 2, 0.5, 6, 3, 1], "B": [7, 1.5, 0.25, 8, 9]}
  values = {}
  for name, v in image1.items():
    table = np.zeros((len(v), 16))
    table[:, [1, 6, 11]] = np.array(v)[:, None]
    values[name] = table
  descs = _descriptor_set(values)

  def pairs(seq2, idx2):
    n = len(idx2)
    return types.PairList(np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n),
                          np.full(n, seq2), np.ones(n, np.int64), np.array(idx2))
  task = types.VerificationTask(
      positives=pairs(0, [0, 1, 2, 3, 4]),        # distances 1, 3, 2, 5, 4
      intra_negatives=pairs(0, [5, 6, 7, 8, 9]),  # 2, .5, 6, 3, 1
      inter_negatives=pairs(1, [0, 1, 2, 3, 4]))  # 7, 1.5, .25, 8, 9
  # Imbalanced: the first 5 + int(5 * .2) = 6 entries of [negatives, positives]
  # keep one positive, at distance 1. Intra: .5 N, 1 N (tie: negatives are
  # listed first), 1 P -> rank 3. Inter: .25 N, 1 P -> rank 2.
  intra_ap, inter_ap = _term(1, 3), _term(1, 2)
  # Balanced AUC = (positives strictly closer than each negative) / 25.
  # Intra: 2 -> 1, .5 -> 0, 6 -> 5, 3 -> 2 (the tied 3 is not), 1 -> 0: 8.
  # Inter: 7 -> 5, 1.5 -> 1, .25 -> 0, 8 -> 5, 9 -> 5: 16.
  got = verification.evaluate_verification(descs, task)
  for level in "eht":
    assert got["levels"][level]["intra"] == pytest.approx({"ap": intra_ap, "auc": 8 / 25})
    assert got["levels"][level]["inter"] == pytest.approx({"ap": inter_ap, "auc": 16 / 25})
  assert got["mAP"] == pytest.approx((intra_ap + inter_ap) / 2)
  _assert_close(got, ref.verification(descs, task))


def test_matching_by_hand(route):
  # One sequence of 3 patches, ref = 0, 10, 20; every target image equals
  # ref except e1 and e2.
  table = np.tile(np.array([0.0, 10, 20])[:, None], (1, 16))
  # e1 = .5, 21, 9: 0 -> .5 (patch 0, right), 10 -> 9 (patch 2, wrong, at 1),
  # 20 -> 21 (patch 1, wrong, at 1). Ranked: right, wrong, wrong: AP 1/3 of
  # the term at rank 1 (all 3 patches are positives).
  table[:, 1] = [0.5, 21, 9]
  # e2 = 10, 10, 30: equal distances go to the lowest index. 0 -> patch 0
  # (right, at 10); 10 -> patch 0 (wrong, at 0); 20 -> patch 0 (wrong, at 10,
  # tied with patch 0's match, which is listed first). Ranked: wrong at 0,
  # right at 10, wrong at 10: one hit at rank 2.
  table[:, 2] = [10, 10, 30]
  descs = _descriptor_set({"A": table})
  e_aps = [_term(1, 1) / 3, _term(1, 2) / 3, 1.0, 1.0, 1.0]
  got = matching.evaluate_matching(descs)
  assert got["levels"]["e"]["per_sequence"]["A"] == pytest.approx(e_aps, abs=1e-15)
  assert got["levels"]["e"]["ap"] == pytest.approx(np.mean(e_aps))
  assert got["levels"]["e"]["success"] == pytest.approx((1 / 3 + 1 / 3 + 3) / 5)
  for level in "ht":
    _assert_close(got["levels"][level],
                  {"ap": 1.0, "success": 1.0, "per_sequence": {"A": [1.0] * 5}})
  assert got["mAP"] == pytest.approx((np.mean(e_aps) + 2) / 3)
  _assert_close(got, ref.matching(descs))


def test_retrieval_by_hand(route):
  # Query: patch 0 of A, ref 0. Its positives k = 1..5 are at 1, 4, 2, 9, 3
  # at every level. Distractors in file order: B0 at 2 (ties a positive),
  # A1 at .5 (the query's own sequence: dropped), B1 at 3.5, B2 at .1, B3 at 5.
  a = np.zeros((2, 16))
  a[0, 1:] = np.tile([1, 4, 2, 9, 3], 3)
  a[1, 0] = 0.5
  b = np.zeros((4, 16))
  b[:, 0] = [2, 3.5, 0.1, 5]
  descs = _descriptor_set({"A": a, "B": b})
  task = types.RetrievalTask(queries=np.array([[0, 0]]),
                             distractors=np.array([[1, 0], [0, 1], [1, 1], [1, 2], [1, 3]]))
  expected = {
      # The 5 positives alone.
      "5": 1.0,
      # + B0 (2): 1 P, 2 P, 2 N (the positive is listed first), 3 P, 4 P, 9 P.
      "6": (_term(1, 1) + _term(2, 2) + _term(3, 4) + _term(4, 5) + _term(5, 6)) / 5,
      # + B1 (3.5): 1 P, 2 P, 2 N, 3 P, 3.5 N, 4 P, 9 P.
      "7": (_term(1, 1) + _term(2, 2) + _term(3, 4) + _term(4, 6) + _term(5, 7)) / 5,
      # Everything: .1 N, 1 P, 2 P, 2 N, 3 P, 3.5 N, 4 P, 5 N, 9 P.
      "100": (_term(1, 2) + _term(2, 3) + _term(3, 5) + _term(4, 7) + _term(5, 9)) / 5,
  }
  pools = tuple(int(p) for p in expected)
  got = retrieval.evaluate_retrieval(descs, task, pools)
  for level in "eht":
    assert got["levels"][level]["per_pool"] == pytest.approx(expected, abs=1e-15)
  assert got["mAP"] == pytest.approx(np.mean(list(expected.values())))
  _assert_close(got, ref.retrieval(descs, task, pools))
