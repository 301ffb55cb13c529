"""One XLA host device per CPU core; must run before JAX is imported.

XLA:CPU runs each convolution of these small models on one thread, so a
single CPU device leaves the other cores idle. Exposing one host device per
core lets the ("data",) mesh split every batch over all cores: on a 2-core
CPU this gave +50 to +85% throughput on every training workload. On a GPU or
TPU host the flag only shapes the (unused) CPU backend, so it is harmless.

A value the user put in XLA_FLAGS wins; `--xla_force_host_platform_device_count=1`
turns the split off. This module imports nothing from JAX.
"""

import os

FLAG = "--xla_force_host_platform_device_count"


def use_all_cores(environ: dict | None = None) -> int | None:
  """Adds FLAG=<usable cores> to XLA_FLAGS unless it is already set.

  Args:
    environ: the environment to edit (default `os.environ`).

  Returns:
    The device count set, or None when XLA_FLAGS already had one.
  """
  environ = os.environ if environ is None else environ
  flags = environ.get("XLA_FLAGS", "")
  if FLAG in flags:
    return None
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  cores = max(cores or 1, 1)
  environ["XLA_FLAGS"] = f"{flags} {FLAG}={cores}".strip()
  return cores
