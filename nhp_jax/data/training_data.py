"""The (train, validation) PatchSets of an N-HPatches-layout dataset, as `config.data` says.

Validation data (`config.data.validation`):
  "heldout" (default): the last `heldout_fraction` of the train split's
    sequences (in the split's order) is set aside and never trained on, so
    picking the best checkpoint by validation loss never looks at the test
    split. The tail, not a random draw, so that the train part stays a
    zero-copy prefix of the memory-mapped split (the official splits list
    their sequences in shuffled order; the embedded dataset lists i_ before
    v_, so there the held-out sequences are v_ ones);
  "test": the test split, as the course's Keras baseline validated.
Either way a fixed random subset of `val_labels` labels keeps each
validation pass cheap (what each recipe scores on it: `nhp_jax.train.recipes`).
"""

import ml_collections
import numpy as np
from absl import logging

from nhp_jax import errors
from nhp_jax.data import cache, embedded
from nhp_jax.data import patchset as patchset_lib

PatchSet = patchset_lib.PatchSet


def _random_labels(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
  """min(n, hi - lo) distinct labels of [lo, hi), sorted."""
  return lo + np.sort(rng.choice(hi - lo, size=min(n, hi - lo), replace=False))


def _prefix(patches: PatchSet, num_sequences: int) -> PatchSet:
  """The first sequences, as views (memory maps stay memory maps)."""
  end = int(patches.offsets[num_sequences])
  return PatchSet(patches.sequences[:num_sequences], patches.offsets[:num_sequences + 1],
                  patches.clean[:end], patches.noisy[:end])


def hpatches_data(config: ml_collections.ConfigDict, data_dir: str | None
                  ) -> tuple[PatchSet, PatchSet]:
  """(train, validation) PatchSets of an N-HPatches-layout dataset, as `config.data` says.

  Args:
    config: the experiment config.
    data_dir: dataset root; None: the embedded dataset (generated once).
  """
  cfg = config.data
  root = data_dir or embedded.ensure_embedded(size=cfg.embedded_size, seed=cfg.embedded_seed)
  rng = np.random.default_rng([config.seed, 7])
  train = cache.load_split(root, split=cfg.split, subset="train")
  if cfg.validation == "test":
    pool = cache.load_split(root, split=cfg.split, subset="test")
    first = 0
  else:
    num_seq = len(train.sequences)
    if num_seq < 2:
      raise errors.DataError(f"data.validation 'heldout' needs >= 2 train sequences, "
                             f"found {num_seq}; use data.validation='test'")
    held = min(max(1, round(cfg.heldout_fraction * num_seq)), num_seq - 1)
    pool, train = train, _prefix(train, num_seq - held)
    first = train.num_labels
  val = patchset_lib.take_labels(pool, _random_labels(rng, first, pool.num_labels,
                                                      cfg.val_labels))
  if cfg.max_train_labels:
    train = patchset_lib.take_labels(train, _random_labels(rng, 0, train.num_labels,
                                                           cfg.max_train_labels))
  logging.info("data %s split %s: train %d labels in %d sequences, validation (%s) %d labels "
               "of %s", root, cfg.split, train.num_labels, len(train.sequences), cfg.validation,
               val.num_labels, ", ".join(val.sequences))
  return train, val
