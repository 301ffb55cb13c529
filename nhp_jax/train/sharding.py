"""Data parallelism: one 1-D ("data",) mesh, batches split over it, state replicated.

The same code runs on 1 or N devices (and N processes after
`platform.initialize_distributed()`): only the mesh changes. Every process
draws the same global batch and keeps its rows (`process_rows`); they become
global arrays with `jax.make_array_from_process_local_data`; the jitted steps
take `in_shardings`/`out_shardings` from here, and XLA inserts the gradient
all-reduce (and the batch-norm statistics reductions) over the mesh.
"""

import collections
from collections.abc import Callable, Iterator, Mapping

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from nhp_jax import errors

AXIS = "data"


# On GPUs and TPUs a batch is split only while every device keeps at least
# this many examples. Below it a step's fixed costs (kernel launches, the
# gradient all-reduce over the interconnect) outweigh the work per device, and
# a TPU's 128x128 matrix units and a GPU's tensor cores are mostly idle, so
# more devices buy no speed; on one chip, or with batches of 16 x devices and
# more, every device is used. The CPU rule differs (see data_parallel_size).
ACCELERATOR_MIN_PER_DEVICE = 16


def data_parallel_size(global_batch: int, requested: int = 0, available: int | None = None,
                       *, processes: int | None = None, backend: str | None = None) -> int:
  """How many devices a global batch is split over.

  Args:
    global_batch: examples per step over all processes.
    requested: devices asked for (config `parallel.num_devices`); 0: automatic.
    available: devices there are, over all processes (default `jax.device_count()`).
    processes: processes in the job (default `jax.process_count()`); the
      count is always a multiple of it, every process feeding as many devices.
    backend: "cpu", "gpu" or "tpu" (default `jax.default_backend()`).

  Returns:
    `requested` if given. Otherwise, among the multiples of `processes` up to
    `available` that divide `global_batch` (every device gets an equal share):
      * on a CPU the largest: a process has the host devices its batches were
        planned for (`host_devices.plan_device_count`), and devices left idle
        would still slow it down (XLA:CPU's thread pool has a thread per
        device);
      * on an accelerator the largest that leaves every device at least
        ACCELERATOR_MIN_PER_DEVICE examples, else the smallest.
    Logged when it leaves devices idle.

  Raises:
    ConfigError: `requested` exceeds the devices, does not divide the batch or
      is no multiple of the process count; or the batch cannot be split evenly
      over the processes.
  """
  available = jax.device_count() if available is None else available
  processes = jax.process_count() if processes is None else processes
  backend = jax.default_backend() if backend is None else backend
  if requested:
    if requested > available:
      raise errors.ConfigError(f"parallel.num_devices: {requested} requested, "
                               f"{available} available")
    if global_batch % requested:
      raise errors.ConfigError(f"training.batch_size: {global_batch} is not divisible by "
                               f"parallel.num_devices={requested}")
    if requested % processes:
      raise errors.ConfigError(f"parallel.num_devices: expected a multiple of the {processes} "
                               f"processes, found {requested}")
    return requested
  counts = [d for d in range(processes, available + 1, processes) if global_batch % d == 0]
  if not counts:
    raise errors.ConfigError(f"training.batch_size: {global_batch} is not divisible by "
                             f"the {processes} processes")
  if backend == "cpu":
    n = max(counts)
  else:
    n = max([d for d in counts if global_batch // d >= ACCELERATOR_MIN_PER_DEVICE] or counts[:1])
  if n < available:
    logging.info("batch %d split over %d of the %d devices", global_batch, n, available)
  return n


def mesh_devices(num_devices: int) -> list:
  """The first `num_devices / process count` devices of each process, process by process."""
  processes = jax.process_count()
  if num_devices % processes:
    raise errors.ConfigError(f"{num_devices} devices cannot be split evenly over "
                             f"{processes} processes")
  per_process = num_devices // processes
  devices = []
  for p in range(processes):
    own = [d for d in jax.devices() if d.process_index == p]
    if len(own) < per_process:
      raise errors.ConfigError(f"{num_devices} devices need {per_process} on each process; "
                               f"process {p} has {len(own)}")
    devices += own[:per_process]
  return devices


def make_mesh(num_devices: int) -> jax.sharding.Mesh:
  """A ("data",) mesh over an explicit list of devices (`mesh_devices`).

  Built from the device list itself rather than `jax.make_mesh`, which
  asks for a physical slice of the TPU topology and refuses other counts.
  """
  # Auto axes: XLA propagates the batch sharding through the model, which
  # needs no sharding annotations (Explicit axes would make reshapes such as
  # the UNet's upsampling spell out their output sharding).
  return jax.sharding.Mesh(np.asarray(mesh_devices(num_devices)), (AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))


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


def process_rows(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This process's contiguous share of a global host batch (all of it in one process).

  Every process draws the same global batches and keeps its rows, so a job
  of N processes trains on exactly the batches one process would.

  Args:
    batch: {name: (B, ...) array}, B the global batch, divisible by the
      process count.
  """
  per_process = process_batch_size(len(next(iter(batch.values()))))
  lo = jax.process_index() * per_process
  return {k: v[lo:lo + per_process] for k, v in batch.items()}


def prefetch(batches: Iterator[Mapping[str, np.ndarray]], mesh: jax.sharding.Mesh,
             size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Global device arrays of the host batches, `size` batches ahead of the step.

  `shard_batch` only starts the host-to-device copies (they are
  asynchronous), so keeping `size` batches in flight overlaps the copy of
  the next batches with the current step.

  Args:
    batches: host batches, this process's rows ({name: (b, ...) array}).
    mesh: the ("data",) mesh.
    size: batches in flight (>= 1).
  """
  queue = collections.deque()
  for batch in batches:
    queue.append(shard_batch(batch, mesh))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


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


def one_at_a_time(fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """`fn`, returning only once its outputs are computed, on a multi-device CPU mesh.

  XLA:CPU runs each device's share of a step on a launcher thread pool with
  as many threads as host devices. With two steps that hold collectives
  (the gradient all-reduce) in flight at once, the launches of the later
  step can take every thread while the earlier step still waits in its
  all-reduce for a device whose launch is queued behind them: the process
  hangs with no CPU use (seen with jaxlib 0.10.2 on 2 cores, 8 host devices,
  meshes of 5 and 8, every few thousand steps). Waiting for each such step
  before the next one is dispatched keeps one in flight; the dispatch
  overlap it gives up is ~1 ms against steps of tens of milliseconds. On
  one device and on GPUs/TPUs `fn` is returned as is.
  """
  if mesh.devices.size < 2 or mesh.devices.flat[0].platform != "cpu":
    return fn

  def wrapped(*args, **kwargs):
    return jax.block_until_ready(fn(*args, **kwargs))

  wrapped.__wrapped__ = fn
  return wrapped


def jit_train_step(step_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """jit of (state, batch) -> (state, metrics); the input state is donated.

  On a multi-device CPU mesh each call returns once the step is computed
  (`one_at_a_time`).
  """
  rep = replicated(mesh)
  return one_at_a_time(jax.jit(step_fn, in_shardings=(rep, batch_sharding(mesh)),
                               out_shardings=(rep, rep), donate_argnums=(0,)), mesh)


def jit_eval_step(step_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """jit of (state, batch) -> sums; nothing donated (`one_at_a_time` as above)."""
  rep = replicated(mesh)
  return one_at_a_time(jax.jit(step_fn, in_shardings=(rep, batch_sharding(mesh)),
                               out_shardings=rep), mesh)
