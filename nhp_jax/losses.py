"""Losses of the denoisers (MAE) and the descriptor (triplet margin), and their log metrics.

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
