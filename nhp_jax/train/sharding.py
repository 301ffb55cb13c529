"""Data parallelism: one 1-D ("data",) mesh, batches split over it, state replicated.

The same code runs on 1 or N devices (and N hosts after
`jax.distributed.initialize()`): only the mesh changes. Host batches become
global arrays with `jax.make_array_from_process_local_data`; the jitted steps
take `in_shardings`/`out_shardings` from here, and XLA inserts the gradient
all-reduce (and the batch-norm statistics reductions) over the mesh.
"""

from collections.abc import Callable, Mapping

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from nhp_jax import errors

AXIS = "data"


def initialize_distributed(enabled: bool) -> None:
  """Joins a multi-host job (coordinator from the environment) when `enabled`."""
  if enabled:
    jax.distributed.initialize()


def data_parallel_size(global_batch: int, requested: int = 0,
                       available: int | None = None) -> int:
  """How many devices a global batch is split over.

  Args:
    global_batch: examples per step over all hosts.
    requested: devices asked for (config `parallel.num_devices`); 0: automatic.
    available: devices there are (default `jax.device_count()`).

  Returns:
    `requested` if given. Else the largest divisor of `global_batch` that is
    at most the device count (every device gets an equal share); logged
    when it leaves devices idle. On a CPU the process has the host devices
    its batches were planned for (`host_devices.plan_device_count`), and
    devices left idle would still slow it down (XLA:CPU's thread pool has a
    thread per device), so the CPU rule is the same.

  Raises:
    ConfigError: `requested` exceeds the devices or does not divide the batch.
  """
  available = jax.device_count() if available is None else available
  if requested:
    if requested > available:
      raise errors.ConfigError(f"parallel.num_devices: {requested} requested, "
                               f"{available} available")
    if global_batch % requested:
      raise errors.ConfigError(f"training.batch_size: {global_batch} is not divisible by "
                               f"parallel.num_devices={requested}")
    return requested
  n = max(d for d in range(1, available + 1) if global_batch % d == 0)
  if n < available:
    logging.info("batch %d split over %d of the %d devices", global_batch, n, available)
  return n


def make_mesh(num_devices: int) -> jax.sharding.Mesh:
  """A ("data",) mesh over the first `num_devices` devices (of every process)."""
  if num_devices % jax.process_count():
    raise errors.ConfigError(f"{num_devices} devices cannot be split evenly over "
                             f"{jax.process_count()} processes")
  per_process = num_devices // jax.process_count()
  devices = [d for p in range(jax.process_count())
             for d in [d for d in jax.devices() if d.process_index == p][:per_process]]
  # Auto axes: XLA propagates the batch sharding through the model, which
  # needs no sharding annotations (Explicit axes would make reshapes such as
  # the UNet's upsampling spell out their output sharding).
  return jax.make_mesh((num_devices,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh."""
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  """A full copy on every device (train state, metrics)."""
  return NamedSharding(mesh, P())


def process_batch_size(global_batch: int) -> int:
  """Examples this process feeds per step."""
  if global_batch % jax.process_count():
    raise errors.ConfigError(f"training.batch_size: {global_batch} is not divisible by "
                             f"the {jax.process_count()} processes")
  return global_batch // jax.process_count()


def shard_batch(batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """This process's slice of a global batch -> global arrays split over the mesh.

  Args:
    batch: {name: (b, ...) array}, b = global batch / process count.
    mesh: the ("data",) mesh.
  """
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def replicate(tree, mesh: jax.sharding.Mesh):
  """Places a pytree (e.g. a freshly initialised state) on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def jit_train_step(step_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """jit of (state, batch) -> (state, metrics); the input state is donated."""
  rep = replicated(mesh)
  return jax.jit(step_fn, in_shardings=(rep, batch_sharding(mesh)), out_shardings=(rep, rep),
                 donate_argnums=(0,))


def jit_eval_step(step_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """jit of (state, batch) -> sums; nothing donated."""
  rep = replicated(mesh)
  return jax.jit(step_fn, in_shardings=(rep, batch_sharding(mesh)), out_shardings=rep)
