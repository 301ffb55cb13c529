"""Shared fixtures."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never write to the user's caches: embedded datasets (validated by
# their manifests, safe to share between workers and runs) go to a temp folder.
# Binaries started by tests keep one XLA CPU device (their default is one per
# core): pytest-xdist already runs a worker per core. tests/train/test_sharding.py
# covers several devices.
os.environ.setdefault("NHP_CPU_DEVICES", "1")
os.environ["NHP_DATA_HOME"] = os.path.join(tempfile.gettempdir(), "nhp_jax-test-data")

import numpy as np
import pytest

from nhp_jax.data import patchset


@pytest.fixture
def random_patchset():
  """A tiny random PatchSet: 2 i_ + 2 v_ sequences with 7, 5, 9, 6 labels."""
  rng = np.random.default_rng(0)
  seqs = {}
  for name, n in (("i_one", 7), ("v_two", 5), ("i_three", 9), ("v_four", 6)):
    clean = rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8)
    noisy = rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8)
    seqs[name] = (clean, noisy)
  return patchset.from_arrays(seqs)
