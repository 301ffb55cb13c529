"""U-Net denoisers (Ronneberger et al. 2015): the course's shallow baseline and a 4-level one.

Both map a noisy patch to a clean one directly (no residual). Layers use
TensorFlow's `SAME` padding, as Keras does: for the even 2x2 up-convolution it
pads 0 before and 1 after (bottom/right).
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from nhp_jax.models import fast_conv

_HE = nn.initializers.he_normal()  # Keras he_normal: truncated normal, fan-in.
_GLOROT = nn.initializers.glorot_uniform()


def upsample_nearest(x, factor: int = 2):
  """(B, H, W, C) -> (B, factor*H, factor*W, C), each pixel copied (Keras UpSampling2D)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


def _conv(module, features, k, name, init=_HE):
  """A k x k `SAME` conv with bias, created inside `module`'s compact __call__.

  `fast_conv.Conv`: `nn.Conv`'s parameters, with matmul forms for the 1-channel
  input and output layers, where XLA:CPU's convolutions are slowest.
  """
  return fast_conv.Conv(features, (k, k), padding="SAME", kernel_init=init, dtype=module.dtype,
                        param_dtype=module.param_dtype, name=name)


def _max_pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class ShallowUNet(nn.Module):
  """The course's baseline denoiser: one pooling level and one skip.

  c1 = conv3x3 16 ReLU; maxpool 2; conv3x3 32 ReLU; nearest upsample x2;
  conv2x2 64 ReLU; concat [c1, that] (80 channels, Keras' order); conv3x3 64
  ReLU; conv3x3 1 linear. All `SAME` with bias; He-normal init, the last
  layer Glorot-uniform.

  Parameters: 59,777 (160 + 4,640 + 8,256 + 46,144 + 577), no batch norm.

  Shape:
    input: (B, 32, 32, 1) float32 noisy pixels 0..255 (any even H, W work).
    output: (B, 32, 32, 1) float32 denoised pixels, same units as the input
      (not clipped).

  Attributes:
    input_scale: the network sees `input * input_scale` and its output is
      divided by it, so it still predicts pixel values.
    dtype: computation dtype (e.g. jnp.bfloat16); the output is float32.
    param_dtype: dtype of the parameters.
  """
  input_scale: float = 1.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No batch norm or dropout; kept for the common model signature.
    conv = functools.partial(_conv, self)
    x = jnp.asarray(x, jnp.float32) * self.input_scale
    c1 = nn.relu(conv(16, 3, "conv_0")(x))
    y = nn.relu(conv(32, 3, "conv_1")(_max_pool(c1)))
    y = nn.relu(conv(64, 2, "conv_2")(upsample_nearest(y)))
    y = jnp.concatenate([c1, y], axis=-1)
    y = nn.relu(conv(64, 3, "conv_3")(y))
    y = conv(1, 3, "conv_4", _GLOROT)(y)
    return y.astype(jnp.float32) / self.input_scale


class UNet(nn.Module):
  """A U-Net 2015 adapted to 32x32 patches: 4 encoder and 4 decoder levels.

  Encoder level l (l = 0..3, `features * 2**l` channels: 32, 64, 128, 256):
  two conv3x3 ReLU, the output kept as skip, then maxpool 2 (32 -> 16 -> 8 ->
  4 -> 2). Bottleneck: two conv3x3 ReLU with 512 channels at 2x2. Decoder
  level l (l = 3..0): nearest upsample x2 and conv2x2 ReLU to the level's
  channels (the "up-convolution", as the Keras tutorial U-Net), concat [skip,
  that], two conv3x3 ReLU. Head: conv1x1 to 1 channel, linear. All `SAME`
  with bias, He-normal init (head Glorot-uniform); no batch norm, no dropout.

  Parameters (features=32, depth=4): 7,759,521 (encoder 1,171,680, bottleneck
  3,539,968, decoder 3,047,840, head 33).

  Shape:
    input: (B, H, W, 1) float32 noisy pixels 0..255, H and W multiples of
      2**depth (32 for patches).
    output: (B, H, W, 1) float32 denoised pixels, same units as the input
      (not clipped).

  Attributes:
    features: channels of the first level, doubled at each level below.
    depth: number of pooling levels.
    input_scale: the network sees `input * input_scale` and its output is
      divided by it, so it still predicts pixel values.
    dtype: computation dtype (e.g. jnp.bfloat16); the output is float32.
    param_dtype: dtype of the parameters.
  """
  features: int = 32
  depth: int = 4
  input_scale: float = 1.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No batch norm or dropout; kept for the common model signature.
    conv = functools.partial(_conv, self)

    def double_conv(y, f, name):
      y = nn.relu(conv(f, 3, f"{name}_conv_0")(y))
      return nn.relu(conv(f, 3, f"{name}_conv_1")(y))

    y = jnp.asarray(x, jnp.float32) * self.input_scale
    skips = []
    for level in range(self.depth):
      y = double_conv(y, self.features * 2**level, f"down_{level}")
      skips.append(y)
      y = _max_pool(y)
    y = double_conv(y, self.features * 2**self.depth, "bottleneck")
    for level in reversed(range(self.depth)):
      f = self.features * 2**level
      y = nn.relu(conv(f, 2, f"up_{level}_upconv")(upsample_nearest(y)))
      y = double_conv(jnp.concatenate([skips[level], y], axis=-1), f, f"up_{level}")
    y = conv(1, 1, "head", _GLOROT)(y)
    return y.astype(jnp.float32) / self.input_scale
