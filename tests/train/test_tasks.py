"""Task data: validation hold-out and subsets, and the AWGN pretraining set."""

import numpy as np
import pytest

from experiments.configs import denoiser
from nhp_jax.data import cache, embedded
from nhp_jax.train import awgn_data, tasks


@pytest.fixture
def fake_splits(monkeypatch, random_patchset):
  """load_split returns `random_patchset` for train and its last two sequences for test."""
  test = tasks.take_labels(random_patchset, np.arange(int(random_patchset.offsets[2]),
                                                      random_patchset.num_labels))
  monkeypatch.setattr(embedded, "ensure_embedded", lambda size, seed: "/embedded")
  monkeypatch.setattr(cache, "load_split",
                      lambda root, split, subset: random_patchset if subset == "train" else test)
  return random_patchset, test


def _config(validation, val_labels=100, max_train_labels=0):
  c = denoiser.get_config()
  c.data.validation = validation
  c.data.heldout_fraction = 0.3
  c.data.val_labels = val_labels
  c.data.max_train_labels = max_train_labels
  return c


def test_heldout_is_the_tail_and_train_a_view(fake_splits):
  ps, _ = fake_splits
  train, val = tasks.hpatches_data(_config("heldout"), None)
  assert train.sequences == ps.sequences[:3] and val.sequences == ps.sequences[3:]
  assert np.shares_memory(train.clean, ps.clean)
  np.testing.assert_array_equal(val.noisy, ps.noisy[int(ps.offsets[3]):])


def test_validation_subset_and_train_subset(fake_splits):
  ps, test = fake_splits
  train, val = tasks.hpatches_data(_config("test", val_labels=4, max_train_labels=10), None)
  assert val.num_labels == 4 and set(val.sequences) <= set(test.sequences)
  assert train.num_labels == 10 and set(train.sequences) <= set(ps.sequences)
  again = tasks.hpatches_data(_config("test", val_labels=4, max_train_labels=10), None)
  np.testing.assert_array_equal(again[1].clean, val.clean)


def test_take_labels_keeps_sequence_offsets(random_patchset):
  ps = random_patchset
  labels = np.array([0, 6, 7, 20, 26])
  sub = tasks.take_labels(ps, labels)
  assert sub.sequences == ("i_one", "v_two", "i_three", "v_four")
  assert list(sub.offsets) == [0, 2, 3, 4, 5]
  np.testing.assert_array_equal(sub.clean, ps.clean[labels])


def test_awgn_patchset():
  ps = awgn_data.awgn_patchset(("camera", "moon"), 12, sigma_min=5.0, sigma_max=25.0, seed=3)
  assert ps.clean.shape == (12, 16, 32, 32) and ps.clean.dtype == np.uint8
  crop = ps.clean[:, 0]
  np.testing.assert_array_equal(ps.clean[:, 1], np.rot90(crop, 1, axes=(1, 2)))
  np.testing.assert_array_equal(ps.clean[:, 4], crop[:, :, ::-1])
  np.testing.assert_array_equal(ps.clean[:, 8], crop)
  residual = ps.noisy.astype(np.float64) - ps.clean
  unclipped = (ps.clean > 80) & (ps.clean < 175)
  sigma = residual[unclipped].std()
  assert 5.0 < sigma < 25.0
  assert not np.array_equal(ps.noisy[:, 0], ps.noisy[:, 8])   # each view has its own noise
  same = awgn_data.awgn_patchset(("camera", "moon"), 12, sigma_min=5.0, sigma_max=25.0, seed=3)
  np.testing.assert_array_equal(same.noisy, ps.noisy)
