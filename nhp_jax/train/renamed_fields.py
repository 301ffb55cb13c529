"""Config fields renamed since runs were first saved; saved configs are read in today's names.

A checkpoint keeps its run's config (`checkpointing`), and the study records
keep the configs their runs were trained with (`nhp_jax.workflows`).
`upgrade` reads any of them in today's names, so nothing trained before a
rename has to be trained again; `downgrade` writes today's names back the old
way, for comparing with the fingerprint of a record written before a rename.

The renames (#21: one word per concept):
  task                          -> recipe: the training recipe (denoiser,
                                   descriptor, joint, dncnn_pretrain);
                                   "task" is a benchmark's task file;
  descriptor.triplets_per_epoch -> descriptor.examples_per_epoch: triplets
                                   for the triplet loss, anchor-positive
                                   pairs for HardNet's;
  joint (joint recipe only)     -> finetune: the runs the joint fine-tuning
                                   starts from and its MAE weight (a
                                   pipeline's joint stage read `c.joint.joint`).
"""

import copy
from typing import Any

# (recipe the rename applies to or None for every config, old dotted path, new dotted path).
RENAMES = (
    (None, "task", "recipe"),
    (None, "descriptor.triplets_per_epoch", "descriptor.examples_per_epoch"),
    ("joint", "joint", "finetune"),
)


def _pop(d: dict, path: str) -> tuple[bool, Any]:
  *parents, leaf = path.split(".")
  for key in parents:
    d = d.get(key)
    if not isinstance(d, dict):
      return False, None
  return (True, d.pop(leaf)) if leaf in d else (False, None)


def _has(d: dict, path: str) -> bool:
  for key in path.split("."):
    if not isinstance(d, dict) or key not in d:
      return False
    d = d[key]
  return True


def _put(d: dict, path: str, value) -> None:
  *parents, leaf = path.split(".")
  for key in parents:
    d = d.setdefault(key, {})
  d[leaf] = value


def _rename(config: dict, pairs) -> dict:
  out = copy.deepcopy(dict(config))
  for recipe, old, new in pairs:
    if recipe is not None and out.get("recipe", out.get("task")) != recipe:
      continue
    if _has(out, old) and not _has(out, new):
      _put(out, new, _pop(out, old)[1])
  return out


def upgrade(config: dict) -> dict:
  """A saved experiment config (a dict, as JSON holds it) in today's field names; a copy."""
  return _rename(config, RENAMES)


def downgrade(config: dict) -> dict:
  """Today's experiment config (a dict) in the names it had before every rename; a copy."""
  return _rename(config, [(r, new, old) for r, old, new in reversed(RENAMES)])


def upgrade_flat(flat: dict[str, Any]) -> dict[str, Any]:
  """`upgrade` of a flattened config ({"a.b": value}, as study records keep them); a copy."""
  out = dict(flat)
  for recipe, old, new in RENAMES:
    if recipe is not None and out.get("recipe", out.get("task")) != recipe:
      continue
    for key in [k for k in out if k == old or k.startswith(old + ".")]:
      renamed = new + key[len(old):]
      if renamed not in out:
        out[renamed] = out.pop(key)
  return out
