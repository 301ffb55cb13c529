"""Classical baselines scored on the same patches as a learned descriptor.

`score_patches(patches, split, ...)` describes a PatchSet's noisy and clean patches
with each classical descriptor of `nhp_jax.models.classical` (raw pixels,
SIFT, RootSIFT) and scores them like any descriptor set, so every learned
number has its classical reference on the same data. Column names are
"<descriptor> <input>", e.g. "sift noisy".
"""

from collections.abc import Sequence

from nhp_jax import atomic
from nhp_jax import errors
from nhp_jax.data import cache
from nhp_jax.data import embedded
from nhp_jax.data.patchset import PatchSet
from nhp_jax.evaluation import score, types
from nhp_jax.models import classical

INPUTS = ("noisy", "clean")


def parse_names(value: str | Sequence[str]) -> list[str]:
  """"sift,raw" or ["sift", "raw"] -> checked names; "" or "none" -> none.

  Raises:
    ConfigError: an unknown name (the known ones listed).
  """
  names = value.split(",") if isinstance(value, str) else list(value)
  names = [n.strip().lower() for n in names if n.strip() and n.strip().lower() != "none"]
  unknown = [n for n in names if n not in classical.CLASSICAL]
  if unknown:
    raise errors.ConfigError(f"classical descriptors: expected names among "
                             f"{', '.join(classical.CLASSICAL)}, found {', '.join(unknown)}")
  return list(dict.fromkeys(names))


def _check_inputs(inputs: Sequence[str]) -> None:
  bad = [k for k in inputs if k not in INPUTS]
  if bad or not inputs:
    raise errors.ConfigError(f"classical inputs: expected a non-empty subset of "
                             f"{', '.join(INPUTS)}, found {', '.join(bad) or 'none'}")


def score_patches(patches: PatchSet, split: str, names: Sequence[str] = tuple(classical.CLASSICAL),
          inputs: Sequence[str] = INPUTS, **score_kw) -> dict[str, dict]:
  """Results documents of the classical descriptors on a test split.

  Args:
    patches: the split's test PatchSet (clean (L, 16, 32, 32) and noisy).
    split: its split name (for the task files).
    names: classical descriptors (`classical.CLASSICAL`).
    inputs: "noisy" and/or "clean".
    **score_kw: `score.evaluate_descriptor_set`'s keywords (data_dir,
      tasks_dir, n_pairs, metric, tasks, ref_patches).

  Returns:
    {"<name> <input>": results document}, in names-then-inputs order.
  """
  _check_inputs(inputs)
  base_meta = score_kw.pop("meta", None) or {}
  docs = {}
  for name in parse_names(names):
    for kind in inputs:
      pixels = patches.noisy if kind == "noisy" else patches.clean
      descs = types.DescriptorSet(patches.sequences, patches.offsets,
                                  classical.describe(name, pixels))
      meta = dict(base_meta, mode="classical", descriptor=name, input=kind)
      docs[f"{name} {kind}"] = score.evaluate_descriptor_set(descs, split, meta=meta,
                                                              **score_kw)
  return docs


def score_split(data_dir: str | None, split: str,
                names: Sequence[str] = tuple(classical.CLASSICAL),
                inputs: Sequence[str] = INPUTS, *, embedded_size: str = "medium",
                json_out: str | None = None, **score_kw) -> dict[str, dict]:
  """`score_patches` of the test patches of `split` in the dataset at `data_dir`.

  Args:
    data_dir: the dataset root; None: the embedded dataset of `embedded_size`.
    split, names, inputs, **score_kw: as for `score_patches`.
    json_out: also write {column: results document} there (atomically).

  Raises:
    ConfigError: unknown names or inputs (before any reading).
    DataError, TaskFileError: a bad dataset, splits or task files.
  """
  parse_names(names)
  _check_inputs(inputs)
  data_dir = data_dir or embedded.ensure_embedded(size=embedded_size)
  test = cache.load_split(data_dir, split=split, subset="test")
  docs = score_patches(test, split, names, inputs, data_dir=data_dir, **score_kw)
  if json_out:
    atomic.write_json(json_out, docs)
  return docs
