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
# One persistent JAX compilation cache for the test session and every process
# it starts: the binaries, the main job and the kill-and-resume children
# compile the same smoke programs again and again. Keys include the jaxlib
# version and the program, so reuse across runs is safe.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "nhp_jax-test-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

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


def pytest_collection_modifyitems(items):
  """Long tests (`slow`) first: with pytest-xdist each starts while the short
  ones fill the other worker, instead of one worker finishing alone."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)   # stable
