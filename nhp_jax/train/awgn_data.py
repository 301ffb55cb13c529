"""DnCNN pretraining data: natural-photo patches with additive white Gaussian noise.

The seed's transfer denoiser starts from a DnCNN trained on BSD68-style
natural images with AWGN of sigma in [0, 25]. BSD is not available offline,
so the stand-in is the set of real photographs bundled with scikit-image
(`skimage.data`, stored in the package, no download), the same photos the
embedded dataset generator uses (`generator.PHOTOS`): on the embedded data
the pretrained DnCNN has seen clean crops of every scene, which BSD never
shared with N-HPatches. Train and validation come from disjoint photos.

A crop is a random 32x32 window of a photo in grey levels 0..255. Each crop
is one label of a PatchSet whose 16 "images" are its 8 dihedral transforms
(rotations by 90 degrees, with and without a flip) each twice, every one
with its own noise draw:

  sigma ~ U(sigma_min, sigma_max) per (crop, image)
  noisy = round(clip(clean + sigma * z, 0, 255)), z ~ N(0, 1) per pixel

so the denoiser pipeline sees each crop 16 times per epoch, flipped, rotated
and with fresh noise. Everything is a function of (photos, counts, seed).
"""

from collections.abc import Sequence

import numpy as np

from nhp_jax.data import generator, layout
from nhp_jax.data import patchset as patchset_lib

# Keys of `generator.PHOTOS`: the natural photographs (not text, the
# motion-blurred clock or the retina scan).
TRAIN_PHOTOS = ("astronaut", "brick", "camera", "coffee", "coins", "grass", "gravel", "moon",
                "motorcycle", "rocket")
VAL_PHOTOS = ("chelsea",)
_P = layout.PATCH_SIZE


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
  """(..., P, P) -> the k-th (0..7) of the 8 rotations/flips of the last two axes."""
  x = np.rot90(x, k % 4, axes=(-2, -1))
  return x[..., ::-1] if k >= 4 else x


def awgn_patchset(photos: Sequence[str], num_crops: int, *, sigma_min: float,
                  sigma_max: float, seed: int, name: str = "awgn") -> patchset_lib.PatchSet:
  """Random crops of `photos` with AWGN copies, as a one-sequence PatchSet.

  Args:
    photos: keys of `generator.PHOTOS`; crops are spread over them in
      proportion to their areas.
    num_crops: L, labels of the result.
    sigma_min: lowest noise standard deviation (grey levels).
    sigma_max: highest noise standard deviation (grey levels).
    seed: every draw comes from `np.random.default_rng([seed, L])`.
    name: the sequence name.

  Returns:
    PatchSet with clean (L, 16, 32, 32) uint8 crops (image i is dihedral
    transform i % 8) and noisy (L, 16, 32, 32) uint8 copies.
  """
  rng = np.random.default_rng([seed, num_crops])
  images = [generator.load_photo(p) for p in photos]
  areas = np.array([im.shape[0] * im.shape[1] for im in images], np.float64)
  which = rng.choice(len(images), size=num_crops, p=areas / areas.sum())
  crops = np.empty((num_crops, _P, _P), np.float64)
  for i, w in enumerate(which):
    h, wd = images[w].shape
    y, x = rng.integers(0, h - _P + 1), rng.integers(0, wd - _P + 1)
    crops[i] = images[w][y:y + _P, x:x + _P]
  crops = np.round(crops)
  clean = np.stack([_dihedral(crops, i % 8) for i in range(layout.NUM_IMAGES)], axis=1)
  sigma = rng.uniform(sigma_min, sigma_max, size=(num_crops, layout.NUM_IMAGES, 1, 1))
  noisy = np.round(np.clip(clean + sigma * rng.standard_normal(clean.shape), 0, 255))
  return patchset_lib.from_arrays({name: (clean.astype(np.uint8), noisy.astype(np.uint8))})
