"""Memory a job will need against what the machine has, checked before the job starts.

Describing a split (evaluation from checkpoints, descriptor export) runs the
networks over fixed-size blocks of patches, so its memory is:

* host: the (N, D) float32 descriptors it returns, plus two blocks in flight
  (the patches themselves are already in memory or memory-mapped);
* device: the variables of both networks, two input/output blocks in flight,
  and the activations of one block: `ACTIVATION_FACTOR` x the largest
  single layer output per patch x batch size (read from `jax.eval_shape`
  with captured intermediates, so nothing is compiled or run). XLA's own
  compiled memory analysis on CPU, in units of that largest output, per
  patch of a block of 64 (256): L2-Net 2 (2), DnCNN 2 (2), shallow UNet
  2.5 (2.5), full UNet 5.4 (4; its skip connections stay alive), so the
  factor 6 covers them all and over-estimates L2-Net and DnCNN 3 times.

`check` raises a ConfigError naming the option to change when the device
cannot hold one block, a DataError when the host cannot hold the result,
and logs a warning when either would use more than `WARN_FRACTION` of what
is free. On CPU, device buffers live in host memory: both count against the
host. Free device memory comes from `device.memory_stats()` (GPU, TPU);
free host memory from /proc/meminfo `MemAvailable` (else `os.sysconf`).
"""

import dataclasses
import os
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from nhp_jax import errors

ACTIVATION_FACTOR = 6
WARN_FRACTION = 0.8
_PATCH_SHAPE = (32, 32, 1)
_GIB = float(1 << 30)


@dataclasses.dataclass(frozen=True)
class Estimate:
  """Bytes a job needs.

  Attributes:
    host: host bytes beyond the inputs already in memory.
    device: accelerator bytes (on CPU also host bytes).
    device_per_patch: the part of `device` that grows with the batch size,
      per patch of the batch.
    device_fixed: the part of `device` that does not.
  """
  host: int
  device: int
  device_per_patch: int
  device_fixed: int


def tree_bytes(tree: Any) -> int:
  """Bytes of the arrays of a pytree (arrays or ShapeDtypeStructs)."""
  return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def activation_bytes_per_patch(model: nn.Module, variables: Mapping[str, Any]) -> int:
  """ACTIVATION_FACTOR x the largest layer output of `model` for one 32x32 patch, in bytes."""
  def run(v, x):
    return model.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"])
  _, state = jax.eval_shape(run, variables, jax.ShapeDtypeStruct((1,) + _PATCH_SHAPE, jnp.float32))
  largest = max((tree_bytes(leaf) for leaf in jax.tree.leaves(state)), default=0)
  return ACTIVATION_FACTOR * largest


def describe_estimate(num_patches: int, batch_size: int, descriptor: tuple[nn.Module, Any],
                      denoiser: Optional[tuple[nn.Module, Any]] = None, *,
                      input_itemsize: int = 1) -> Estimate:
  """Memory of `inference.describe_patchset` / `make_describe_fn` over `num_patches` patches.

  Args:
    num_patches: N patches described.
    batch_size: patches per block.
    descriptor: (module, variables) of the descriptor network.
    denoiser: (module, variables) run before it on each block, or None.
    input_itemsize: bytes per input pixel (1 for uint8, 4 for float32).
  """
  model, variables = descriptor
  dim = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1,) + _PATCH_SHAPE), train=False),
                       variables).shape[-1]
  activations = activation_bytes_per_patch(model, variables)
  fixed = tree_bytes(variables)
  if denoiser is not None:
    activations = max(activations, activation_bytes_per_patch(*denoiser))
    fixed += tree_bytes(denoiser[1])
  block_io = int(np.prod(_PATCH_SHAPE)) * input_itemsize + 4 * dim
  per_patch = activations + 2 * block_io
  return Estimate(host=4 * dim * num_patches + 2 * batch_size * block_io,
                  device=fixed + batch_size * per_patch, device_per_patch=per_patch,
                  device_fixed=fixed)


def host_available_bytes() -> Optional[int]:
  """Free host memory (MemAvailable: free plus reclaimable caches), or None if unknown."""
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def device_available_bytes(device: Optional[jax.Device] = None) -> Optional[int]:
  """Free memory of an accelerator (limit minus in use), or None (CPU, or not reported)."""
  device = device or jax.local_devices()[0]
  if device.platform == "cpu":
    return None
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  (backends without the query raise)
    return None
  if not stats or "bytes_limit" not in stats:
    return None
  return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def _gib(n: float) -> str:
  return f"{n / _GIB:.2f} GiB"


def check(estimate: Estimate, *, what: str, batch_size: int, flag: str = "batch_size",
          host_available: Optional[int] = None, device_available: Optional[int] = None,
          device_name: str = "device") -> None:
  """Raises or warns, before work starts, when `estimate` would not fit.

  Args:
    estimate: from e.g. `describe_estimate`.
    what: the job, for messages ("describing 951,488 patches").
    batch_size: the batch size the estimate was made for.
    flag: the option that sets it, named in the advice.
    host_available, device_available: free bytes; None = unknown (no check).
      A device whose buffers live in host memory (CPU) passes None here and
      has its bytes added to `estimate.host` by the caller.
    device_name: names the device in messages.

  Raises:
    ConfigError: one block does not fit in the device's free memory (names
      `flag` and a batch size that would fit).
    DataError: the host cannot hold the result.
  """
  if device_available is not None:
    if estimate.device > device_available:
      room = int(WARN_FRACTION * device_available) - estimate.device_fixed
      fits = 2 ** int(np.log2(room // estimate.device_per_patch)) if room >= \
          estimate.device_per_patch else 0
      advice = (f"pass a smaller {flag} (at most {fits})" if fits else
                "the networks' variables alone do not fit; use a device with more memory")
      raise errors.ConfigError(
          f"{what}: needs about {_gib(estimate.device)} of {device_name} memory at {flag}="
          f"{batch_size} ({estimate.device_per_patch:,} bytes per patch), "
          f"{_gib(device_available)} free; {advice}")
    if estimate.device > WARN_FRACTION * device_available:
      logging.warning("%s: needs about %s of the %s free on %s; lower %s if it runs out of "
                      "memory", what, _gib(estimate.device), _gib(device_available),
                      device_name, flag)
  if host_available is not None:
    if estimate.host > host_available:
      raise errors.DataError(
          f"{what}: needs about {_gib(estimate.host)} of host memory, {_gib(host_available)} "
          f"available; describe fewer sequences (a smaller split) or free memory"
          + (f" (a smaller {flag} saves {_gib(estimate.device)} of it)"
             if device_available is None and estimate.device > estimate.host / 4 else ""))
    if estimate.host > WARN_FRACTION * host_available:
      logging.warning("%s: needs about %s of the %s of host memory available", what,
                      _gib(estimate.host), _gib(host_available))


def check_describe(num_patches: int, batch_size: int, descriptor: tuple[nn.Module, Any],
                   denoiser: Optional[tuple[nn.Module, Any]] = None, *,
                   input_itemsize: int = 1, flag: str = "batch_size") -> Estimate:
  """`describe_estimate` checked against this machine (see `check`); returns the estimate."""
  estimate = describe_estimate(num_patches, batch_size, descriptor, denoiser,
                               input_itemsize=input_itemsize)
  device = jax.local_devices()[0]
  on_host = device.platform == "cpu"
  if on_host:
    estimate = dataclasses.replace(estimate, host=estimate.host + estimate.device)
  check(estimate, what=f"describing {num_patches:,} patches", batch_size=batch_size, flag=flag,
        host_available=host_available_bytes(),
        device_available=None if on_host else device_available_bytes(device),
        device_name=f"{device.platform}:{device.id}")
  return estimate
