"""Evaluation kernels against the slow NumPy reference of the official protocol."""

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nhp_jax.errors import ConfigError
from nhp_jax.evaluation import kernels
from tests.evaluation.routes import route  # noqa: F401  (fixture: both device routes)
from tests.reference import hpatches_reference as ref

pytestmark = pytest.mark.any_backend

METRICS = ("l2", "l1")


def _descriptors(rng, shape, kind):
  """float: normal values of mixed magnitudes; ties: integers 0..2 (distances tie)."""
  if kind == "ties":
    return rng.integers(0, 3, shape).astype(np.float32)
  scale = 10.0 ** rng.uniform(-3, 3, shape[:-1] + (1,))
  return (rng.normal(size=shape) * scale).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", [4, 128, 200])
def test_verification_distance_is_the_reference_bit_for_bit(metric, dim):
  rng = np.random.default_rng(dim)
  a, b = _descriptors(rng, (300, dim), "float"), _descriptors(rng, (300, dim), "float")
  with jax.enable_x64(True):
    got = np.asarray(jax.jit(kernels.verification_distance, static_argnames="metric")(
        a, b, metric=metric))
  want = np.array([ref.verification_distance(x, y, metric) for x, y in zip(a, b)])
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("metric", METRICS)
def test_reference_distances_are_scipys(metric):
  """The reference's precision model is what scipy (the official code's library) computes."""
  distance = pytest.importorskip("scipy.spatial.distance")
  rng = np.random.default_rng(1)
  a, b = _descriptors(rng, (40, 128), "float"), _descriptors(rng, (50, 128), "float")
  official = distance.euclidean if metric == "l2" else distance.cityblock
  if metric == "l2" and np.asarray(official(a[0], b[0])).dtype == np.float32:
    # SciPy 1.18 with NumPy 2.5 (what Python 3.12/3.13 resolve to) computes
    # euclidean on float32 vectors in float32 (numpy.linalg.norm); the official
    # numbers were made with SciPy's float64 sum and root, which the reference
    # and the kernels keep. The two differ by at most one float32 ulp.
    for x, y in zip(a, b):
      np.testing.assert_array_max_ulp(ref.verification_distance(x, y, metric),
                                      official(x, y), maxulp=1)
  else:
    for x, y in zip(a, b):
      assert ref.verification_distance(x, y, metric) == official(x, y)
  np.testing.assert_array_equal(
      ref.cdist(a, b, metric),
      distance.cdist(a, b, "euclidean" if metric == "l2" else "cityblock"))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["float", "ties"])
@pytest.mark.parametrize("dim", [8, 128])
def test_exact_distances_are_the_reference_bit_for_bit(metric, kind, dim):
  rng = np.random.default_rng(2)
  a, b = _descriptors(rng, (9, dim), kind), _descriptors(rng, (64, dim), kind)
  with jax.enable_x64(True):
    got = np.asarray(jax.jit(kernels.exact_distances, static_argnames="metric")(
        a, b, metric=metric, zero=kernels.opaque_zero()))
  np.testing.assert_array_equal(got, ref.cdist(a, b, metric))


def test_paired_distances_blocks_and_padding(route):
  rng = np.random.default_rng(3)
  table = _descriptors(rng, (50, 16), "float")
  rows_a, rows_b = rng.integers(0, 50, 23), rng.integers(0, 50, 23)
  got = kernels.paired_distances(table, rows_a, rows_b, "l2", block=8)
  want = [ref.verification_distance(table[i], table[j], "l2") for i, j in zip(rows_a, rows_b)]
  np.testing.assert_array_equal(got, want)
  assert kernels.paired_distances(table, rows_a[:0], rows_b[:0], "l2", block=8).shape == (0,)


def _reference_nn(queries, cands, metric):
  dist = np.stack([ref.cdist(queries, c, metric) for c in cands])
  index = np.argmin(dist, axis=2)
  return index, np.take_along_axis(dist, index[..., None], 2)[..., 0]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["float", "ties"])
@pytest.mark.parametrize("seed", [0, 1])
def test_nearest_neighbours_match_reference(metric, kind, seed, route):
  rng = np.random.default_rng(seed)
  dim = 4 if kind == "ties" else 8
  queries = _descriptors(rng, (37, dim), kind)
  cands = _descriptors(rng, (3, 29, dim), kind)
  # Near-duplicates: a candidate one float32 ulp away from another, and exact
  # copies at higher indices, where only the exact recheck can decide.
  cands[0, 5] = np.nextafter(cands[0, 4], np.float32(np.inf))
  cands[1, 20] = cands[1, 3]
  queries[:4] = cands[1, 3]
  index, dist = kernels.nearest_neighbours(queries, cands, metric, block=16, chunk=8)
  want_index, want_dist = _reference_nn(queries, cands, metric)
  np.testing.assert_array_equal(index, want_index)
  np.testing.assert_array_equal(dist, want_dist)


def test_nearest_neighbours_defer_near_ties_to_exact_distances(route):
  """Candidates that permute each other's coordinates, seen from 0: their distances
  are equal in exact arithmetic and equal or an ulp apart once summed in order,
  below what the float32 screen can tell apart."""
  rng = np.random.default_rng(5)
  base = _descriptors(rng, (6, 16), "float")
  cands = np.stack([np.stack([rng.permutation(b) for b in base for _ in range(5)])
                    for _ in range(2)])
  queries = np.zeros((3, 16), np.float32)
  queries[1:] = 1e-3 * _descriptors(rng, (2, 16), "float")
  index, dist = kernels.nearest_neighbours(queries, cands, "l2", chunk=8)
  want_index, want_dist = _reference_nn(queries, cands, "l2")
  np.testing.assert_array_equal(index, want_index)
  np.testing.assert_array_equal(dist, want_dist)


def test_nearest_neighbour_ties_go_to_the_lowest_index(route):
  cands = np.zeros((1, 12, 2), np.float32)
  cands[0, :, 0] = [5, 3, 9, 1, 1, 7, 1, 3, 8, 1, 4, 6]
  # 1 is at 3, 4, 6 and 9; 2 is as far from the 3 at index 1 as from the 1s.
  queries = np.array([[1, 0], [2, 0], [0, 0]], np.float32)
  index, dist = kernels.nearest_neighbours(queries, cands, "l2", chunk=8)
  np.testing.assert_array_equal(index[0], [3, 1, 3])
  np.testing.assert_array_equal(dist[0], [0.0, 1.0, 1.0])


def test_nearest_neighbours_of_huge_descriptors_are_exact(route):
  rng = np.random.default_rng(4)
  queries = _descriptors(rng, (5, 8), "float") * np.float32(1e19)
  cands = _descriptors(rng, (2, 7, 8), "float") * np.float32(1e19)
  index, dist = kernels.nearest_neighbours(queries, cands, "l2")
  want_index, want_dist = _reference_nn(queries, cands, "l2")
  np.testing.assert_array_equal(index, want_index)
  np.testing.assert_array_equal(dist, want_dist)


def test_nearest_neighbours_width_must_fit():
  with pytest.raises(ValueError, match="width"):
    kernels.nearest_neighbours(np.zeros((2, 3), np.float32), np.zeros((1, 9, 3), np.float32),
                               width=8, chunk=8)


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=16,
                           max_size=16),
                  st.integers(0, 3), st.integers(0, 2))
def test_average_precision_and_auc_match_reference(route, items, extra_pos, num_inf):
  """Small integer distances tie constantly; +inf entries are never retrieved.

  Lists have 16 to 18 entries: few shapes, so few compilations.
  """
  dist = np.array([float(d) for d, _ in items] + [np.inf] * num_inf)
  labels = np.array([lab for _, lab in items] + [True, False][:num_inf])
  numpos = int(labels.sum()) + extra_pos
  assert kernels.average_precision(dist, labels, numpos) == pytest.approx(
      ref.average_precision(-dist, labels, numpos), abs=1e-12)
  assert kernels.average_precision(dist, labels) == pytest.approx(
      ref.average_precision(-dist, labels), abs=1e-12)
  assert kernels.roc_auc(dist, labels) == pytest.approx(ref.roc_auc(-dist, labels), abs=1e-12)


def test_average_precision_rows_and_bad_input(route):
  dist = np.array([[0.5, 0.1, np.inf], [2.0, 2.0, 1.0]])
  labels = np.array([[True, False, True], [False, True, True]])
  got = kernels.average_precision(dist, labels)
  want = [ref.average_precision(-d, lab) for d, lab in zip(dist, labels)]
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
  with pytest.raises(ValueError, match="shapes"):
    kernels.average_precision(dist, labels[:, :2])
  with pytest.raises(ValueError, match="NaN"):
    kernels.average_precision(np.array([np.nan]), np.array([True]))
  with pytest.raises(ValueError, match="num_positives"):
    kernels.average_precision(dist[0], labels[0], num_positives=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sizes", [(40, 40), (40, 25), (7, 40), (0, 12), (40, 1)])
def test_verification_ap_auc_match_reference(seed, sizes, route):
  """Integer-valued float32 distances: negatives and positives tie constantly."""
  rng = np.random.default_rng(seed)
  num_neg, num_pos = sizes
  neg = rng.integers(0, 6, num_neg).astype(np.float32)
  pos = rng.integers(0, 6, num_pos).astype(np.float32)
  cut = num_pos + int(num_pos * 0.2)
  ap, auc = kernels.verification_ap_auc(neg, pos, cut)
  dist = np.concatenate([neg, pos]).astype(np.float64)
  labels = np.concatenate([np.zeros(num_neg), np.ones(num_pos)])
  assert ap == pytest.approx(ref.average_precision(-dist[:cut], labels[:cut]), abs=1e-12)
  assert auc == pytest.approx(ref.roc_auc(-dist, labels), abs=1e-12)


def test_trapezoid_terms_start_at_precision_one():
  # First item a positive: (1 + 1) / 2. A positive at rank 3 after two
  # negatives: precision 1/3 there and 1e-10 / 2 just before it.
  with jax.enable_x64(True):
    terms = np.asarray(kernels.trapezoid_terms(jnp.array([1, 1]), jnp.array([1, 3])))
  np.testing.assert_allclose(terms, [1.0, (1 / 3 + 1e-10 / 2) / 2], rtol=1e-15)


def test_unknown_metric_lists_the_known_ones():
  with pytest.raises(ConfigError, match="l1, l2"):
    kernels.check_metric("cosine")
