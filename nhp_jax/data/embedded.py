"""Where the embedded (synthetic) dataset lives, and generating it on first use.

Binaries that get no `--data_dir` call `ensure_embedded(size, seed)` and use
the folder it returns like any N-HPatches root. The folder is
`$NHP_DATA_HOME/<size>-seed<seed>-v<GENERATOR_VERSION>` (default base:
`~/.cache/nhp_jax/embedded`). It is trusted only when its `manifest.json`
(written last, inside a temporary folder that is then renamed) matches the
current generator, so a killed run never leaves a dataset that is used.
"""

import contextlib
import fcntl
import os
import shutil
from typing import Callable, Iterator

from nhp_jax.data import generator


def embedded_home() -> str:
  """Base folder of embedded datasets: $NHP_DATA_HOME or ~/.cache/nhp_jax/embedded."""
  return os.environ.get("NHP_DATA_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache", "nhp_jax", "embedded")


def embedded_data_dir(size: str = "medium", seed: int = 0) -> str:
  """Folder of the embedded dataset of a size (see generator.SIZES) and seed; may not exist yet."""
  generator.size_config(size, seed)  # unknown sizes fail here, listing the known ones
  return os.path.join(embedded_home(), f"{size}-seed{seed}-v{generator.GENERATOR_VERSION}")


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
  """Exclusive advisory lock on `path` (released by the OS if the process dies)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _remove_leftovers(path: str) -> None:
  """Deletes temporary folders of killed runs for `path` (only call while holding its lock)."""
  parent, base = os.path.split(path)
  for name in os.listdir(parent):
    if name.startswith(f".{base}.tmp-") or name.startswith(f".{base}.old-"):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def ensure_embedded(size: str = "medium", seed: int = 0, workers: int | None = None,
                    log: Callable[[str], None] | None = None) -> str:
  """Returns the embedded dataset's folder, generating it first if needed.

  Concurrent callers wait on a lock file, and only one generates. A folder
  without a matching manifest (interrupted by hand, an older generator) is
  regenerated.

  Args:
    size: a name in generator.SIZES.
    seed: dataset seed.
    workers: generator processes (None = default).
    log: progress lines while generating.
  """
  path = embedded_data_dir(size, seed)
  config = generator.size_config(size, seed)
  if generator.is_complete(path, config):
    return path
  with _locked(os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")):
    if not generator.is_complete(path, config):
      _remove_leftovers(path)
      summary = generator.write_dataset(path, config, workers=workers, overwrite=True, log=log)
      if log:
        log(f"generated {summary}")
  return path
