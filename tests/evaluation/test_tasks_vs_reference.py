"""The three benchmarks on arrays against the slow NumPy reference of the official code.

Random float descriptors, descriptors with constant exact ties (integers
0..2 in 4 dimensions), tiny sequences (1 and 2 patches), pools longer than
the lists, and bad inputs. Shapes repeat across cases so kernels compile
only a few times.
"""

import numpy as np
import pytest

from nhp_jax.errors import ConfigError, DescriptorError, TaskFileError
from nhp_jax.evaluation import matching
from nhp_jax.evaluation import retrieval
from nhp_jax.evaluation import summary
from nhp_jax.evaluation import types
from nhp_jax.evaluation import verification
from tests.evaluation.routes import route  # noqa: F401  (fixture: both device routes)
from tests.reference import hpatches_reference as ref

pytestmark = pytest.mark.any_backend

COUNTS = (9, 1, 2, 23)   # patches per sequence: tiny ones included
POOLS = (1, 4, 5, 6, 10, 30, 100)  # below, at and beyond the 5 positives and the list
CASES = [("float", "l2", 0), ("float", "l2", 1), ("ties", "l2", 0), ("ties", "l2", 1),
         ("float", "l1", 2), ("ties", "l1", 2)]


def _dim(kind):
  return 4 if kind == "ties" else 8


def _assert_same(got, want, path="result"):
  """Same keys and numbers (to 1e-9) throughout nested dicts and lists."""
  if isinstance(want, dict):
    assert set(got) == set(want), path
    for key in want:
      _assert_same(got[key], want[key], f"{path}[{key!r}]")
  elif isinstance(want, list):
    assert len(got) == len(want), path
    for i, (g, w) in enumerate(zip(got, want)):
      _assert_same(g, w, f"{path}[{i}]")
  else:
    assert isinstance(got, float), path
    assert got == pytest.approx(want, abs=1e-9), path


@pytest.mark.parametrize("kind,metric,seed", CASES)
def test_verification_matches_reference(kind, metric, seed, route):
  rng = np.random.default_rng(seed)
  descs = ref.descriptor_set(COUNTS, _dim(kind), rng, kind)
  task = ref.verification_task(COUNTS, 60, rng)
  got = verification.evaluate_verification(descs, task, metric)
  _assert_same(got, ref.verification(descs, task, metric))


@pytest.mark.parametrize("kind,metric,seed", CASES)
def test_matching_matches_reference(kind, metric, seed, route):
  rng = np.random.default_rng(seed)
  descs = ref.descriptor_set(COUNTS, _dim(kind), rng, kind)
  if kind == "float":
    # Some targets close to their reference patch, so matches are not all wrong.
    descs.descs[:, 1:] = descs.descs[:, :1] + 0.7 * descs.descs[:, 1:]
  _assert_same(matching.evaluate_matching(descs, metric), ref.matching(descs, metric))


@pytest.mark.parametrize("kind,metric,seed", CASES)
def test_retrieval_matches_reference(kind, metric, seed, route):
  rng = np.random.default_rng(seed)
  descs = ref.descriptor_set(COUNTS, _dim(kind), rng, kind)
  task = ref.retrieval_task(COUNTS, 12, 20, rng)
  got = retrieval.evaluate_retrieval(descs, task, POOLS, metric)
  _assert_same(got, ref.retrieval(descs, task, POOLS, metric))


@pytest.mark.parametrize("kind,metric,seed", CASES[1::2])
def test_retrieval_blocks_and_chunks_match_reference(kind, metric, seed, route):
  """Small blocks and chunks: pools end inside and past whole chunks."""
  rng = np.random.default_rng(seed + 10)
  descs = ref.descriptor_set(COUNTS, _dim(kind), rng, kind)
  task = ref.retrieval_task(COUNTS, 9, 26, rng)
  got = retrieval.query_ap(descs, task, POOLS, metric, block=4, exact_block=2, chunk=8)
  want = ref.retrieval_query_aps(descs, task, POOLS, metric)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_retrieval_screen_defers_near_ties_to_exact_distances(route):
  """Distractors whose distance equals a positive's up to rounding.

  Queries are 0 and distractors are coordinate permutations of positives:
  equal distances in exact arithmetic, equal or one ulp apart once summed
  in order, and indistinguishable for the Gram screen, which must hand
  them to the exact path.
  """
  rng = np.random.default_rng(5)
  descs = ref.descriptor_set(COUNTS, 8, rng)
  descs.descs[:, 0] = 0.0
  task = ref.retrieval_task(COUNTS, 12, 20, rng)
  for n, (s, i) in enumerate(task.distractors):
    q_seq, q_idx = task.queries[n % len(task.queries)]
    positive = descs.descs[descs.offsets[q_seq] + q_idx, 1 + n % 15]
    descs.descs[descs.offsets[s] + i, 0] = rng.permutation(positive)
  screened = retrieval.query_ap(descs, task, POOLS, "l2")
  np.testing.assert_array_equal(screened,
                                retrieval.query_ap(descs, task, POOLS, "l2", force_exact=True))
  np.testing.assert_allclose(screened, ref.retrieval_query_aps(descs, task, POOLS), atol=1e-12)


def test_retrieval_without_distractors_scores_one(route):
  rng = np.random.default_rng(6)
  descs = ref.descriptor_set(COUNTS, 8, rng)
  task = types.RetrievalTask(queries=np.array([[0, 1], [3, 5]]),
                             distractors=np.zeros((0, 2), np.int64))
  got = retrieval.evaluate_retrieval(descs, task, POOLS)
  _assert_same(got, ref.retrieval(descs, task, POOLS))
  assert got["mAP"] == 1.0


def test_headline_collects_the_three_maps():
  rng = np.random.default_rng(7)
  descs = ref.descriptor_set(COUNTS, 8, rng)
  results = {"matching": matching.evaluate_matching(descs),
             "retrieval": retrieval.evaluate_retrieval(
                 descs, ref.retrieval_task(COUNTS, 12, 20, rng), POOLS)}
  assert summary.headline(results) == {"matching": results["matching"]["mAP"],
                                       "retrieval": results["retrieval"]["mAP"]}


def _empty_pairs():
  empty = np.zeros(0, np.int64)
  return types.PairList(empty, empty, empty, empty, empty, empty)


def test_bad_inputs_raise_clear_errors():
  rng = np.random.default_rng(8)
  descs = ref.descriptor_set(COUNTS, 8, rng)
  task = ref.verification_task(COUNTS, 60, rng)
  with pytest.raises(TaskFileError, match="at least one pair"):
    verification.evaluate_verification(
        descs, types.VerificationTask(_empty_pairs(), _empty_pairs(), _empty_pairs()))
  short = types.VerificationTask(task.positives, ref.pair_list(COUNTS, 59, rng, True),
                                 task.inter_negatives)
  with pytest.raises(TaskFileError, match="intra negatives: expected as many pairs"):
    verification.evaluate_verification(descs, short)
  bad = types.PairList(task.positives.seq1, task.positives.t1, task.positives.idx1 + 30,
                       task.positives.seq2, task.positives.t2, task.positives.idx2)
  with pytest.raises(TaskFileError, match="idx1 must be a patch of its sequence"):
    verification.evaluate_verification(
        descs, types.VerificationTask(bad, task.intra_negatives, task.inter_negatives))
  with pytest.raises(TaskFileError, match="at least one query"):
    retrieval.evaluate_retrieval(descs, types.RetrievalTask(np.zeros((0, 2), np.int64),
                                                            np.array([[0, 1]])))
  with pytest.raises(TaskFileError, match="seq_1, which has 1 patches"):
    retrieval.evaluate_retrieval(descs, types.RetrievalTask(np.array([[1, 3]]),
                                                            np.array([[0, 1]])))
  with pytest.raises(ConfigError, match="pool_sizes"):
    retrieval.evaluate_retrieval(descs, ref.retrieval_task(COUNTS, 2, 2, rng), (0, 5))
  with pytest.raises(ConfigError, match="metric"):
    matching.evaluate_matching(descs, "cosine")
  nan = descs.descs.copy()
  nan[3, 2, 1] = np.nan
  with pytest.raises(DescriptorError, match="1 NaN/Inf"):
    matching.evaluate_matching(types.DescriptorSet(descs.sequences, descs.offsets, nan))
  with_empty = ref.descriptor_set((3, 0, 2), 8, rng)
  with pytest.raises(DescriptorError, match="seq_1 has none"):
    matching.evaluate_matching(with_empty)
  huge = types.DescriptorSet(descs.sequences, descs.offsets,
                             np.sign(descs.descs) * np.float32(1e38))
  with pytest.raises(DescriptorError, match="overflow"):
    verification.evaluate_verification(huge, task)
