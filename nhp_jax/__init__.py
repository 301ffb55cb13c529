"""nhp_jax: learn local patch descriptors that survive noise, and score them on HPatches.

The public API (`nhp_jax.api`):

  model = nhp_jax.load(path)        # an exported model file, a run folder or a workdir
  descs = model.describe(patches)   # (N, 32, 32) uint8 noisy patches -> (N, 128) float32
  doc = nhp_jax.evaluate(descs, test_patches, data_dir=DATA)   # the results document

Importing the package runs nothing else: `load`, `evaluate`, `Model` and
`ModelFileError` import their modules (and JAX) on first use.
"""

import importlib

__version__ = "0.1.0"

# Lazy exports: name -> (module, attribute).
_EXPORTS = {
    "load": ("nhp_jax.api", "load"),
    "evaluate": ("nhp_jax.api", "evaluate"),
    "Model": ("nhp_jax.api", "Model"),
    "ModelFileError": ("nhp_jax.model_file", "ModelFileError"),
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
  if name in _EXPORTS:
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value   # later lookups skip this function
    return value
  raise AttributeError(f"module 'nhp_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
