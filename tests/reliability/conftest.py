"""Fixtures of the reliability tests."""

import jax
import pytest

from tests.train.test_resume import small_data  # noqa: F401  (fixture shared with the loop tests)


@pytest.fixture(scope="package")
def compilation_cache(tmp_path_factory):
  """The loop tests here compile the same programs: one JAX disk cache for them (the many
  small evaluation programs would only pay for writing it)."""
  old = (jax.config.jax_compilation_cache_dir,
         jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  yield
  jax.config.update("jax_compilation_cache_dir", old[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
