"""Backend set-up in one place: each binary's `main` calls `setup()` once.

What it does depends on the backend the process is going to use, which has
to be decided before JAX's backend starts (XLA reads XLA_FLAGS then):

  * **CPU** (no accelerator plugin installed, or JAX_PLATFORMS=cpu): the XLA
    host devices a process's batches are split over, the longer collective
    timeout and glibc's keep-freed-memory setting (`host_devices`;
    NHP_CPU_DEVICES=N sets the count), and the models' CPU convolution
    forms (`cpu_forms()`: `fast_conv` im2col/col2im matmuls for the
    1-channel and few-output convolutions, L2-Net's custom-VJP dense head).
  * **GPU / TPU** (JAX_PLATFORMS names one, or a CUDA/ROCm/TPU plugin is
    installed): none of that. The models use plain `nn.Conv` forms, whose
    parameters are the same arrays, so checkpoints move between backends
    unchanged. The CPU forms were chosen by measurement on XLA:CPU only;
    `NHP_CONV_FORMS=cpu` turns them on anywhere (to measure them).

Multi-process jobs: `setup(distributed=True)` (or `initialize_distributed()`)
joins the job once per process, before the backend starts. The coordinator
comes from JAX_COORDINATOR_ADDRESS and, where no cluster manager (SLURM,
Open MPI, Cloud TPU, Kubernetes) says so, the process count and index
from NHP_NUM_PROCESSES and NHP_PROCESS_ID. On a CPU the processes exchange
gradients over gloo.

Importing this module has no side effects and does not import JAX.
"""

import contextlib
import importlib.metadata
import importlib.util
import os

from absl import logging

from nhp_jax import errors
from nhp_jax import host_devices

CONV_FORMS_ENV = "NHP_CONV_FORMS"      # "auto" (default), "cpu" or "plain"
NUM_PROCESSES_ENV = "NHP_NUM_PROCESSES"
PROCESS_ID_ENV = "NHP_PROCESS_ID"
_ACCELERATOR_PLUGINS = ("cuda", "rocm", "tpu")

_state = {"setup": False, "conv_forms": None}


def expected_backend(environ=None) -> str:
  """The backend JAX will pick, judged without starting it: "cpu" or "accelerator".

  JAX_PLATFORMS decides when set (its first entry); otherwise an installed
  CUDA, ROCm or TPU plugin (or libtpu) means an accelerator is expected.
  """
  environ = os.environ if environ is None else environ
  platforms = [p.strip() for p in environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
  if platforms:
    return "cpu" if platforms[0] == "cpu" else "accelerator"
  try:
    plugins = [ep.name for ep in importlib.metadata.entry_points(group="jax_plugins")]
  except Exception:  # pylint: disable=broad-except  (a broken metadata entry: no plugin)
    plugins = []
  if any(kind in name for name in plugins for kind in _ACCELERATOR_PLUGINS):
    return "accelerator"
  if importlib.util.find_spec("libtpu") is not None:
    return "accelerator"
  return "cpu"


def setup(batch_sizes=None, *, distributed: bool = False) -> str:
  """Prepares this process for its backend; call once from `main`, before any JAX work.

  Args:
    batch_sizes: the global training batch sizes this process will train
      with (CPU host devices are planned from them; none: one device per
      core, for evaluation and export).
    distributed: join a multi-process job (`initialize_distributed`); also
      when $NHP_NUM_PROCESSES is above 1.

  Returns:
    The expected backend, "cpu" or "accelerator". A second call does nothing
    more and returns the same.

  Raises:
    ConfigError: $NHP_CPU_DEVICES is neither "auto" nor a positive integer.
    RuntimeError: the backend had already started (host devices cannot change).
  """
  kind = expected_backend()
  if _state["setup"]:
    return kind
  if kind == "cpu":
    host_devices.configure_from_env(batch_sizes=batch_sizes)
  _state["setup"] = True
  if distributed or int(os.environ.get(NUM_PROCESSES_ENV, "").strip() or 0) > 1:
    initialize_distributed()
  return kind


def initialize_distributed() -> bool:
  """Joins the multi-process job, at most once per process.

  Returns:
    True when this call joined it, False when the process had already.
  """
  import jax  # pylint: disable=import-outside-toplevel
  if jax.distributed.is_initialized():
    return False
  kwargs = {}
  if os.environ.get(NUM_PROCESSES_ENV):
    kwargs["num_processes"] = int(os.environ[NUM_PROCESSES_ENV])
  if os.environ.get(PROCESS_ID_ENV):
    kwargs["process_id"] = int(os.environ[PROCESS_ID_ENV])
  jax.distributed.initialize(**kwargs)
  logging.info("joined a job of %d processes as process %d", jax.process_count(),
               jax.process_index())
  return True


def is_writer() -> bool:
  """Whether this process writes files (process 0; every other one only computes)."""
  import jax  # pylint: disable=import-outside-toplevel
  return jax.process_index() == 0


def backend() -> str:
  """JAX's default backend ("cpu", "gpu", "tpu"); starts it if needed."""
  import jax  # pylint: disable=import-outside-toplevel
  return jax.default_backend()


def cpu_forms() -> bool:
  """Whether the models compute their convolutions in the forms tuned for XLA:CPU.

  `conv_forms()` (a context) or $NHP_CONV_FORMS ("cpu" / "plain") decide
  when set; otherwise true exactly on the CPU backend. Read while a model
  is traced, so it applies to functions jitted after it is set.
  """
  forms = _state["conv_forms"] or os.environ.get(CONV_FORMS_ENV, "auto").strip() or "auto"
  if forms not in ("auto", "cpu", "plain"):
    raise errors.ConfigError(f"${CONV_FORMS_ENV}: expected 'auto', 'cpu' or 'plain', found {forms!r}")
  if forms == "auto":
    return backend() == "cpu"
  return forms == "cpu"


@contextlib.contextmanager
def conv_forms(forms: str):
  """Within the block, models use the "cpu" or the "plain" convolution forms."""
  if forms not in ("cpu", "plain"):
    raise errors.ConfigError(f"conv forms: expected 'cpu' or 'plain', found {forms!r}")
  previous, _state["conv_forms"] = _state["conv_forms"], forms
  try:
    yield
  finally:
    _state["conv_forms"] = previous
