"""L2-Net descriptor (Tian, Fan and Wu, CVPR 2017) as the course's Keras baseline builds it."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nhp_jax import platform
from nhp_jax.models import fast_conv

# The baseline's channels and strides of the six 3x3 conv + BN + ReLU layers.
LAYERS = ((32, 1), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1))
DESCRIPTOR_DIM = 128
HEAD_SIZE = 8  # Side of the feature map (32 / 4) that the VALID head conv covers.
# Keras BatchNormalization defaults: running = 0.99 * running + 0.01 * batch.
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


@jax.custom_vjp
def _dense(x, kernel):
  """x @ kernel whose kernel gradient comes out as (K, F), the parameter's layout.

  Left to autodiff, XLA:CPU computes the head's kernel gradient as the
  (F, K) product dy^T x and transposes it (3 x 4 MiB per triplet step).
  """
  return x @ kernel


def _dense_fwd(x, kernel):
  return x @ kernel, (x, kernel)


def _dense_bwd(residuals, dy):
  x, kernel = residuals
  return dy @ kernel.T, jax.lax.dot_general(x, dy, (((0,), (0,)), ((), ())))


_dense.defvjp(_dense_fwd, _dense_bwd)


class FullFrameConv(nn.Module):
  """A VALID conv whose kernel covers the whole input, computed as one matmul.

  With kernel side == input side the conv has a single output position, so
  it is a dense layer on the flattened (H, W, C) map. The kernel keeps the
  conv's (H, W, C_in, C_out) shape, so parameter counts and checkpoints are
  those of the conv. Where `platform.cpu_forms()` holds (the CPU backend) it
  is one matmul with a custom kernel gradient, which trains faster there
  than XLA's conv; elsewhere it is XLA's plain VALID convolution.

  Shape:
    input: (B, H, W, C_in), with (H, W) == kernel_size.
    output: (B, features).
  """
  features: int
  kernel_size: tuple[int, int]
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.glorot_uniform()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    if x.shape[1:3] != (kh, kw):
      raise ValueError(f"FullFrameConv expects (B, {kh}, {kw}, C) input, got {x.shape}")
    kernel = self.param("kernel", self.kernel_init,
                        (kh, kw, x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if not platform.cpu_forms():
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
      return y.reshape(x.shape[0], self.features) + bias
    # Row-major flattening of (H, W, C) matches the kernel's (H, W, C_in) order.
    flat = x.reshape(x.shape[0], -1)
    return _dense(flat, kernel.reshape(-1, self.features)) + bias


class L2Net(nn.Module):
  """L2-Net: 6 x [conv3x3 + BN + ReLU], dropout, 8x8 VALID conv to 128-d.

  Channels 32, 32, 64 (stride 2), 64, 128 (stride 2), 128; every conv has a
  bias and Glorot-uniform init (Keras defaults); batch norm with epsilon 1e-3
  and running = 0.99 * running + 0.01 * batch, the batch variance biased (as
  Keras). `SAME` padding is TensorFlow's: for the stride-2 layers on even
  inputs it pads 0 before and 1 after. No L2 normalisation in the baseline.

  Parameters: 1,336,032 trainable + 896 batch statistics = 1,336,928 values
  (Keras: "Total params: 1,336,928, Non-trainable params: 896").

  Shape:
    input: (B, 32, 32, 1) float32 raw pixel values 0..255 (times
      `input_scale`).
    output: (B, 128) float32 descriptors.

  Attributes:
    dropout_rate: dropout before the head, active only with train=True
      (needs a "dropout" rng).
    l2_normalize: divide each descriptor by its L2 norm.
    final_bn: batch norm without scale or offset after the head (HardNet's
      last layer): centres and whitens each dimension over the batch, so L2-
      normalised descriptors cannot all crowd into one direction.
    input_scale: multiplies the input first (1.0: raw 0..255 pixels).
    dtype: computation dtype (e.g. jnp.bfloat16); batch-norm statistics are
      reduced in float32 and the output is float32.
    param_dtype: dtype of the parameters.
  """
  dropout_rate: float = 0.3
  l2_normalize: bool = False
  final_bn: bool = False
  input_scale: float = 1.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = jnp.asarray(x, jnp.float32) * self.input_scale
    for i, (features, stride) in enumerate(LAYERS):
      # The 1-channel first layer as im2col + matmul (`fast_conv`), where
      # XLA:CPU's convolution is slowest; same parameters as nn.Conv.
      conv = fast_conv.Conv if stride == 1 and x.shape[-1] == 1 else functools.partial(
          nn.Conv, strides=stride)
      x = conv(features, (3, 3), padding="SAME",
               kernel_init=nn.initializers.glorot_uniform(), dtype=self.dtype,
               param_dtype=self.param_dtype, name=f"conv_{i}")(x)
      # Two-pass variance: raw 0..255 inputs give large activations, where
      # E[x^2] - E[x]^2 loses float32 precision.
      x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                       epsilon=BN_EPSILON, use_fast_variance=False, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=f"bn_{i}")(x)
      x = nn.relu(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = FullFrameConv(DESCRIPTOR_DIM, (HEAD_SIZE, HEAD_SIZE), dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(x)
    x = x.astype(jnp.float32)
    if self.final_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                       epsilon=BN_EPSILON, use_fast_variance=False, use_scale=False,
                       use_bias=False, name="head_bn")(x)
    if self.l2_normalize:
      x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x

