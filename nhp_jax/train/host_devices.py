"""One XLA host device per CPU core, set up before JAX is imported.

XLA:CPU runs each convolution of these small models on one thread, so a
single CPU device leaves the other cores idle. Exposing one host device per
core lets the ("data",) mesh split every batch over all cores: on a 2-core
CPU this gave +50 to +85% throughput on every training workload. On a GPU or
TPU host the flag only shapes the (unused) CPU backend, so it is harmless.

The binaries call `configure_from_env()` first thing: `NHP_CPU_DEVICES`
unset or "auto" means max(usable cores, MIN_HOST_DEVICES) devices (more
devices than cores keep per-device batches small, where XLA:CPU's
convolutions are fastest; `sharding.data_parallel_size` picks how many a
batch uses), a number means that many ("1": one device, no split). A
device count the user put in XLA_FLAGS always wins. It also makes glibc keep
freed memory mapped (`keep_freed_memory`).

With several host devices, every step's gradient all-reduce is a rendezvous
of one thread per device. On a loaded machine one thread can be descheduled
long enough for XLA:CPU's default 40 s termination timeout to abort the
process (seen once on a 2-core machine at load ~7); the timeout is made
configurable upstream for exactly such uneven CPU work (openxla/xla PR
32115), so it is raised to COLLECTIVE_TIMEOUT_S here unless set by the user.
This module imports nothing from JAX.
"""

import ctypes
import os
import sys

FLAG = "--xla_force_host_platform_device_count"
TIMEOUT_FLAG = "--xla_cpu_collective_call_terminate_timeout_seconds"
COLLECTIVE_TIMEOUT_S = 1800
ENV = "NHP_CPU_DEVICES"
# Host devices "auto" exposes at least: on 2 cores, batch 256 trains 1.5-1.8x
# faster on 8 host devices than on 2; 16 measured the same as 8.
MIN_HOST_DEVICES = 8
# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
  """Makes glibc reuse freed memory for XLA:CPU's large buffers instead of unmapping it.

  glibc serves every block above its mmap threshold (up to 32 MiB) with a
  fresh mmap and unmaps it on free, so a step whose temporaries exceed that
  (the L2-Net triplet step at B = 50 holds ~220 MiB) page-faults its whole
  working set in again every step. One arena, no mmap and no trimming keep
  the pages mapped; the process keeps its peak footprint. Must run before
  JAX starts its threads. Linux with glibc only; elsewhere a no-op.

  Returns:
    Whether the settings were applied.
  """
  if not sys.platform.startswith("linux"):
    return False
  try:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):
    return False
  return all(mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1)))


def usable_cores() -> int:
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return max(cores or 1, 1)


def set_device_count(count: int, environ: dict | None = None) -> int | None:
  """Adds FLAG=count (and, for count > 1, the longer collective timeout) to XLA_FLAGS.

  Returns:
    `count`, or None when XLA_FLAGS already sets a device count (left as is).
  """
  environ = os.environ if environ is None else environ
  flags = environ.get("XLA_FLAGS", "")
  if FLAG in flags:
    return None
  flags = f"{flags} {FLAG}={count}"
  if count > 1 and TIMEOUT_FLAG not in flags:
    flags += f" {TIMEOUT_FLAG}={COLLECTIVE_TIMEOUT_S}"
  environ["XLA_FLAGS"] = flags.strip()
  return count


def use_all_cores(environ: dict | None = None) -> int | None:
  """max(usable cores, MIN_HOST_DEVICES) host devices, unless XLA_FLAGS already sets a count."""
  return set_device_count(max(usable_cores(), MIN_HOST_DEVICES), environ)


def configure_from_env(environ: dict | None = None) -> int | None:
  """Applies $NHP_CPU_DEVICES (unset or "auto": `use_all_cores`; or a count >= 1) to XLA_FLAGS.

  When `environ` is this process's environment, also `keep_freed_memory()`.

  Returns:
    The device count set, or None when XLA_FLAGS already sets it.

  Raises:
    ValueError: the variable is neither "auto" nor a positive integer.
  """
  environ = os.environ if environ is None else environ
  if environ is os.environ:
    keep_freed_memory()
  value = environ.get(ENV, "").strip() or "auto"
  if value == "auto":
    return use_all_cores(environ)
  if not value.isdigit() or int(value) < 1:
    raise ValueError(f"${ENV}: expected 'auto' or a positive integer, found {value!r}")
  return set_device_count(int(value), environ)
