"""Anchor-positive sampling and its tf.data pipeline (batches for the HardNet loss)."""

import numpy as np
import pytest

from nhp_jax import errors
from nhp_jax.data import layout, pipelines, triplets


def _pairs(strategy, num_labels=30, n=1000, batch_size=10, seed=0):
  return triplets.sample_anchor_positive(np.random.default_rng(seed), num_labels, n, strategy,
                                         batch_size=batch_size)


@pytest.mark.parametrize("strategy", ["regular", "tough_positive"])
@pytest.mark.parametrize("num_labels,batch_size", [(30, 10), (12, 12), (500, 64)])
def test_distinct_labels_per_batch_and_two_different_images(strategy, num_labels, batch_size):
  n = 20 * batch_size + 3   # a partial last block too
  pairs = _pairs(strategy, num_labels, n, batch_size)
  assert pairs.anchor.shape == pairs.positive.shape == (n, 2)
  np.testing.assert_array_equal(pairs.anchor[:, 0], pairs.positive[:, 0])
  labels = pairs.anchor[:, 0]
  assert labels.min() >= 0 and labels.max() < num_labels
  for start in range(0, n, batch_size):
    block = labels[start:start + batch_size]
    assert len(set(block.tolist())) == len(block)
  assert (pairs.anchor[:, 1] != pairs.positive[:, 1]).all()
  assert pairs.anchor[:, 1].min() >= 0 and pairs.anchor[:, 1].max() < layout.NUM_IMAGES
  if strategy == "tough_positive":
    assert np.isin(pairs.positive[:, 1], layout.TOUGH_IMAGES).all()
  flat = pairs.flat()
  np.testing.assert_array_equal(flat[:, 0], pairs.anchor[:, 0] * 16 + pairs.anchor[:, 1])
  np.testing.assert_array_equal(flat[:, 1], pairs.positive[:, 0] * 16 + pairs.positive[:, 1])


def test_draws_cover_every_label_and_image_pair():
  pairs = _pairs("regular", num_labels=20, n=20_000, batch_size=8)
  assert np.bincount(pairs.anchor[:, 0], minlength=20).min() > 800   # 1000 expected each
  images = pairs.anchor[:, 1] * 16 + pairs.positive[:, 1]
  counts = np.bincount(images, minlength=256).reshape(16, 16)
  assert (np.diag(counts) == 0).all()
  assert counts[~np.eye(16, dtype=bool)].min() > 40                  # 83 expected each


def test_deterministic_per_generator():
  np.testing.assert_array_equal(_pairs("regular", seed=3).flat(), _pairs("regular", seed=3).flat())
  assert not np.array_equal(_pairs("regular", seed=3).flat(), _pairs("regular", seed=4).flat())


def test_bad_requests_fail_clearly():
  with pytest.raises(errors.ConfigError, match="far_negative.*regular or tough_positive"):
    _pairs("far_negative")
  with pytest.raises(errors.ConfigError, match="2 <= batch size <= 30"):
    _pairs("regular", batch_size=31)
  with pytest.raises(errors.ConfigError, match="unknown triplet strategy"):
    _pairs("hardest")


def test_pipeline_gathers_the_epoch_pairs_and_resumes(random_patchset):
  ps = random_patchset  # 27 labels
  kwargs = dict(batch_size=9, seed=5, pairs_per_epoch=40, schedule="tough_positive",
                num_epochs=2)
  batches = list(pipelines.as_numpy(pipelines.anchor_positive_dataset(ps, **kwargs)))
  assert len(batches) == 2 * 4   # 40 // 9 = 4 batches per epoch
  flat_clean = ps.clean.reshape(-1, 32, 32)
  for epoch in range(2):
    index = pipelines.anchor_positive_epoch_indices(
        ps.num_labels, 5, epoch, batch_size=9, pairs_per_epoch=40, schedule="tough_positive")
    assert index.shape == (36, 2)
    for k in range(4):
      batch = batches[epoch * 4 + k]
      rows = index[k * 9:(k + 1) * 9]
      assert set(batch) == {"anchor", "positive"}
      for i, name in enumerate(("anchor", "positive")):
        assert batch[name].shape == (9, 32, 32, 1) and batch[name].dtype == np.uint8
        np.testing.assert_array_equal(batch[name][..., 0], flat_clean[rows[:, i]])
  resumed = list(pipelines.as_numpy(pipelines.anchor_positive_dataset(
      ps, start_step=5, **kwargs)))
  assert len(resumed) == 3
  for a, b in zip(resumed, batches[5:]):
    np.testing.assert_array_equal(a["anchor"], b["anchor"])
    np.testing.assert_array_equal(a["positive"], b["positive"])


def test_pipeline_noisy_source_and_errors(random_patchset):
  ps = random_patchset
  batch = next(pipelines.as_numpy(pipelines.anchor_positive_dataset(
      ps, batch_size=4, seed=0, pairs_per_epoch=4, source="noisy")))
  index = pipelines.anchor_positive_epoch_indices(ps.num_labels, 0, 0, batch_size=4,
                                                  pairs_per_epoch=4)
  np.testing.assert_array_equal(batch["positive"][..., 0],
                                ps.noisy.reshape(-1, 32, 32)[index[:, 1]])
  with pytest.raises(errors.ConfigError, match="far_negative"):
    pipelines.anchor_positive_dataset(ps, batch_size=4, seed=0, pairs_per_epoch=8,
                                      schedule=(("regular", 1), ("far_negative", 1)))
  with pytest.raises(errors.ConfigError, match="must be >= batch_size"):
    pipelines.anchor_positive_dataset(ps, batch_size=8, seed=0, pairs_per_epoch=4)
  with pytest.raises(errors.ConfigError, match="2 <= batch size <= 27"):
    pipelines.anchor_positive_dataset(ps, batch_size=28, seed=0, pairs_per_epoch=100)
