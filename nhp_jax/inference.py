"""Batched inference: denoise and describe patch arrays of any length in fixed-size blocks.

Every block has the same shape (the last one is zero-padded), so each
function compiles once. Blocks go to the device as uint8 when the input is
uint8 (4x fewer bytes than float32), the whole denoise -> clip -> uint8 ->
describe chain runs on the device, and block i's result is fetched only
after block i + 1 has been dispatched, so the host copies overlap the
device's work. Each block is split over this process's devices (the largest
count that divides the block), so several GPUs, TPU cores or the CPU's host
devices (one per core, see `nhp_jax.host_devices`) share it.
"""

from typing import Any, Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from nhp_jax import progress, resources
from nhp_jax.data import layout
from nhp_jax.data.patchset import PatchSet
from nhp_jax.errors import ConfigError, DataError, NumericsError

# (module, variables): a model and the variables {"params", ["batch_stats"]} it applies.
ModelAndVariables = tuple[nn.Module, Mapping[str, Any]]
INPUTS = ("noisy", "denoised", "clean")   # lower bound, the pipeline, upper bound
DEFAULT_BATCH_SIZE = 1024
_PATCH_SHAPE = (layout.PATCH_SIZE, layout.PATCH_SIZE, 1)
# Fewest rows per device when a block is split over this process's devices.
MIN_ROWS_PER_DEVICE = 64


def to_uint8_pixels(x: jax.Array) -> jax.Array:
  """Clips to 0..255 and truncates to integers, as saving a denoised patch as uint8 does.

  Args:
    x: float array of pixel values, any shape.

  Returns:
    float32 array of the same shape with integer values 0..255.
  """
  return jnp.clip(x.astype(jnp.float32), 0.0, 255.0).astype(jnp.uint8).astype(jnp.float32)


def _check_patches(x: np.ndarray) -> np.ndarray:
  """(N, 32, 32, 1) or (N, 32, 32) uint8/float -> (N, 32, 32, 1) view."""
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  if x.shape[1:] != _PATCH_SHAPE or not (x.dtype == np.uint8 or
                                         np.issubdtype(x.dtype, np.floating)):
    raise DataError(f"inference input must be (N, 32, 32, 1) uint8 or float patches, "
                    f"found {x.dtype} {x.shape}")
  if x.dtype != np.uint8:
    bad = ~np.isfinite(x).all(axis=(1, 2, 3))
    if bad.any():
      raise NumericsError(f"inference input: {int(bad.sum())} of {len(bad)} patches hold NaN or "
                          f"Inf pixels, the first is patch {int(np.argmax(bad))}")
  return x


def block_devices(batch_size: int) -> list:
  """This process's first d devices: the most that divide `batch_size` with MIN_ROWS_PER_DEVICE
  rows or more each (one device if none does)."""
  local = jax.local_devices()
  d = max([k for k in range(1, len(local) + 1)
           if batch_size % k == 0 and batch_size // k >= MIN_ROWS_PER_DEVICE] or [1])
  return local[:d]


def _run_blocks(block_fn: Callable[[Any, jax.Array], jax.Array], variables: Any,
                x: np.ndarray, batch_size: int, out_tail: tuple[int, ...],
                out_dtype: Any, desc: str) -> np.ndarray:
  """Runs block_fn over x in blocks of batch_size rows; returns the (N, *out_tail) numpy result.

  Shows its progress as `desc` (`nhp_jax.progress`)."""
  x = _check_patches(x)
  n = x.shape[0]
  devices = block_devices(batch_size)
  mesh = jax.sharding.Mesh(np.asarray(devices), ("data",),
                           axis_types=(jax.sharding.AxisType.Auto,))
  variables = jax.device_put(variables, NamedSharding(mesh, P()))
  split = NamedSharding(mesh, P("data"))
  out = np.empty((n,) + out_tail, out_dtype)
  host_dtype = np.uint8 if x.dtype == np.uint8 else np.float32
  in_flight = []

  def fetch() -> int:
    start, stop, result = in_flight.pop(0)
    out[start:stop] = np.asarray(result)[:stop - start]
    return stop - start

  with progress.Progress(n, desc, unit="patches") as bar:
    for start in range(0, n, batch_size):
      stop = min(start + batch_size, n)
      block = np.zeros((batch_size,) + _PATCH_SHAPE, host_dtype)
      block[:stop - start] = x[start:stop]
      in_flight.append((start, stop, block_fn(variables, jax.device_put(block, split))))
      if len(in_flight) > 1:
        bar.update(fetch())
    while in_flight:
      bar.update(fetch())
  return out


def _check_batch_size(batch_size: int) -> None:
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ConfigError(f"inference batch_size must be a positive int, found {batch_size!r}")


def make_denoise_fn(model: nn.Module, variables: Mapping[str, Any],
                    batch_size: int = DEFAULT_BATCH_SIZE, *,
                    as_uint8: bool = False) -> Callable[[np.ndarray], np.ndarray]:
  """Returns a function that denoises patches in eval mode, `batch_size` at a time.

  Args:
    model: a denoiser (noisy -> clean pixels).
    variables: its variables.
    batch_size: patches per compiled block.
    as_uint8: clip the outputs to 0..255 and truncate them to uint8 on the
      device (then transferred as uint8).

  Returns:
    fn(x) with x (N, 32, 32, 1) (or (N, 32, 32)) uint8 or float noisy pixels
    0..255, any N, returning (N, 32, 32, 1) numpy float32 raw outputs, or
    uint8 with `as_uint8`.
  """
  _check_batch_size(batch_size)

  @jax.jit
  def block_fn(v, x):
    y = model.apply(v, x.astype(jnp.float32), train=False)
    return to_uint8_pixels(y).astype(jnp.uint8) if as_uint8 else y

  variables = jax.device_put(variables)
  dtype = np.uint8 if as_uint8 else np.float32
  return lambda x: _run_blocks(block_fn, variables, x, batch_size, _PATCH_SHAPE, dtype,
                               "denoising")


def make_describe_fn(model: nn.Module, variables: Mapping[str, Any],
                     batch_size: int = DEFAULT_BATCH_SIZE, *,
                     denoiser: Optional[ModelAndVariables] = None
                     ) -> Callable[[np.ndarray], np.ndarray]:
  """Returns a function that describes patches in eval mode, `batch_size` at a time.

  Args:
    model: the descriptor network.
    variables: its variables.
    batch_size: patches per compiled block.
    denoiser: optional (module, variables); if given, each block is first
      denoised, clipped to 0..255 and truncated to uint8 values (the Keras
      baseline's order) on the device, then described.

  Returns:
    fn(x) with x (N, 32, 32, 1) (or (N, 32, 32)) uint8 or float pixels
    0..255, any N, returning (N, D) numpy float32 descriptors (D = 128 for
    L2-Net).
  """
  _check_batch_size(batch_size)
  den_model, den_vars = denoiser if denoiser is not None else (None, None)

  @jax.jit
  def block_fn(v, x):
    x = x.astype(jnp.float32)
    if den_model is not None:
      x = to_uint8_pixels(den_model.apply(v["denoiser"], x, train=False))
    return model.apply(v["descriptor"], x, train=False).astype(jnp.float32)

  both = jax.device_put({"descriptor": variables, "denoiser": den_vars})
  dim = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1,) + _PATCH_SHAPE), train=False),
                       variables).shape[-1]
  desc = "denoising and describing" if den_model is not None else "describing"
  return lambda x: _run_blocks(block_fn, both, x, batch_size, (dim,), np.float32, desc)


def describe_patchset(patches: PatchSet, descriptor: ModelAndVariables,
                      denoiser: Optional[ModelAndVariables] = None,
                      input: str = "denoised",  # noqa: A002  (the protocol's word)
                      batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Descriptors of every patch of a PatchSet, for the HPatches tasks.

  Args:
    patches: the split to describe, L labels x 16 images.
    descriptor: (module, variables) of the descriptor network.
    denoiser: (module, variables) of the denoiser; needed for "denoised",
      ignored otherwise.
    input: "noisy" (raw noisy patches, the lower bound), "clean" (the upper
      bound) or "denoised" (noisy patches denoised, clipped to 0..255 and
      truncated to uint8, as the course's Keras baseline does).
    batch_size: patches per compiled block.

  Returns:
    (L, 16, D) float32 descriptors, axis 1 in `layout.IMAGE_TYPES` order.

  Raises:
    ConfigError: unknown input, "denoised" without a denoiser, or a
      batch_size whose block would not fit in the device's free memory.
    DataError: the host cannot hold the descriptors (`resources.check`).
    NumericsError: a descriptor is NaN or Inf.
  """
  if input not in INPUTS:
    raise ConfigError(f"describe_patchset: unknown input {input!r}; known: {', '.join(INPUTS)}")
  if input == "denoised" and denoiser is None:
    raise ConfigError("describe_patchset: input 'denoised' needs a denoiser, found None")
  return describe_pixels(patches, patches.clean if input == "clean" else patches.noisy,
                         descriptor, denoiser if input == "denoised" else None,
                         what=f"{input} input", batch_size=batch_size)


def describe_pixels(patches: PatchSet, pixels: np.ndarray, descriptor: ModelAndVariables,
                    denoiser: Optional[ModelAndVariables] = None, *, what: str,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Descriptors of pixels laid out like a PatchSet's (e.g. its patches, already denoised).

  Args:
    patches: gives the layout (sequences, offsets) that errors are located in.
    pixels: (L, 16, 32, 32) uint8 or float pixels 0..255, L = patches.num_labels.
    descriptor: (module, variables) of the descriptor network.
    denoiser: (module, variables) applied first (clipped, truncated to uint8), or None.
    what: names the pixels in error messages, e.g. "noisy input".
    batch_size: patches per compiled block.

  Returns:
    (L, 16, D) float32 descriptors.

  Raises:
    ConfigError, DataError: as `describe_patchset` (memory checks).
    NumericsError: a descriptor is NaN or Inf (naming sequence, image and patch).
  """
  # Fails (or warns) now, naming batch_size, rather than running out of memory midway.
  resources.check_describe(pixels.shape[0] * pixels.shape[1], batch_size, descriptor,
                           denoiser, input_itemsize=pixels.dtype.itemsize)
  fn = make_describe_fn(*descriptor, batch_size=batch_size, denoiser=denoiser)
  desc = fn(pixels.reshape((-1,) + _PATCH_SHAPE))
  bad = ~np.isfinite(desc).all(axis=-1)
  if bad.any():
    label, image = divmod(int(np.argmax(bad)), layout.NUM_IMAGES)
    s = int(np.searchsorted(patches.offsets, label, side="right") - 1)
    raise NumericsError(f"describe_patchset: {int(bad.sum())} of {len(bad)} descriptors "
                        f"({what}) contain NaN or Inf, the first of sequence "
                        f"{patches.sequences[s]!r}, image {layout.IMAGE_TYPES[image]}, patch "
                        f"{label - int(patches.offsets[s])}")
  return desc.reshape(patches.num_labels, layout.NUM_IMAGES, -1)
