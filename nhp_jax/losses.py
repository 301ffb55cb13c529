"""Losses of the denoisers (MAE) and the descriptor, and their log metrics.

Descriptor losses: the seed's triplet margin on given triplets; HardNet's
hardest-in-batch triplet margin on anchor-positive batches; SOSNet's
second-order similarity regulariser.

All reduce in float32 whatever the input dtype, so bfloat16 models still get
float32 losses.
"""

import jax
import jax.numpy as jnp


def mae(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error over every pixel of the batch (the baseline denoiser's loss).

  Args:
    pred: (B, 32, 32, 1) float, denoised pixels 0..255.
    target: same shape, clean pixels 0..255.

  Returns:
    () float32, in pixel units.
  """
  return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def psnr(pred: jax.Array, target: jax.Array, max_value: float = 255.0) -> jax.Array:
  """Peak signal-to-noise ratio of the whole batch, for logging the denoiser.

  Args:
    pred: (B, 32, 32, 1) float, denoised pixels 0..max_value.
    target: same shape, clean pixels.
    max_value: the largest pixel value.

  Returns:
    () float32 in dB; +inf when pred == target.
  """
  mse = jnp.mean(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)))
  return 10.0 * jnp.log10(max_value**2 / mse)


def squared_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean over the last axis of (x - y)^2: squared L2 distance / D, the seed's d().

  Args:
    x: (B, D) float descriptors.
    y: (B, D) float descriptors.

  Returns:
    (B,) float32.
  """
  return jnp.mean(jnp.square(x.astype(jnp.float32) - y.astype(jnp.float32)), axis=-1)


def _hinge(a, p, n, margin):
  return jnp.maximum(0.0, squared_distance(a, p) - squared_distance(a, n) + margin)


def triplet_margin(a: jax.Array, p: jax.Array, n: jax.Array,
                   margin: float = 1.0) -> jax.Array:
  """The seed's triplet loss: mean over the batch of max(0, d(a, p) - d(a, n) + margin).

  d is the mean squared difference over the 128 dimensions (squared L2 / 128),
  as the course's Keras baseline computes it.

  Args:
    a: (B, 128) float anchor descriptors.
    p: (B, 128) float positive descriptors (same label as a).
    n: (B, 128) float negative descriptors (another label).
    margin: hinge margin, in units of d.

  Returns:
    () float32.
  """
  return jnp.mean(_hinge(a, p, n, margin))


def triplet_metrics(a: jax.Array, p: jax.Array, n: jax.Array,
                    margin: float = 1.0) -> dict[str, jax.Array]:
  """What to log beside the triplet loss, with the loss's d.

  Args:
    a: (B, 128) float anchor descriptors.
    p: (B, 128) float positive descriptors.
    n: (B, 128) float negative descriptors.
    margin: the loss's margin.

  Returns:
    {"active_fraction": share of triplets with a positive hinge (the ones
    that give gradient), "d_pos": mean d(a, p), "d_neg": mean d(a, n)}, each
    () float32.
  """
  return {"active_fraction": jnp.mean((_hinge(a, p, n, margin) > 0).astype(jnp.float32)),
          "d_pos": jnp.mean(squared_distance(a, p)),
          "d_neg": jnp.mean(squared_distance(a, n))}


# Floor of squared Euclidean distances before the square root: sqrt has an
# infinite derivative at 0 (reached by duplicated descriptors and by the
# diagonal of a set's own distance matrix), and the |x|^2 + |y|^2 - 2 x.y form
# can round below 0. In units of squared descriptor norm; for unit
# descriptors it floors distances at 1e-3, below float32 cancellation noise.
DISTANCE_EPS = 1e-6


def pairwise_distances(x: jax.Array, y: jax.Array, eps: float = DISTANCE_EPS) -> jax.Array:
  """Euclidean (not squared) distances between every row of x and every row of y.

  Args:
    x: (B, D) float descriptors.
    y: (C, D) float descriptors.
    eps: squared distances are clipped to at least this before the square
      root, so the gradient is finite (zero) where two descriptors coincide.

  Returns:
    (B, C) float32, entry [i, j] = sqrt(max(|x_i - y_j|^2, eps)), the Gram
    term at full float32 precision on every backend.
  """
  x, y = x.astype(jnp.float32), y.astype(jnp.float32)
  # HIGHEST: these distances choose the hardest negatives. At the default
  # precision a TPU multiplies float32 in bfloat16 passes and recent GPUs in
  # TF32 (10-bit mantissas), so near-equal negatives would be ranked
  # differently from the CPU's true float32 product.
  # (2 x) y^T, in this order: the factor 2 is exact either way, but XLA:CPU
  # sums a product with a scaled operand in another order than a scaled product.
  gram2 = jnp.matmul(2.0 * x, y.T, precision=jax.lax.Precision.HIGHEST)
  sq = (jnp.sum(jnp.square(x), axis=-1)[:, None] + jnp.sum(jnp.square(y), axis=-1)[None, :]
        - gram2)
  return jnp.sqrt(jnp.maximum(sq, eps))


def row_distances(x: jax.Array, y: jax.Array, eps: float = DISTANCE_EPS) -> jax.Array:
  """Euclidean distance between row i of x and row i of y, clipped as `pairwise_distances`.

  Args:
    x: (B, D) float descriptors.
    y: (B, D) float descriptors.
    eps: floor of the squared distances.

  Returns:
    (B,) float32.
  """
  diff = x.astype(jnp.float32) - y.astype(jnp.float32)
  return jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(diff), axis=-1), eps))


def hardest_in_batch_distances(a: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Positive distance and hardest in-batch negative distance of every pair (HardNet).

  Pair i's hardest negative is the closest non-matching descriptor either way
  round: min over j != i of min(D[i, j], D[j, i]), D = distances from the
  anchors to the positives. Taking both directions is the "anchor swap" of
  the HardNet paper's code: the negative may be another pair's positive
  (closest to anchor i) or another pair's anchor (closest to positive i).

  Args:
    a: (B, D) float anchor descriptors, B >= 2, all of distinct labels.
    p: (B, D) float positive descriptors, row i of the same label as a[i].

  Returns:
    (d_pos, d_neg): (B,) float32 each, Euclidean distances.
  """
  if a.shape[0] < 2:
    raise ValueError(f"hardest-in-batch negatives need a batch of >= 2 pairs, got {a.shape[0]}")
  dist = pairwise_distances(a, p)
  off_diagonal = jnp.where(jnp.eye(dist.shape[0], dtype=bool), jnp.inf, dist)
  d_neg = jnp.minimum(jnp.min(off_diagonal, axis=1), jnp.min(off_diagonal, axis=0))
  return jnp.diagonal(dist), d_neg


def hardest_in_batch(a: jax.Array, p: jax.Array, margin: float = 1.0) -> jax.Array:
  """HardNet's loss: mean over pairs of max(0, margin + d_pos - d_neg), hardest d_neg.

  Args:
    a: (B, D) float anchor descriptors (L2-normalised in HardNet), distinct labels.
    p: (B, D) float positive descriptors.
    margin: hinge margin, in Euclidean distance units (1 in the paper).

  Returns:
    () float32.
  """
  d_pos, d_neg = hardest_in_batch_distances(a, p)
  return jnp.mean(jnp.maximum(0.0, margin + d_pos - d_neg))


def hardest_in_batch_metrics(a: jax.Array, p: jax.Array,
                             margin: float = 1.0) -> dict[str, jax.Array]:
  """What to log beside the hardest-in-batch loss.

  Args:
    a: (B, D) float anchor descriptors.
    p: (B, D) float positive descriptors.
    margin: the loss's margin.

  Returns:
    {"active_fraction": share of pairs with a positive hinge, "d_pos": mean
    Euclidean positive distance, "d_neg": mean hardest-negative distance},
    each () float32.
  """
  d_pos, d_neg = hardest_in_batch_distances(a, p)
  hinge = margin + d_pos - d_neg
  return {"active_fraction": jnp.mean((hinge > 0).astype(jnp.float32)),
          "d_pos": jnp.mean(d_pos), "d_neg": jnp.mean(d_neg)}


def _nearest_mask(dist: jax.Array, k: int) -> jax.Array:
  """(B, B) bool: [i, j] True iff j is one of the k nearest of i, i itself excluded.

  Among equal distances the lower index counts as nearer (`lax.top_k`'s order).
  """
  n = dist.shape[0]
  others = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, dist)
  _, idx = jax.lax.top_k(-others, k)
  return jnp.zeros((n, n), bool).at[jnp.arange(n)[:, None], idx].set(True)


def second_order_similarity(a: jax.Array, p: jax.Array, k: int = 8,
                            eps: float = DISTANCE_EPS) -> jax.Array:
  """SOSNet's second-order similarity regulariser (Tian et al., CVPR 2019).

  A matching pair should sit at the same distances from the other points:
  for pair i, compare its anchor's distances to the other anchors with its
  positive's distances to the other positives, over the neighbourhood
  c_i = (k nearest anchors of a[i]) united with (k nearest positives of
  p[i]), both excluding i itself:

    R = mean_i sqrt(sum_{j in c_i} (|a_i - a_j| - |p_i - p_j|)^2).

  The neighbourhoods are chosen without gradient (a selection); distances
  are Euclidean, clipped as `pairwise_distances`, and so is the sum under
  the square root (its gradient stays finite when a == p).

  Args:
    a: (B, D) float anchor descriptors.
    p: (B, D) float positive descriptors, row i matching a[i].
    k: neighbours per set, 1 <= k < B (8 in the paper).
    eps: floor of squared distances and of the per-pair sum.

  Returns:
    () float32.
  """
  n = a.shape[0]
  if not 1 <= k < n:
    raise ValueError(f"second-order similarity needs 1 <= k < batch ({n}), got k={k}")
  dist_a, dist_p = pairwise_distances(a, a, eps), pairwise_distances(p, p, eps)
  near = _nearest_mask(jax.lax.stop_gradient(dist_a), k) | _nearest_mask(
      jax.lax.stop_gradient(dist_p), k)
  sq = jnp.sum(jnp.where(near, jnp.square(dist_a - dist_p), 0.0), axis=1)
  return jnp.mean(jnp.sqrt(jnp.maximum(sq, eps)))
