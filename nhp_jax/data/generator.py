"""Deterministic generator of a small HPatches-like dataset (synthetic) from real photos.

N-HPatches cannot be downloaded offline, so nhp_jax ships this generator. It
follows how HPatches was made, on photos bundled with scikit-image:

1. Reference image: a random crop (75-100 % of each side, random left-right
   flip) of one photo, in grey levels.
2. Keypoints: multi-scale Harris corners (`region_sides`: measurement
   region sides in reference pixels, 1.45x apart so that concentric regions
   overlap < 50 %; integration scale side / 12; peaks at least side / 6
   apart), kept when the region and all its jittered copies fit
   in the image and the 32x32 reference patch has a pixel std > `min_std`
   (the HPatches texture rule). A random subset of `patches_per_sequence`
   is taken and sorted by position (as the HPatches training release).
3. Five target images per sequence. `i_` sequences: photometric changes of
   the reference (gain, gamma, offset and a smooth non-uniform illumination
   field) on the same geometry. `v_` sequences: the reference warped by a
   homography (rotation, scale, independent corner shifts) whose strength
   grows as k/5 for target k, plus a mild photometric change; the target
   frame is the bounding box of the warped reference (bilinear resampling).
4. Patches: for target k and level e/h/t, each keypoint's square frame gets
   its own random affine jitter (rotation, isotropic and anisotropic scale,
   translation; `JITTER`), is reprojected into the target by the local
   affine approximation of the homography at the keypoint (as HPatches
   reprojects its frames), sampled on a 64x64 bilinear grid and averaged
   2x2 down to 32x32 (anti-aliasing, like shrinking the 65x65 originals).
5. Noisy copies: `noise_lib.add_noise` (per-sequence sigma), seeded per sequence.

Everything is drawn from generators seeded by (seed, sequence name, stream),
so a sequence's bytes depend only on the config and its name, and the output
is identical whatever the number of worker processes.
"""

import concurrent.futures
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import sys
import time
from typing import Callable

import numpy as np
import scipy.ndimage
import skimage
import skimage.color
import skimage.data
import skimage.feature
from PIL import Image

from nhp_jax import atomic
from nhp_jax.data import layout
from nhp_jax.data import noise as noise_lib
from nhp_jax.data import splits as splits_lib
from nhp_jax.errors import ConfigError, DataError

# Bump when the generator or its defaults change; the embedded dataset's folder carries it.
GENERATOR_VERSION = 1
MANIFEST = "manifest.json"


def _grey(image: np.ndarray) -> np.ndarray:
  """(H, W) float32 0..255 from an RGB(A) or grey uint8 photo."""
  if image.ndim == 3:
    return (skimage.color.rgb2gray(image[..., :3]) * 255).astype(np.float32)
  return image.astype(np.float32)


# Real photographs bundled with scikit-image (no network needed), by sequence name stem.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "camera": skimage.data.camera,
    "coffee": skimage.data.coffee,
    "chelsea": skimage.data.chelsea,
    "rocket": skimage.data.rocket,
    "brick": skimage.data.brick,
    "grass": skimage.data.grass,
    "gravel": skimage.data.gravel,
    "coins": skimage.data.coins,
    "moon": skimage.data.moon,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
    "page": skimage.data.page,
    "retina": skimage.data.retina,
}


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
  """(H, W) float32 grey levels 0..255 of bundled photo `name` (read-only)."""
  if name not in PHOTOS:
    raise ConfigError(f"unknown photo {name!r}; known photos: {', '.join(PHOTOS)}")
  image = _grey(PHOTOS[name]())
  image.setflags(write=False)
  return image


@dataclasses.dataclass(frozen=True)
class Jitter:
  """Per-patch random affine jitter of one level, in the patch's own frame.

  Each draw is uniform in +-the bound. Attributes:
    rotation_deg: rotation, degrees.
    log_scale: log of the isotropic scale factor.
    log_aspect: log of the anisotropic factor (x scaled by a, y by 1/a).
    shift: translation along x and along y, as a fraction of the region side.
  """
  rotation_deg: float
  log_scale: float
  log_aspect: float
  shift: float


# Amounts chosen so that the median overlap (intersection over union) of a
# jittered square with its original is ~0.85 / 0.71 / 0.62 (Monte Carlo),
# close to the ~0.85 easy and ~0.72 hard median overlaps HPatches reports.
JITTER = {
    "e": Jitter(rotation_deg=9.0, log_scale=0.09, log_aspect=0.09, shift=0.045),
    "h": Jitter(rotation_deg=20.0, log_scale=0.2, log_aspect=0.2, shift=0.1),
    "t": Jitter(rotation_deg=30.0, log_scale=0.3, log_aspect=0.3, shift=0.15),
}


@dataclasses.dataclass(frozen=True)
class Photometric:
  """Random photometric change v -> clip(gain * field * v**gamma + offset, 0, 1), v in [0, 1].

  Attributes:
    log_gain: gain = exp(U(-log_gain, log_gain)).
    log_gamma: gamma = exp(U(-log_gamma, log_gamma)).
    offset: U(-offset, offset), fraction of full scale.
    field: smooth illumination field exp(U(0, field) * g(x, y)), g in [-1, 1]
      half a linear ramp in a random direction, half a broad Gaussian spot.
  """
  log_gain: float
  log_gamma: float
  offset: float
  field: float


@dataclasses.dataclass(frozen=True)
class Homography:
  """Viewpoint change of target k (1..5), each bound scaled by k / 5.

  Attributes:
    rotation_deg: in-plane rotation about the image centre, degrees.
    log_scale: log of the zoom factor.
    corner_shift: independent shift of each image corner along x and y, as
      a fraction of the image's mean side (the perspective part).
  """
  rotation_deg: float
  log_scale: float
  corner_shift: float


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """Everything that determines the generated bytes (with GENERATOR_VERSION and the photos).

  Attributes:
    num_sequences: number of sequences, alternating i_ and v_ over `photos`.
    patches_per_sequence: labels per sequence (fewer where a photo lacks
      textured keypoints).
    seed: dataset seed.
    photos: names in PHOTOS, cycled in order.
    region_sides: measurement-region sides in reference pixels (keypoint scales).
    min_std: minimum pixel std of a reference patch (grey levels).
    crop_fraction: (lo, hi) fraction of each photo side kept by the crop.
    jitter: per level e/h/t, see `Jitter`.
    illumination: photometric change of `i_` targets.
    view_photometric: photometric change of `v_` targets.
    homography: geometric change of `v_` targets.
    noise: noise model of the `_noise` copies.
  """
  num_sequences: int
  patches_per_sequence: int
  seed: int = 0
  photos: tuple[str, ...] = tuple(PHOTOS)
  region_sides: tuple[float, ...] = (20.0, 29.0, 42.0, 60.0)
  min_std: float = 10.0
  crop_fraction: tuple[float, float] = (0.75, 1.0)
  jitter: dict[str, Jitter] = dataclasses.field(default_factory=lambda: dict(JITTER))
  illumination: Photometric = Photometric(log_gain=0.4, log_gamma=0.5, offset=0.08, field=0.5)
  view_photometric: Photometric = Photometric(log_gain=0.1, log_gamma=0.1, offset=0.03, field=0.15)
  homography: Homography = Homography(rotation_deg=20.0, log_scale=0.25, corner_shift=0.1)
  noise: noise_lib.NoiseConfig = noise_lib.DEFAULT

  def __post_init__(self):
    if self.num_sequences < 6:
      raise ConfigError(f"num_sequences must be >= 6 (3 folds of i_ and v_), "
                        f"got {self.num_sequences}")
    if self.patches_per_sequence < 1:
      raise ConfigError(f"patches_per_sequence must be >= 1, got {self.patches_per_sequence}")
    unknown = [p for p in self.photos if p not in PHOTOS]
    if unknown or len(self.photos) < 3:
      raise ConfigError(f"photos must be >= 3 names from {', '.join(PHOTOS)}; got {self.photos}")
    if sorted(self.jitter) != sorted(layout.LEVELS):
      raise ConfigError(f"jitter must have levels {layout.LEVELS}, got {sorted(self.jitter)}")
    if not self.region_sides or min(self.region_sides) < 8:
      raise ConfigError(f"region_sides must be >= 8 px, got {self.region_sides}")
    lo, hi = self.crop_fraction
    if not 0 < lo <= hi <= 1:
      raise ConfigError(f"crop_fraction must satisfy 0 < lo <= hi <= 1, got {self.crop_fraction}")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


# Named sizes: (num_sequences, patches_per_sequence).
SIZES = {
    "smoke": (6, 40),
    "small": (12, 150),
    "medium": (40, 500),
    "large": (116, 1350),
}


def size_config(size: str, seed: int = 0, **overrides) -> GeneratorConfig:
  """The GeneratorConfig of a named size; `overrides` replace any other field."""
  if size not in SIZES:
    raise ConfigError(f"unknown dataset size {size!r}; known sizes: {', '.join(SIZES)}")
  num_sequences, patches = SIZES[size]
  return GeneratorConfig(num_sequences=num_sequences, patches_per_sequence=patches, seed=seed,
                         **overrides)


def sequence_names(config: GeneratorConfig) -> list[str]:
  """`i_<photo>_<k>`, `v_<photo>_<k>`, ... cycling over the photos: balanced i_ / v_."""
  names = []
  for j in range(config.num_sequences):
    pair = j // 2
    photo = config.photos[pair % len(config.photos)]
    names.append(f"{'iv'[j % 2]}_{photo}_{pair // len(config.photos)}")
  return names


def _photo_of(name: str) -> str:
  return name[2:].rsplit("_", 1)[0]


def make_splits(names: list[str], seed: int) -> dict[str, dict]:
  """Splits a, b, c (about a third of the sequences as test), full, illum and view.

  All sequences of one photo fall in the same fold, so no photo is seen in
  both train and test. Each photo has as many i_ as v_ sequences (within
  one), so every fold is balanced between them.
  """
  photos = list(dict.fromkeys(_photo_of(n) for n in names))
  rng = noise_lib.sequence_rng(seed, "splits", "splits")
  folds = [[] for _ in range(3)]
  sizes = [0, 0, 0]
  count = {p: sum(_photo_of(n) == p for n in names) for p in photos}
  for p in sorted(rng.permutation(photos).tolist(), key=lambda p: -count[p]):
    f = int(np.argmin(sizes))
    folds[f].append(p)
    sizes[f] += count[p]
  def by_kind(seqs):
    return [n for n in seqs if n.startswith("i_")] + [n for n in seqs if n.startswith("v_")]

  out = {}
  for f, split in enumerate(("a", "b", "c")):
    test = by_kind([n for n in names if _photo_of(n) in folds[f]])
    train = by_kind([n for n in names if n not in test])
    out[split] = {"name": split, "test": test, "train": train}
  out["full"] = {"name": "full", "test": by_kind(names)}
  out["illum"] = {"name": "illum", "test": [n for n in names if n.startswith("i_")]}
  out["view"] = {"name": "view", "test": [n for n in names if n.startswith("v_")]}
  return out


def _photometric(image: np.ndarray, p: Photometric, rng: np.random.Generator) -> np.ndarray:
  """(H, W) float32 0..255 -> the same image under a random photometric change."""
  h, w = image.shape
  gain = math.exp(rng.uniform(-p.log_gain, p.log_gain))
  gamma = math.exp(rng.uniform(-p.log_gamma, p.log_gamma))
  offset = rng.uniform(-p.offset, p.offset)
  strength = rng.uniform(0, p.field)
  angle = rng.uniform(0, 2 * math.pi)
  cy, cx = rng.uniform(0, h), rng.uniform(0, w)
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  ramp = (math.cos(angle) * (x - w / 2) + math.sin(angle) * (y - h / 2)) / (0.5 * math.hypot(h, w))
  spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.3 * math.hypot(h, w)) ** 2))
  field = np.exp(strength * (0.5 * ramp + 0.5 * (2 * spot - 1)))
  v = gain * field * (image / 255.0) ** gamma + offset
  return (np.clip(v, 0, 1) * 255).astype(np.float32)


def _homography_4pt(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """(3, 3) H with H @ [src, 1] ~ [dst, 1], from 4 point pairs (4, 2) float64 (x, y)."""
  rows, rhs = [], []
  for (x, y), (u, v) in zip(src, dst):
    rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
    rhs += [u, v]
  h = np.linalg.solve(np.array(rows), np.array(rhs))
  return np.append(h, 1.0).reshape(3, 3)


def _apply_h(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Applies the (3, 3) homography h to points with float64 coordinates x, y of any one shape."""
  w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
  return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w


def _view_target(ref: np.ndarray, k: int, hp: Homography,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Warps `ref` by a random homography of strength k / 5.

  Args:
    ref: (H, W) float32 grey levels.
    k: target index 1..5.
    hp: bounds at k = 5.
    rng: the sequence's geometry generator; consumed.

  Returns:
    (target (Ht, Wt) float32 0..255, H (3, 3) mapping ref (x, y) to target pixels).
  """
  h, w = ref.shape
  f = k / 5
  corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
  centre = corners.mean(0)
  angle = math.radians(rng.uniform(-1, 1) * hp.rotation_deg * f)
  scale = math.exp(rng.uniform(-1, 1) * hp.log_scale * f)
  rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
  dst = (corners - centre) @ rot.T + centre
  dst += rng.uniform(-1, 1, (4, 2)) * hp.corner_shift * f * (h + w) / 2
  dst -= dst.min(0)
  hmat = _homography_4pt(corners, dst)
  th, tw = (int(math.ceil(v)) + 1 for v in dst.max(0)[::-1])
  ty, tx = np.mgrid[0:th, 0:tw].astype(np.float64)
  sx, sy = _apply_h(np.linalg.inv(hmat), tx, ty)
  target = scipy.ndimage.map_coordinates(ref, [sy, sx], order=1, mode="constant", cval=0.0)
  return target.astype(np.float32), hmat


def _keypoints(ref: np.ndarray, config: GeneratorConfig) -> np.ndarray:
  """(C, 3) float64 candidate frames (x, y, side), pixels of `ref` ((H, W) float32 grey)."""
  frames = []
  for side in config.region_sides:
    response = skimage.feature.corner_harris(ref, method="k", k=0.05, sigma=side / 12)
    peaks = skimage.feature.corner_peaks(response, min_distance=max(2, int(side / 6)),
                                         threshold_rel=1e-4, exclude_border=int(side / 2))
    frames.append(np.column_stack([peaks[:, 1], peaks[:, 0], np.full(len(peaks), side)]))
  return np.concatenate(frames).astype(np.float64)


def _jitter_matrices(rng: np.random.Generator, n: int, j: Jitter) -> np.ndarray:
  """(n, 2, 3) float64 random affine maps of the unit patch square, [A | t]."""
  angle = np.deg2rad(rng.uniform(-j.rotation_deg, j.rotation_deg, n))
  scale = np.exp(rng.uniform(-j.log_scale, j.log_scale, n))
  aspect = np.exp(rng.uniform(-j.log_aspect, j.log_aspect, n))
  shift = rng.uniform(-j.shift, j.shift, (n, 2)) * 2  # unit square side is 2
  c, s = np.cos(angle), np.sin(angle)
  sx, sy = scale * aspect, scale / aspect
  return np.stack([np.stack([c * sx, -s * sy, shift[:, 0]], -1),
                   np.stack([s * sx, c * sy, shift[:, 1]], -1)], 1)


def _target_frames(kp: np.ndarray, jit: np.ndarray, hmat: np.ndarray) -> np.ndarray:
  """Frames mapping unit patch coords to target pixels.

  The jittered frame in reference coordinates is c + side/2 * (A u + t); it
  goes to the target by the affine approximation of `hmat` at the keypoint c.

  Args:
    kp: (n, 3) float64 keypoints (x, y, side), reference pixels.
    jit: (n, 2, 3) float64 jitter maps [A | t] of the unit square.
    hmat: (3, 3) homography from reference to target pixels.

  Returns:
    (n, 2, 3) float64 maps [M | m] with target (x, y) = M (u, v) + m.
  """
  x, y, half = kp[:, 0], kp[:, 1], kp[:, 2] / 2
  w = hmat[2, 0] * x + hmat[2, 1] * y + hmat[2, 2]
  hx, hy = _apply_h(hmat, x, y)
  # Jacobian of (x, y) -> H(x, y) at the keypoints, (n, 2, 2).
  jac = np.stack([np.stack([hmat[i, 0] - hmat[2, 0] * v, hmat[i, 1] - hmat[2, 1] * v], -1)
                  for i, v in ((0, hx), (1, hy))], 1) / w[:, None, None]
  lin = jac @ (half[:, None, None] * jit)  # (n, 2, 3): [J A side/2 | J t side/2]
  lin[:, 0, 2] += hx
  lin[:, 1, 2] += hy
  return lin


_UNIT_CORNERS = np.array([[-1, -1, 1, 1], [-1, 1, -1, 1], [1, 1, 1, 1]], np.float64)


def _fits(frames: np.ndarray, hmat: np.ndarray, shape: tuple[int, int],
          margin: float = 2.0) -> np.ndarray:
  """(n,) bool: the frame's corners, taken back to the reference, lie inside it with a margin.

  Args:
    frames: (n, 2, 3) float64 maps of the unit square to target pixels.
    hmat: (3, 3) homography from reference to target pixels.
    shape: (H, W) of the reference image.
    margin: pixels kept clear of the reference's border.

  The valid part of a target is the warped reference, a convex quadrilateral,
  so a frame (an image of the square) is inside it iff its corners are.
  """
  q = frames @ _UNIT_CORNERS  # (n, 2, 4) target pixels
  x, y = _apply_h(np.linalg.inv(hmat), q[:, 0], q[:, 1])
  h, w = shape
  ok = (x >= margin) & (x <= w - 1 - margin) & (y >= margin) & (y <= h - 1 - margin)
  return ok.all(-1)


_GRID = (np.arange(2 * layout.PATCH_SIZE) + 0.5) / layout.PATCH_SIZE - 1  # 64 points in (-1, 1)
# (3, 64 * 64) homogeneous unit patch coordinates (u, v, 1), row-major over (v, u).
_GRID_UV1 = np.stack([np.tile(_GRID, len(_GRID)), np.repeat(_GRID, len(_GRID)),
                      np.ones(len(_GRID) ** 2)])


def sample_patches(image: np.ndarray, frames: np.ndarray) -> np.ndarray:
  """Bilinear patches of `image` on 64x64 grids, averaged 2x2 to 32x32.

  Args:
    image: (H, W) float32 grey levels.
    frames: (n, 2, 3) float64 maps [A | t] from unit patch coords (u, v) in
      [-1, 1]^2 (u along columns) to image pixels (x, y).

  Returns:
    (n, 32, 32) uint8, 0..255.
  """
  n, p = len(frames), layout.PATCH_SIZE
  yx = (frames[:, ::-1] @ _GRID_UV1).transpose(1, 0, 2).reshape(2, -1)
  vals = scipy.ndimage.map_coordinates(image, yx, order=1, mode="nearest", output=np.float32)
  vals = vals.reshape(n, p, 2, p, 2).sum((2, 4), dtype=np.float32)
  return np.rint(np.clip(vals * 0.25, 0, 255)).astype(np.uint8)


def _images(name: str, config: GeneratorConfig
            ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
  """The reference image and the 5 targets of a sequence.

  Returns:
    ref: (H, W) float32 grey levels.
    targets: 5 pairs (image (Ht, Wt) float32, H (3, 3) mapping ref (x, y) to it).
  """
  kind, photo = name[0], _photo_of(name)
  geo = noise_lib.sequence_rng(config.seed, name, "geometry")
  image = load_photo(photo)
  ph, pw = image.shape
  ch, cw = (int(round(s * geo.uniform(*config.crop_fraction))) for s in (ph, pw))
  y0, x0 = geo.integers(0, ph - ch + 1), geo.integers(0, pw - cw + 1)
  ref = image[y0:y0 + ch, x0:x0 + cw]
  if geo.random() < 0.5:
    ref = ref[:, ::-1]
  ref = np.ascontiguousarray(ref)
  targets = []
  for k in range(1, 6):
    if kind == "i":
      targets.append((_photometric(ref, config.illumination, geo), np.eye(3)))
    else:
      warped, hmat = _view_target(ref, k, config.homography, geo)
      targets.append((_photometric(warped, config.view_photometric, geo), hmat))
  return ref, targets


def _all_frames(name: str, config: GeneratorConfig, kp: np.ndarray, hmats: list[np.ndarray],
                shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Frames of every candidate in all 16 images, and which candidates fit everywhere.

  Returns:
    frames: (C, 16, 2, 3) in IMAGE_TYPES order; the ref frame is unjittered.
    ok: (C,) bool, every frame lies inside the valid part of its image.
  """
  rng = noise_lib.sequence_rng(config.seed, name, "jitter")
  identity = np.broadcast_to(np.array([[1, 0, 0], [0, 1, 0]], np.float64), (len(kp), 2, 3))
  frames = [_target_frames(kp, identity, np.eye(3))]
  for level in layout.LEVELS:
    for k in range(5):
      frames.append(_target_frames(kp, _jitter_matrices(rng, len(kp), config.jitter[level]),
                                   hmats[k]))
  frames = np.stack(frames, 1)
  per_image = [np.eye(3)] + [hmats[k] for _ in layout.LEVELS for k in range(5)]
  ok = np.logical_and.reduce([_fits(frames[:, t], h, shape) for t, h in enumerate(per_image)])
  return frames, ok


def _select(name: str, config: GeneratorConfig, ref: np.ndarray, kp: np.ndarray,
            frames: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Up to `patches_per_sequence` candidates with textured ref patches, sorted by position.

  Candidates are visited in a random order, a batch at a time, so that only
  about as many reference patches are sampled as are kept.

  Returns:
    chosen: (N,) int64 candidate indices.
    ref_patches: (N, 32, 32) uint8, their reference patches.
  """
  order = noise_lib.sequence_rng(config.seed, name, "select").permutation(np.flatnonzero(ok))
  n = config.patches_per_sequence
  batch = n + n // 2 + 16
  chosen = [np.zeros(0, np.int64)]
  patches = [np.zeros((0, layout.PATCH_SIZE, layout.PATCH_SIZE), np.uint8)]
  for start in range(0, len(order), batch):
    idx = order[start:start + batch]
    p = sample_patches(ref, frames[idx, 0])
    textured = p.reshape(len(idx), -1).std(1) > config.min_std
    chosen.append(idx[textured])
    patches.append(p[textured])
    if sum(map(len, chosen)) >= n:
      break
  chosen, patches = np.concatenate(chosen)[:n], np.concatenate(patches)[:n]
  by_position = np.lexsort((kp[chosen, 0], kp[chosen, 1]))
  return chosen[by_position], patches[by_position]


def generate_sequence(name: str, config: GeneratorConfig) -> tuple[np.ndarray, np.ndarray]:
  """All patches of one sequence; depends only on (config, name).

  Args:
    name: `i_<photo>_<k>` or `v_<photo>_<k>`.
    config: generator settings.

  Returns:
    (clean, noisy), each (N, 16, 32, 32) uint8, axis 1 in layout.IMAGE_TYPES order.

  Raises:
    DataError: the photo yields no textured keypoint.
  """
  ref, targets = _images(name, config)
  kp = _keypoints(ref, config)
  frames, ok = _all_frames(name, config, kp, [h for _, h in targets], ref.shape)
  chosen, ref_patches = _select(name, config, ref, kp, frames, ok)
  if not len(chosen):
    raise DataError(f"photo {_photo_of(name)!r} (sequence {name}) has no keypoint with patch "
                    f"std > {config.min_std}; drop it from GeneratorConfig.photos")
  clean = np.empty((len(chosen), layout.NUM_IMAGES, layout.PATCH_SIZE, layout.PATCH_SIZE), np.uint8)
  clean[:, 0] = ref_patches
  for t in range(1, layout.NUM_IMAGES):  # e1..e5, h1..h5, t1..t5 -> targets 1..5
    clean[:, t] = sample_patches(targets[(t - 1) % 5][0], frames[chosen, t])
  rng = noise_lib.sequence_rng(config.seed, name, "noise")
  noisy = noise_lib.add_noise(clean, rng, config.noise)
  return clean, noisy


def write_png(path: str, image: np.ndarray) -> None:
  """Writes (H, W) uint8 as an 8-bit greyscale PNG (deterministic bytes)."""
  Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG", compress_level=6)


def write_sequence(seq_dir: str, clean: np.ndarray, noisy: np.ndarray) -> int:
  """Writes one sequence in the N-HPatches layout; returns the bytes written.

  Args:
    seq_dir: folder to create (inside a temporary dataset folder).
    clean, noisy: (N, 16, 32, 32) uint8.
  """
  os.makedirs(seq_dir, exist_ok=True)
  total = 0
  n = clean.shape[0]
  for t, tp in enumerate(layout.IMAGE_TYPES):
    for suffix, arr in (("", clean), (layout.NOISE_SUFFIX, noisy)):
      path = os.path.join(seq_dir, f"{tp}{suffix}.png")
      write_png(path, arr[:, t].reshape(n * layout.PATCH_SIZE, layout.PATCH_SIZE))
      total += os.path.getsize(path)
  return total


def _can_fork() -> bool:
  """Whether worker processes may be forked from this one.

  Forking a process that runs JAX or TensorFlow threads can deadlock the
  child, and spawned workers would re-import the caller's `__main__` (a
  script without a main guard would run again), so with such a runtime
  loaded the generator works in-process instead.
  """
  threaded = any(m in sys.modules for m in ("jax", "tensorflow", "torch"))
  return not threaded and "fork" in multiprocessing.get_all_start_methods()


def _generate_and_write(name: str, config: GeneratorConfig, seq_root: str) -> tuple[str, int, int]:
  clean, noisy = generate_sequence(name, config)
  nbytes = write_sequence(os.path.join(seq_root, name), clean, noisy)
  return name, clean.shape[0], nbytes


def is_complete(path: str | os.PathLike, config: GeneratorConfig | None = None) -> bool:
  """True when `path` holds a dataset this generator finished (and, if given, of `config`)."""
  try:
    with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError):
    return False
  return (manifest.get("generator_version") == GENERATOR_VERSION
          and manifest.get("noise_version") == noise_lib.NOISE_VERSION
          and (config is None
               or manifest.get("config") == json.loads(json.dumps(config.to_json()))))


def write_dataset(out_dir: str | os.PathLike, config: GeneratorConfig, workers: int | None = None,
                  overwrite: bool = False, log: Callable[[str], None] | None = None) -> dict:
  """Generates the dataset into `out_dir` (N-HPatches layout + splits.json + manifest.json).

  Everything is written into a temporary sibling folder that is renamed onto
  `out_dir` only when complete, so a killed run leaves no partial dataset.

  Args:
    out_dir: destination folder; must not exist unless `overwrite`.
    config: what to generate.
    workers: forked processes; None = CPU count; 1 = in this process (also
      when JAX or TensorFlow is loaded, see `_can_fork`).
    overwrite: replace an existing `out_dir`.
    log: called with one line per finished sequence.

  Returns:
    Summary: sequences, labels, patches (labels x 16 clean images), bytes, seconds.

  Raises:
    DataError: `out_dir` exists and not `overwrite`.
  """
  start = time.perf_counter()
  out_dir = os.path.abspath(os.fspath(out_dir))
  if os.path.exists(out_dir) and not overwrite:
    raise DataError(f"{out_dir}: already exists (overwrite=True, or --overwrite, replaces it)")
  with atomic.atomic_dir(out_dir) as tmp:
    names = sequence_names(config)
    seq_root = os.path.join(tmp, "hpatches")
    workers = min(workers or os.cpu_count() or 1, len(names)) if _can_fork() else 1
    counts, nbytes = {}, 0
    if workers == 1:
      results = (_generate_and_write(n, config, seq_root) for n in names)
      pool = None
    else:
      pool = concurrent.futures.ProcessPoolExecutor(
          workers, mp_context=multiprocessing.get_context("fork"))
      results = pool.map(_generate_and_write, names, [config] * len(names), [seq_root] * len(names))
    try:
      for name, count, size in results:
        counts[name] = count
        nbytes += size
        if log:
          log(f"{name}: {count} labels")
    finally:
      if pool:
        pool.shutdown(cancel_futures=True)
    labels = sum(counts.values())
    split_dict = make_splits(names, config.seed)
    manifest = {"generator_version": GENERATOR_VERSION, "noise_version": noise_lib.NOISE_VERSION,
                "synthetic": True, "scikit_image_version": skimage.__version__,
                "config": config.to_json(), "labels": labels, "sequences": counts}
    for fname, obj in ((splits_lib.SPLITS_FILENAME, split_dict), (MANIFEST, manifest)):
      with open(os.path.join(tmp, fname), "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=1) + "\n")
      nbytes += os.path.getsize(os.path.join(tmp, fname))
    splits_lib.load_splits(tmp)  # the file we just wrote must validate
  return {"out_dir": out_dir, "sequences": len(counts), "labels": labels,
          "patches": labels * layout.NUM_IMAGES, "bytes": nbytes,
          "seconds": round(time.perf_counter() - start, 2)}
