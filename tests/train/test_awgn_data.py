"""awgn_data.py: the AWGN pretraining set."""

import numpy as np

from nhp_jax.train import awgn_data


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
