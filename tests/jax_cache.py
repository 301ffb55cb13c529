"""A JAX persistent compilation cache for tests that compile the same programs repeatedly."""

import contextlib
import os

import jax


@contextlib.contextmanager
def disk_compilation_cache(folder: str | os.PathLike):
  """Caches every compiled program under `folder` while active; restores the settings after."""
  old = (jax.config.jax_compilation_cache_dir,
         jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  try:
    yield
  finally:
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
