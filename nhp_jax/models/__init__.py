"""Model registry: denoisers (noisy -> clean pixels) and the L2-Net descriptor.

Every model is a Flax Linen module used as a pure function:
`model.init(key, x, train=False)` and `model.apply(variables, x, train=...,
rngs={"dropout": key}, mutable=["batch_stats"])`, with x (B, 32, 32, 1)
float32 raw pixels 0..255. Common attributes: `input_scale` multiplies the
input (the denoisers divide their output by it, so they always predict
pixel values 0..255); `dtype` is the computation dtype (e.g. jnp.bfloat16)
while parameters stay `param_dtype` (float32) and outputs are float32.
"""

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import numpy as np

from nhp_jax.errors import ConfigError
from nhp_jax.models import denoise_describe, dncnn, l2net, unet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet_shallow": unet.ShallowUNet,
    "unet": unet.UNet,
    "dncnn": dncnn.DnCNN,
    "dncnn_transfer": dncnn.DnCNNTransfer,
    "l2net": l2net.L2Net,
    # A denoiser and a descriptor end to end: kwargs denoiser={"name", "kwargs"},
    # descriptor={"name", "kwargs"} (see `denoise_describe.build`).
    "denoise_describe": denoise_describe.DenoiseDescribe,
}


def get_model(name: str, **kwargs) -> nn.Module:
  """Builds model `name` with the given attributes (e.g. depth=5, dtype=jnp.bfloat16).

  Raises:
    ConfigError: unknown name (lists the known ones) or unknown attribute
      (lists the model's attributes).
  """
  if name not in MODELS:
    raise ConfigError(f"model: unknown name {name!r}; known: {', '.join(sorted(MODELS))}")
  cls = MODELS[name]
  if cls is denoise_describe.DenoiseDescribe:
    unknown = sorted(set(kwargs) - {"denoiser", "descriptor", "dtype"})
    missing = sorted({"denoiser", "descriptor"} - set(kwargs))
    if unknown or missing:
      raise ConfigError(f"model {name!r}: expected attributes denoiser and descriptor (model "
                        f"sections) and optionally dtype; unknown {unknown}, missing {missing}")
    return denoise_describe.build(kwargs["denoiser"], kwargs["descriptor"],
                                  kwargs.get("dtype"), get_model=get_model)
  fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
  unknown = sorted(set(kwargs) - set(fields))
  if unknown:
    raise ConfigError(f"model {name!r}: unknown attributes {unknown}; known: {fields}")
  return cls(**kwargs)


def count_params(variables: Mapping[str, Any]) -> dict[str, int]:
  """Counts values per collection of a variables tree (arrays or jax.ShapeDtypeStruct).

  Returns:
    {"params": trainable values, "batch_stats": batch-norm running
    statistics, "total": values of all collections}.
  """
  sizes = {col: sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))
           for col, tree in variables.items()}
  return {"params": sizes.get("params", 0), "batch_stats": sizes.get("batch_stats", 0),
          "total": sum(sizes.values())}
