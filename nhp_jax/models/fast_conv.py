"""Stride-1 convolutions with few input or few output channels, computed as one matmul.

XLA:CPU's convolution kernels are slow for convs with very few input or
output channels, their kernel gradients above all (the shallow UNet's
64 -> 1 output conv spent more time in its kernel gradient than all its
other layers but one). `Conv` computes those two shapes as a matmul and
shifted slices instead, and every other conv as `nn.Conv` does:

  * few inputs (kh * kw * C_in <= MAX_GATHERED): gather the kh * kw shifted
    views of the padded input on the channel axis (im2col), then one
    (kh * kw * C_in, C_out) matmul;
  * few outputs (C_out <= MAX_SCATTERED): one (C_in, kh * kw * C_out) matmul,
    then sum the kh * kw shifted output planes (col2im).

Parameters are those of `nn.Conv` ("kernel" (kh, kw, C_in, C_out), "bias"
(C_out,)), so checkpoints are interchangeable. The matmul forms are used only
where `nhp_jax.platform.cpu_forms()` says so (the CPU backend, where they
were measured faster); elsewhere every conv is XLA's plain convolution.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nhp_jax import platform

MAX_GATHERED = 16   # kh * kw * C_in up to which the input is gathered (im2col)
MAX_SCATTERED = 4   # C_out up to which the output planes are scattered (col2im)
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _pads(kernel_size: tuple[int, int], padding: str) -> tuple[tuple[int, int], ...]:
  """(before, after) of each spatial axis; TensorFlow's SAME puts the odd one after."""
  if padding == "VALID":
    return ((0, 0), (0, 0))
  return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size)


def gathered_conv(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
  """Stride-1 conv as im2col + matmul.

  Args:
    x: (B, H, W, C_in) float.
    kernel: (kh, kw, C_in, C_out), same dtype.
    padding: "SAME" or "VALID".

  Returns:
    (B, H', W', C_out), H' = H for SAME, H - kh + 1 for VALID.
  """
  kh, kw, c_in, c_out = kernel.shape
  (pt, pb), (pl, pr) = _pads((kh, kw), padding)
  x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  # Row-major (i, j, c) order of the stacked views matches kernel.reshape.
  cols = jnp.concatenate([x[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)],
                         axis=-1)
  return cols @ kernel.reshape(kh * kw * c_in, c_out)


def scattered_conv(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
  """Stride-1 conv as matmul + col2im: each output sums kh * kw shifted product planes.

  Args:
    x: (B, H, W, C_in) float.
    kernel: (kh, kw, C_in, C_out), same dtype.
    padding: "SAME" or "VALID".

  Returns:
    (B, H', W', C_out), H' = H for SAME, H - kh + 1 for VALID.
  """
  kh, kw, c_in, c_out = kernel.shape
  b, h, w, _ = x.shape
  z = x @ kernel.transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out)
  z = z.reshape(b, h, w, kh, kw, c_out)
  (pt, pb), (pl, pr) = _pads((kh, kw), padding)
  # Padding the products is padding the input: a zero input pixel gives zero products.
  z = jnp.pad(z, ((0, 0), (pt, pb), (pl, pr), (0, 0), (0, 0), (0, 0)))
  oh, ow = z.shape[1] - kh + 1, z.shape[2] - kw + 1
  return sum(z[:, i:i + oh, j:j + ow, i, j, :] for i in range(kh) for j in range(kw))


class Conv(nn.Module):
  """Drop-in `nn.Conv` (stride 1, SAME or VALID, with bias) with fast small-channel paths.

  Shape:
    input: (B, H, W, C_in) float.
    output: (B, H', W', features), in `dtype`.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw).
    padding: "SAME" (TensorFlow's) or "VALID".
    kernel_init, bias_init: as `nn.Conv`.
    dtype: computation dtype (None: the inputs').
    param_dtype: dtype of the parameters.
  """
  features: int
  kernel_size: tuple[int, int]
  padding: str = "SAME"
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.padding not in ("SAME", "VALID"):
      raise ValueError(f"Conv padding must be 'SAME' or 'VALID', got {self.padding!r}")
    kh, kw = self.kernel_size
    c_in = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (kh, kw, c_in, self.features),
                        self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    cpu = platform.cpu_forms()
    if cpu and kh * kw * c_in <= MAX_GATHERED:
      y = gathered_conv(x, kernel, self.padding)
    elif cpu and self.features <= MAX_SCATTERED:
      y = scattered_conv(x, kernel, self.padding)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), self.padding,
                                       dimension_numbers=_DIMENSIONS)
    return y + bias
