"""Image matching: find each `ref` patch among a target image's patches, as the official benchmark.

Per test sequence, level (e, h, t) and k = 1..5: the nearest neighbour of
every `ref` descriptor among the descriptors of image `<level>k` (float64
cdist distance, lowest index on ties); a match is correct when it is the
same patch. AP ranks the N matches by distance (stable: lower `ref` index
first on ties) with all N patches counted as positives, so patches matched
wrongly lower recall. Level AP = mean over sequences and k; mAP = mean
over levels.

Devices (`kernels`): the float32 screen of the nearest-neighbour search
runs on the default device (the accelerator, if any); exact distances,
tie resolution and AP run on the CPU device, `kernels.exact_device()`.
"""

import numpy as np

from nhp_jax import progress
from nhp_jax.data import layout
from nhp_jax.errors import DescriptorError
from nhp_jax.evaluation import kernels
from nhp_jax.evaluation import types

_K = 5  # target images per level


def nearest_matches(descs: np.ndarray, metric: str, width: int) -> tuple[np.ndarray, np.ndarray]:
  """Nearest-neighbour matches of one sequence for its 15 target images.

  Args:
    descs: (N, 16, D) float32 descriptors of one sequence, 1 <= N <= width.
    metric: "l2" or "l1".
    width: padded candidate width shared by all sequences (one compilation).

  Returns:
    dist: (15, width) float64 distance of each `ref` patch to its match,
      +inf past N (padding, never retrieved); images in
      `layout.IMAGE_TYPES[1:]` order.
    correct: (15, width) bool, the match is the same patch.
  """
  n = descs.shape[0]
  index, dist = kernels.nearest_neighbours(descs[:, 0], descs[:, 1:].transpose(1, 0, 2), metric,
                                           width=width)
  dist_p = np.full((dist.shape[0], width), np.inf)
  dist_p[:, :n] = dist
  correct_p = np.zeros((dist.shape[0], width), bool)
  correct_p[:, :n] = index == np.arange(n)[None, :]
  return dist_p, correct_p


def evaluate_matching(descs: types.DescriptorSet, metric: str = "l2") -> dict:
  """Scores the matching benchmark.

  Args:
    descs: descriptors of the split's test sequences, (L, 16, D) float32.
    metric: "l2" (official default) or "l1".

  Returns:
    {"mAP": mean over levels, "levels": {level: {"ap": mean over sequences
     and k, "success": mean correct-match rate, "per_sequence": {name:
     [ap_k1, ..., ap_k5]}}}}.

  Raises:
    DescriptorError: no sequences, a sequence without patches, NaN/Inf.
    ConfigError: unknown metric.
  """
  kernels.check_metric(metric)
  kernels.check_finite(descs.descs)
  if not descs.sequences:
    raise DescriptorError("matching: expected at least one sequence, found none")
  counts = descs.counts()
  empty = [name for name, n in zip(descs.sequences, counts) if n == 0]
  if empty:
    raise DescriptorError(f"matching: every sequence needs patches; {', '.join(empty)} has none")
  width = kernels.padded_width(int(counts.max()))
  dists, corrects = [], []
  with progress.Progress(len(descs.sequences), "matching", unit="sequences") as bar:
    for s in range(len(descs.sequences)):
      d, c = nearest_matches(descs.descs[descs.offsets[s]:descs.offsets[s + 1]], metric, width)
      dists.append(d)
      corrects.append(c)
      bar.update()
  dists, corrects = np.concatenate(dists), np.concatenate(corrects)  # (S * 15, width)
  num_pos = np.repeat(counts, len(layout.IMAGE_TYPES) - 1)
  shape = (len(descs.sequences), len(layout.LEVELS), _K)
  aps = kernels.average_precision(dists, corrects, num_positives=num_pos).reshape(shape)
  successes = (corrects.sum(axis=1) / num_pos).reshape(shape)
  levels = {}
  for lv, level in enumerate(layout.LEVELS):
    levels[level] = {
        "ap": float(aps[:, lv].mean()),
        "success": float(successes[:, lv].mean()),
        "per_sequence": {name: [float(x) for x in aps[s, lv]]
                         for s, name in enumerate(descs.sequences)},
    }
  return {"mAP": float(np.mean([levels[lv]["ap"] for lv in layout.LEVELS])), "levels": levels}
