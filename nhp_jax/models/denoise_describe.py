"""A denoiser and a descriptor as one model, for end-to-end (joint) fine-tuning.

`DenoiseDescribe` maps noisy pixels to descriptors: the denoiser's output,
clipped to 0..255, is the descriptor's input. Its variables are the two
networks' own trees side by side, `{"denoiser": ..., "descriptor": ...}` in
every collection, so a trained denoiser and a trained descriptor load into it
unchanged (`nhp_jax.train.recipes.joint`) and a fine-tuned pair is restored,
scored and exported like any descriptor (its input is the noisy patch).

The two halves are also reachable alone, for the joint loss (MAE of the
denoised patches, descriptor loss of their descriptors):
`model.apply(v, x, method="denoise")` and `model.apply(v, y, method="describe")`.

Evaluation difference from a separately trained pair: between the two
networks the pixels are clipped but not rounded to uint8 (rounding has no
gradient), where `inference.make_describe_fn` with a denoiser rounds them.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from nhp_jax.errors import ConfigError

PIXEL_MAX = 255.0


class DenoiseDescribe(nn.Module):
  """Noisy pixels -> descriptor(clip(denoiser(x), 0, 255)).

  Shape:
    input: (B, 32, 32, 1) float32 noisy pixels 0..255.
    output: (B, D) float32 descriptors (D = the descriptor's dimension).

  Attributes:
    denoiser: a denoiser module (pixels -> pixels, e.g. `unet.ShallowUNet`).
    descriptor: a descriptor module (pixels -> (B, D), e.g. `l2net.L2Net`).
  """
  denoiser: nn.Module
  descriptor: nn.Module

  def denoise(self, x, train: bool = False):
    """(B, 32, 32, 1) noisy pixels -> the denoiser's output, pixels, not clipped."""
    return self.denoiser(x, train=train)

  def describe(self, x, train: bool = False):
    """(B, 32, 32, 1) pixels 0..255 -> (B, D) descriptors of the descriptor alone."""
    return self.descriptor(x, train=train)

  def __call__(self, x, train: bool = False):
    return self.describe(jnp.clip(self.denoise(x, train), 0.0, PIXEL_MAX), train)


def build(denoiser: dict[str, Any], descriptor: dict[str, Any], dtype: Any = None,
          *, get_model) -> DenoiseDescribe:
  """The joint model of two `{"name", "kwargs"}` model sections (as a config's `model`).

  Args:
    denoiser: the denoiser's section, e.g. {"name": "unet_shallow", "kwargs": {...}}.
    descriptor: the descriptor's section, e.g. {"name": "l2net", "kwargs": {...}}.
    dtype: computation dtype passed to both (None: their default).
    get_model: the registry's builder (passed in to avoid an import cycle).
  """
  def sub(section, role):
    if hasattr(section, "to_dict"):   # a ConfigDict section
      section = section.to_dict()
    if not isinstance(section, dict) or set(section) != {"name", "kwargs"}:
      raise ConfigError(f"model.kwargs.{role}: expected a section with 'name' and 'kwargs', "
                        f"found {section!r}")
    kwargs = dict(section["kwargs"])
    if dtype is not None:
      kwargs["dtype"] = dtype
    return get_model(section["name"], **kwargs)
  return DenoiseDescribe(denoiser=sub(denoiser, "denoiser"),
                         descriptor=sub(descriptor, "descriptor"))
