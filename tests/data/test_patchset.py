"""patchset.py: label subsets of a PatchSet."""

import numpy as np

from nhp_jax.data import patchset


def test_take_labels_keeps_sequence_offsets(random_patchset):
  ps = random_patchset
  labels = np.array([0, 6, 7, 20, 26])
  sub = patchset.take_labels(ps, labels)
  assert sub.sequences == ("i_one", "v_two", "i_three", "v_four")
  assert list(sub.offsets) == [0, 2, 3, 4, 5]
  np.testing.assert_array_equal(sub.clean, ps.clean[labels])
