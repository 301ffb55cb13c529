"""Triplet and pair samplers: constraints, exact distributions, curriculum, errors."""

import itertools

import numpy as np
import pytest

from nhp_jax import errors
from nhp_jax.data import layout
from nhp_jax.data import triplets

TOUGH = set(layout.TOUGH_IMAGES)


def _check_common(t: triplets.Triplets, num_labels: int, n: int) -> None:
  for part in t:
    assert part.shape == (n, 2) and part.dtype == np.int32
    assert ((part[:, 0] >= 0) & (part[:, 0] < num_labels)).all()
    assert ((part[:, 1] >= 0) & (part[:, 1] < layout.NUM_IMAGES)).all()
  np.testing.assert_array_equal(t.anchor[:, 0], t.positive[:, 0])
  assert (t.anchor[:, 1] != t.positive[:, 1]).all()
  assert (t.negative[:, 0] != t.anchor[:, 0]).all()


def _assert_fits(counts: dict, probs: dict) -> None:
  """Chi-square goodness of fit of empirical counts to exact probabilities.

  The bound df + 6 * sqrt(2 df) is far in the tail of the chi-square law
  (a false alarm is below one in a million); a biased sampler exceeds it.
  """
  assert set(counts) <= set(probs), f"impossible outcomes {set(counts) - set(probs)}"
  total = sum(counts.values())
  stat = sum((counts.get(k, 0) - total * p) ** 2 / (total * p) for k, p in probs.items())
  df = len(probs) - 1
  assert stat < df + 6 * np.sqrt(2 * df), (stat, df)


def _counts(*columns) -> dict:
  keys, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
  return {tuple(int(v) for v in k): int(c) for k, c in zip(keys, counts)}


def _reference_label_probs(num_labels: int, gap: int) -> dict:
  """Exact P(c1, c2): c1 uniform over labels with an allowed c2, c2 uniform over those."""
  allowed = {c1: [c2 for c2 in range(num_labels) if abs(c2 - c1) >= gap]
             for c1 in range(num_labels)}
  anchors = [c1 for c1 in allowed if allowed[c1]]
  return {(c1, c2): 1 / len(anchors) / len(allowed[c1])
          for c1 in anchors for c2 in allowed[c1]}


def _reference_image_probs(tough_positive: bool) -> dict:
  """Exact P(anchor image, positive image) by enumeration."""
  probs = {}
  for a in range(layout.NUM_IMAGES):
    choices = [p for p in (sorted(TOUGH) if tough_positive else range(layout.NUM_IMAGES))
               if p != a]
    for p in choices:
      probs[(a, p)] = 1 / layout.NUM_IMAGES / len(choices)
  return probs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("strategy", list(triplets.STRATEGIES))
def test_constraints_hold_for_every_strategy(seed, strategy):
  num_labels, n = 30, 20_000
  t = triplets.sample_triplets(np.random.default_rng(seed), num_labels, n, strategy,
                               far_gap=12)
  _check_common(t, num_labels, n)
  if strategy == "tough_positive":
    assert np.isin(t.positive[:, 1], layout.TOUGH_IMAGES).all()
  if strategy == "far_negative":
    assert (np.abs(t.negative[:, 0] - t.anchor[:, 0]) >= 12).all()
  # Every label can be an anchor and a negative; every image is reachable.
  assert set(t.anchor[:, 0]) == set(range(num_labels))
  assert set(t.negative[:, 0]) == set(range(num_labels))
  assert set(t.anchor[:, 1]) == set(range(layout.NUM_IMAGES))
  assert set(t.negative[:, 1]) == set(range(layout.NUM_IMAGES))
  expected_positive = TOUGH if strategy == "tough_positive" else set(range(16))
  assert set(t.positive[:, 1]) == expected_positive


@pytest.mark.parametrize("strategy,gap", [("regular", 1), ("far_negative", 1),
                                          ("far_negative", 3), ("far_negative", 5),
                                          ("far_negative", 6)])
def test_label_distribution_is_exact(strategy, gap):
  # 7 labels, gap 5: anchors 2, 3, 4 have no allowed negative; gap 6: only 0<->6.
  num_labels = 7
  t = triplets.sample_triplets(np.random.default_rng(3), num_labels, 200_000, strategy,
                               far_gap=gap)
  counts = _counts(t.anchor[:, 0], t.negative[:, 0])
  _assert_fits(counts, _reference_label_probs(num_labels, gap))


@pytest.mark.parametrize("strategy", ["regular", "tough_positive"])
def test_image_distribution_is_exact(strategy):
  t = triplets.sample_triplets(np.random.default_rng(4), 50, 300_000, strategy)
  counts = _counts(t.anchor[:, 1], t.positive[:, 1])
  reference = _reference_image_probs(strategy == "tough_positive")
  _assert_fits(counts, reference)
  # Negative images are uniform and independent of the anchor's.
  counts = _counts(t.anchor[:, 1], t.negative[:, 1])
  uniform = {(a, b): 1 / 256 for a in range(16) for b in range(16)}
  _assert_fits(counts, uniform)


def test_far_negative_largest_gap_pairs_the_two_ends():
  t = triplets.sample_triplets(np.random.default_rng(0), 9, 1000, "far_negative",
                               far_gap=8)
  pairs = set(map(tuple, np.stack([t.anchor[:, 0], t.negative[:, 0]], 1).tolist()))
  assert pairs == {(0, 8), (8, 0)}


@pytest.mark.parametrize("gap", [0, -3, 9, 10_000])
def test_infeasible_gap_names_the_largest_feasible(gap):
  with pytest.raises(errors.ConfigError, match=r"1\.\.8 \(the largest feasible gap"):
    triplets.sample_triplets(np.random.default_rng(0), 9, 10, "far_negative", far_gap=gap)


def test_gap_is_ignored_by_other_strategies():
  t = triplets.sample_triplets(np.random.default_rng(0), 9, 10, "regular", far_gap=10_000)
  _check_common(t, 9, 10)


def test_unknown_strategy_lists_known_ones():
  with pytest.raises(errors.ConfigError, match="regular, tough_positive, far_negative"):
    triplets.sample_triplets(np.random.default_rng(0), 10, 5, "hard_negative")


def test_too_few_labels():
  with pytest.raises(errors.ConfigError, match=">= 2 labels"):
    triplets.sample_triplets(np.random.default_rng(0), 1, 5)


@pytest.mark.parametrize("num,block,n", [(3, 2, 30_000), (4, 2, 30_000), (5, 2, 30_000),
                                         (6, 3, 30_001), (40, 7, 70_000)])
def test_distinct_blocks_are_uniform_ordered_subsets(num, block, n):
  # 2 * block > num takes the permutation branch, otherwise the redraw branch.
  t = triplets.sample_triplets(np.random.default_rng(5), num, n, "regular",
                               distinct_block=block)
  _check_common(t, num, n)
  anchors = t.anchor[:, 0]
  full = anchors[:n - n % block].reshape(-1, block)
  assert all(len(set(row)) == block for row in full.tolist())
  assert len(set(anchors[n - n % block:].tolist())) == n % block
  if block == 2:  # every ordered pair of distinct labels equally likely
    probs = {p: 1 / (num * (num - 1)) for p in itertools.permutations(range(num), 2)}
    _assert_fits(_counts(full[:, 0], full[:, 1]), probs)
  else:  # each position's label stays uniform
    for col in full.T:
      _assert_fits(_counts(col), {(k,): 1 / num for k in range(num)})


def test_distinct_block_with_far_negatives_uses_only_feasible_anchors():
  # 10 labels, gap 7: anchors 0, 1, 2, 7, 8, 9; a block of 6 takes all of them.
  t = triplets.sample_triplets(np.random.default_rng(0), 10, 600, "far_negative",
                               far_gap=7, distinct_block=6)
  _check_common(t, 10, 600)
  for row in t.anchor[:, 0].reshape(-1, 6):
    assert sorted(row) == [0, 1, 2, 7, 8, 9]
  with pytest.raises(errors.ConfigError, match="block size in 1..6"):
    triplets.sample_triplets(np.random.default_rng(0), 10, 600, "far_negative",
                             far_gap=7, distinct_block=7)


def test_same_generator_state_same_triplets():
  a = triplets.sample_triplets(np.random.default_rng(7), 100, 500, "tough_positive")
  b = triplets.sample_triplets(np.random.default_rng(7), 100, 500, "tough_positive")
  c = triplets.sample_triplets(np.random.default_rng(8), 100, 500, "tough_positive")
  for x, y, z in zip(a, b, c):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.anchor, c.anchor)


def test_flat_index_matches_a_reshaped_array():
  arr = np.random.default_rng(0).integers(0, 256, (5, 16, 32, 32), dtype=np.uint8)
  t = triplets.sample_triplets(np.random.default_rng(1), 5, 40, "regular")
  flat = t.flat()
  assert flat.shape == (40, 3) and flat.dtype == np.int32
  view = arr.reshape(-1, 32, 32)
  for i in range(40):
    for k, part in enumerate(t):
      np.testing.assert_array_equal(view[flat[i, k]], arr[part[i, 0], part[i, 1]])


def test_empty_draw():
  t = triplets.sample_triplets(np.random.default_rng(0), 5, 0, "far_negative", far_gap=2,
                               distinct_block=3)
  assert all(part.shape == (0, 2) for part in t)


def test_default_curriculum_maps_epochs():
  schedule = triplets.DEFAULT_CURRICULUM
  assert schedule == (("tough_positive", 10), ("regular", 35), ("far_negative", 5))
  got = [triplets.strategy_for_epoch(schedule, e) for e in range(60)]
  assert got == ["tough_positive"] * 10 + ["regular"] * 35 + ["far_negative"] * 15
  assert triplets.strategy_for_epoch(schedule, 10**6) == "far_negative"
  assert triplets.strategy_for_epoch("regular", 123) == "regular"
  assert triplets.strategy_for_epoch([("regular", 1), ("tough_positive", 2)], 2) == \
      "tough_positive"


@pytest.mark.parametrize("schedule,match", [
    ((), "at least one"),
    ((("regular", 0),), "epochs must be an int >= 1"),
    ((("regular", 2.5),), "epochs must be an int >= 1"),
    ((("hardest", 3),), "known: regular, tough_positive, far_negative"),
    ("hardest", "known: regular"),
    (5, "strategy name or"),
])
def test_bad_schedules_fail(schedule, match):
  with pytest.raises(errors.ConfigError, match=match):
    triplets.as_schedule(schedule)


def test_pair_order_is_a_permutation_per_rng():
  a = triplets.pair_order(np.random.default_rng(0), 20)
  b = triplets.pair_order(np.random.default_rng(1), 20)
  assert a.dtype == np.int32
  np.testing.assert_array_equal(np.sort(a), np.arange(320))
  np.testing.assert_array_equal(np.sort(b), np.arange(320))
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(
      triplets.pair_order(np.random.default_rng(0), 20, shuffle=False), np.arange(320))
