"""XLA host devices for the CPU backend, chosen before JAX's backend starts.

XLA:CPU leaves most cores idle when one device runs these small models, so
the data-parallel mesh splits each batch over several host devices. How
many matters both ways:

  * small per-device batches run faster per example (XLA:CPU's
    convolutions slow down per example as they grow): batch 256 trains
    1.2-1.4x faster on 8 devices (32 examples each) than on 2 (128 each);
  * every host device adds a thread to XLA:CPU's one intra-op pool (it has
    max(cores, devices) threads), and the convolution kernels split their
    work over all of them, so devices a batch leaves idle still cost: on 2
    cores the L2-Net triplet step at batch 50 (2 devices used) runs ~25%
    slower with 8 devices than with 2.

So a process gets exactly the devices its largest split needs
(`plan_device_count`): for each training batch, the fewest devices that use
every core with at most CPU_MAX_PER_DEVICE examples each (`planned_split`);
the training binaries call `configure_from_env(batch_sizes=...)` once their
config is known, before anything starts JAX's backend. Each batch is then
split over as many of the process's devices as divide it
(`sharding.data_parallel_size`): in a process planned for one batch that is
exactly the planned split, and where a process trains with several batch
sizes (the main job: 64, 50, 256, 64 on 8 devices), the smaller batches use
more devices than their own plan rather than leave threads idle.
`NHP_CPU_DEVICES=N` sets the count ("1": one device, no split), a device
count the user put in XLA_FLAGS always wins, and a process with no training
batch (evaluation, export: inference splits every block over all devices)
gets one device per core. On a GPU or TPU host the flag only shapes the
(unused) CPU backend, so it is harmless.
`keep_freed_memory` makes glibc keep freed memory mapped.

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

from nhp_jax import errors

FLAG = "--xla_force_host_platform_device_count"
TIMEOUT_FLAG = "--xla_cpu_collective_call_terminate_timeout_seconds"
COLLECTIVE_TIMEOUT_S = 1800
ENV = "NHP_CPU_DEVICES"
# The most devices a training batch is split over on a CPU (16 measured the
# same as 8 at batch 256 on 2 cores).
MAX_HOST_DEVICES = 8
# The largest per-device batch the CPU split aims for: XLA:CPU's convolutions
# (their kernel gradients above all) slow down per example as it grows.
# Measured on 2 cores (benchmarks/README.md): L2-Net triplet step at batch
# 256, 8 devices (32 each) ~810 vs 2 devices ~600 patches/s.
CPU_MAX_PER_DEVICE = 32
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


def backend_started() -> bool:
  """Whether this process has started a JAX backend (after which XLA_FLAGS is read).

  Reads JAX's bridge module only if something imported it (it is private:
  `backends_are_initialized()` where it exists, its backend table otherwise).
  """
  bridge = sys.modules.get("jax._src.xla_bridge")
  if bridge is None:
    return False
  started = getattr(bridge, "backends_are_initialized", None)
  return bool(started()) if callable(started) else bool(getattr(bridge, "_backends", None))


def usable_cores() -> int:
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return max(cores or 1, 1)


def planned_split(global_batch: int, cores: int) -> int:
  """Devices a process training with this batch alone gets on a CPU.

  Among the divisors of `global_batch` up to max(cores, MAX_HOST_DEVICES)
  (every device gets an equal share): the smallest that uses every core
  (when the batch allows) with at most CPU_MAX_PER_DEVICE examples per
  device; failing that, the largest.
  """
  available = max(cores, MAX_HOST_DEVICES)
  divisors = [d for d in range(1, available + 1) if global_batch % d == 0]
  n = max(divisors)
  small = [d for d in divisors
           if d >= min(cores, n) and global_batch // d <= CPU_MAX_PER_DEVICE]
  return min(small) if small else n


def plan_device_count(batch_sizes, cores: int | None = None) -> int:
  """Host devices for a process that trains with these global batch sizes.

  The largest of their `planned_split`s, but at least one per core (also
  when there is no batch). E.g. on 2 cores: batch 50 -> 2, 256 -> 8,
  {50, 256} -> 8.
  """
  cores = usable_cores() if cores is None else cores
  batch_sizes = [int(b) for b in batch_sizes or () if b]
  return max([cores] + [planned_split(b, cores) for b in batch_sizes])


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


def configure_from_env(environ: dict | None = None, batch_sizes=None) -> int | None:
  """Applies $NHP_CPU_DEVICES to XLA_FLAGS, before JAX's backend starts.

  Unset or "auto": `plan_device_count(batch_sizes)` devices (the process's
  training batch sizes; none: one per core); a count >= 1: that many.
  When `environ` is this process's environment, also `keep_freed_memory()`.

  Returns:
    The device count set, or None when XLA_FLAGS already sets it.

  Raises:
    ConfigError: the variable is neither "auto" nor a positive integer.
    RuntimeError: this process's JAX backend has already started.
  """
  environ = os.environ if environ is None else environ
  if environ is os.environ:
    if backend_started():
      raise RuntimeError("host devices must be configured before JAX's backend starts "
                         "(nothing may run a JAX computation or list devices first)")
    keep_freed_memory()
  value = environ.get(ENV, "").strip() or "auto"
  if value == "auto":
    return set_device_count(plan_device_count(batch_sizes), environ)
  if not value.isdigit() or int(value) < 1:
    raise errors.ConfigError(f"${ENV}: expected 'auto' or a positive integer, found {value!r}")
  return set_device_count(int(value), environ)
