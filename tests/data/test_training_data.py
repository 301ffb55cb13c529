"""training_data.py: the validation hold-out and the validation and train subsets."""

import numpy as np
import pytest

from experiments.configs import denoiser
from nhp_jax.data import cache, embedded, patchset, training_data


@pytest.fixture
def fake_splits(monkeypatch, random_patchset):
  """load_split returns `random_patchset` for train and its last two sequences for test."""
  test = patchset.take_labels(random_patchset, np.arange(int(random_patchset.offsets[2]),
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
  train, val = training_data.hpatches_data(_config("heldout"), None)
  assert train.sequences == ps.sequences[:3] and val.sequences == ps.sequences[3:]
  assert np.shares_memory(train.clean, ps.clean)
  np.testing.assert_array_equal(val.noisy, ps.noisy[int(ps.offsets[3]):])


def test_validation_subset_and_train_subset(fake_splits):
  ps, test = fake_splits
  train, val = training_data.hpatches_data(_config("test", val_labels=4, max_train_labels=10),
                                           None)
  assert val.num_labels == 4 and set(val.sequences) <= set(test.sequences)
  assert train.num_labels == 10 and set(train.sequences) <= set(ps.sequences)
  again = training_data.hpatches_data(_config("test", val_labels=4, max_train_labels=10), None)
  np.testing.assert_array_equal(again[1].clean, val.clean)
