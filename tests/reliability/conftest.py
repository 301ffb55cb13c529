"""Fixtures of the reliability tests."""

import pytest

from tests import jax_cache
from tests.train.test_resume import small_data  # noqa: F401  (fixture shared with the loop tests)


@pytest.fixture(scope="package")
def compilation_cache(tmp_path_factory):
  """The loop tests here compile the same programs: one JAX disk cache for them (the many
  small evaluation programs would only pay for writing it)."""
  with jax_cache.disk_compilation_cache(tmp_path_factory.mktemp("jax_cache")):
    yield
