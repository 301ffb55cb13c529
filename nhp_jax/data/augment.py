"""Training-time augmentation of patch batches: random flips and 90-degree rotations.

Pure `jax.numpy` functions of an explicit key, applied on the device inside
the train step (the key comes from the train state: `fold_in(rng, step)`, so
a resumed run draws the same transforms as an uninterrupted one).

"flip_rot" draws, per batch row, one of the 8 symmetries of the square
(an optional horizontal flip, then 0, 1, 2 or 3 quarter turns) and applies the
same one to every patch of a *group* of batch entries (anchor and positive
together): HardNet flips and rotates the two patches of a pair identically.
Transforming them differently would ask the descriptor to be invariant to
the dihedral group, which HPatches patches (already orientation-normalised)
do not need and which costs discriminative power; transforming them alike
only multiplies the appearances seen in training. Patches outside the group
(a triplet's negative) get their own independent draw, as HardNet's in-batch
negatives are other pairs with their own transforms.
"""

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from nhp_jax import errors

NUM_SYMMETRIES = 8  # codes 0..3: k quarter turns; 4..7: flipped, then k - 4 turns


def dihedral(x: jax.Array, code: jax.Array) -> jax.Array:
  """Applies symmetry `code[i]` of the square to patch i.

  code c: if c >= 4, flip left-right (reverse the width axis); then rotate by
  (c % 4) quarter turns counter-clockwise, as `np.rot90(patch, c % 4)` on the
  (H, W) plane.

  Args:
    x: (B, S, S, C) patches of any dtype (square: S x S).
    code: (B,) int in [0, 8).

  Returns:
    (B, S, S, C), same dtype, every value moved, none changed.
  """
  if x.shape[1] != x.shape[2]:
    raise ValueError(f"dihedral needs square patches (B, S, S, C), got {x.shape}")
  code = jnp.asarray(code, jnp.int32)
  flipped = jnp.where((code >= 4)[:, None, None, None], x[:, :, ::-1], x)
  turns = jnp.stack([jnp.rot90(flipped, k, axes=(1, 2)) for k in range(4)])
  return turns[code % 4, jnp.arange(x.shape[0])]


def random_codes(key: jax.Array, n: int) -> jax.Array:
  """(n,) int32 symmetry codes, uniform over the 8."""
  return jax.random.randint(key, (n,), 0, NUM_SYMMETRIES, dtype=jnp.int32)


Batch = Mapping[str, jax.Array]
Groups = Sequence[Sequence[str]]


def _none(key: jax.Array, batch: Batch, groups: Groups) -> dict[str, jax.Array]:
  del key, groups
  return dict(batch)


def _flip_rot(key: jax.Array, batch: Batch, groups: Groups) -> dict[str, jax.Array]:
  out = dict(batch)
  for g, names in enumerate(groups):
    code = random_codes(jax.random.fold_in(key, g), batch[names[0]].shape[0])
    for name in names:
      out[name] = dihedral(batch[name], code)
  return out


# Augmentations a config may name: (key, batch, groups) -> batch. `groups`
# lists the batch entries that share one transform per row; entries in no
# group are left as they are.
AUGMENTATIONS: dict[str, Callable[[jax.Array, Batch, Groups], dict[str, jax.Array]]] = {
    "none": _none,
    "flip_rot": _flip_rot,
}


def get_augmentation(name: str) -> Callable[[jax.Array, Batch, Groups], dict[str, jax.Array]]:
  """Looks up `name` in AUGMENTATIONS; ConfigError lists the known names."""
  if name not in AUGMENTATIONS:
    raise errors.ConfigError(f"descriptor.augment: unknown {name!r}; known: "
                             f"{', '.join(AUGMENTATIONS)}")
  return AUGMENTATIONS[name]
