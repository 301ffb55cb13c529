"""A Python environment in which TensorFlow and its companions cannot be imported.

`blocked_env(folder)` returns os.environ plus a PYTHONPATH whose first entry
holds a `sitecustomize.py` that hides TensorFlow, TFDS, TensorBoard, tf_keras
and clu (whose metric writers need TensorFlow) from every import finder, as
on a machine without them (setup.py's NHP_JAX_ONLY=1 install, the GPU image).
Every Python process started with it, and every process those start, gets
the blocker; one that ends with any of them loaded exits with status 70
after printing "JAX-ONLY VIOLATION".
"""

import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VIOLATION = "JAX-ONLY VIOLATION"

# Installed before anything else runs in every Python process started with it
# on PYTHONPATH. A finder that raised for these names would also break
# `importlib.util.find_spec("tensorflow")` probes (etils, under orbax, asks),
# so every finder is wrapped to answer "no such module": `import tensorflow`
# then fails with ModuleNotFoundError and the probes get None, as without it.
BLOCKER = '''
import atexit
import os
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets", "tensorboard", "tf_keras", "clu")


class _Hidden:
  """Wraps an import finder: the blocked packages (and their submodules) are not found."""

  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, name, path=None, target=None):
    if name.partition(".")[0] in BLOCKED:
      return None
    find_spec = getattr(self._finder, "find_spec", None)
    return find_spec(name, path, target) if find_spec else None

  def __getattr__(self, name):
    return getattr(self._finder, name)


sys.meta_path[:] = [_Hidden(f) for f in sys.meta_path]


@atexit.register
def _check():
  loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
  if loaded:
    sys.stdout.flush()
    sys.stderr.write(f"JAX-ONLY VIOLATION: loaded {loaded}\\n")
    sys.stderr.flush()
    os._exit(70)
'''


def blocked_env(folder: str | os.PathLike, **extra) -> dict:
  """os.environ with the blocker first on PYTHONPATH (written into `folder`), then the repo."""
  site = os.path.join(str(folder), "tf_blocker_site")
  os.makedirs(site, exist_ok=True)
  with open(os.path.join(site, "sitecustomize.py"), "w", encoding="utf-8") as f:
    f.write(BLOCKER)
  return dict(os.environ, PYTHONPATH=os.pathsep.join([site, REPO]), **extra)
