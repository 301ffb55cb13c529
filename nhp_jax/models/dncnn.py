"""DnCNN residual denoiser (Zhang et al. 2017) and the seed's transfer variant.

DnCNN learns the noise, R(y) ~ n, and outputs y - R(y). The transfer variant
puts a frozen DnCNN pretrained on synthetic Gaussian noise in front of a small
trainable DnCNN that adapts it to the data's noise.
"""

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from nhp_jax.errors import CheckpointError, ConfigError

FROZEN = "pretrained"  # Submodule of DnCNNTransfer that is never trained.
TRAINABLE = "head"
# DnCNN's reference code uses epsilon 1e-4. Momentum 0.9 (not Keras' 0.99)
# lets the running statistics settle within the few hundred steps of a
# small run.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-4


class DnCNN(nn.Module):
  """DnCNN: conv3x3 + ReLU, (depth - 2) x [conv3x3 + BN + ReLU], conv3x3; input - residual.

  The first conv has a bias; the middle ones and the last have none (batch
  norm's offset or the residual form makes it redundant), as in DnCNN's
  reference implementation. He-normal init; zero padding (`SAME`) keeps
  every map 32x32.

  Parameters (features=64): depth 17: 556,096 trainable + 1,920 batch
  statistics; depth 5: 112,192 + 384.

  Shape:
    input: (B, H, W, 1) float32 noisy pixels 0..255.
    output: (B, H, W, 1) float32 denoised pixels, input minus the predicted
      noise, same units as the input (not clipped).

  Attributes:
    depth: number of conv layers, >= 2.
    features: channels of the hidden layers.
    input_scale: the network sees `input * input_scale`; its output is
      divided by it, so it still predicts pixel values (1/255 for weights
      trained on 0..1 images).
    dtype: computation dtype (e.g. jnp.bfloat16); batch-norm statistics are
      reduced in float32 and the output is float32.
    param_dtype: dtype of the parameters.
  """
  depth: int = 17
  features: int = 64
  input_scale: float = 1.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth < 2:
      raise ConfigError(f"DnCNN depth must be >= 2, found {self.depth}")

    def conv(features, name, bias):
      return nn.Conv(features, (3, 3), padding="SAME", use_bias=bias,
                     kernel_init=nn.initializers.he_normal(), dtype=self.dtype,
                     param_dtype=self.param_dtype, name=name)

    x = jnp.asarray(x, jnp.float32) * self.input_scale
    r = nn.relu(conv(self.features, "conv_0", True)(x))
    for i in range(1, self.depth - 1):
      r = conv(self.features, f"conv_{i}", False)(r)
      r = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                       epsilon=BN_EPSILON, use_fast_variance=False, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=f"bn_{i}")(r)
      r = nn.relu(r)
    r = conv(x.shape[-1], f"conv_{self.depth - 1}", False)(r)
    return (x - r.astype(jnp.float32)) / self.input_scale


class DnCNNTransfer(nn.Module):
  """A frozen pretrained DnCNN followed by a trainable shallow DnCNN (the seed's 4.1.2).

  `pretrained` always runs with batch norm in inference mode and its output
  goes through `jax.lax.stop_gradient`, so its gradients are exactly zero
  and its statistics never move; the optimiser must also leave its params
  alone (weight decay, momentum): mask them with `trainable_mask`. Load its
  weights with `graft_pretrained`.

  Parameters (features=64, depths 17 + 5): 668,288 params + 2,304 batch
  statistics = 670,592 values; trainable: the head's 112,192 (+ 384
  statistics); frozen: 556,096 (+ 1,920 statistics).

  Shape:
    input: (B, H, W, 1) float32 noisy pixels 0..255.
    output: (B, H, W, 1) float32 denoised pixels, same units (not clipped).

  Attributes:
    pretrained_depth: depth of the frozen DnCNN.
    head_depth: depth of the trainable DnCNN.
    features: channels of both.
    input_scale: passed to both DnCNNs (each maps pixels to pixels).
    dtype: computation dtype; the output is float32.
    param_dtype: dtype of the parameters.
  """
  pretrained_depth: int = 17
  head_depth: int = 5
  features: int = 64
  input_scale: float = 1.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(features=self.features, input_scale=self.input_scale, dtype=self.dtype,
              param_dtype=self.param_dtype)
    y = DnCNN(depth=self.pretrained_depth, name=FROZEN, **kw)(x, train=False)
    y = jax.lax.stop_gradient(y)
    return DnCNN(depth=self.head_depth, name=TRAINABLE, **kw)(y, train=train)


def trainable_mask(params: Mapping[str, Any]) -> Any:
  """Pytree of bools like `params` (a DnCNNTransfer tree): False under `pretrained`.

  For `optax.masked(tx, trainable_mask(params))` and the like.
  """
  return {k: jax.tree_util.tree_map(lambda _: k != FROZEN, v) for k, v in params.items()}


_GRAFTED = ("params", "batch_stats")


def _shapes(tree: Mapping[str, Any]) -> dict[tuple[str, ...], tuple[int, ...]]:
  return {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(tree).items()}


def graft_pretrained(transfer_variables: Mapping[str, Any],
                     dncnn_variables: Mapping[str, Any]) -> dict[str, Any]:
  """Returns `transfer_variables` with its `pretrained` part replaced by a DnCNN's variables.

  Args:
    transfer_variables: DnCNNTransfer variables {"params", "batch_stats"},
      e.g. from `init`.
    dncnn_variables: variables of a trained DnCNN of the same depth and
      features, {"params", "batch_stats"}.

  Returns:
    A new variables dict (inputs unchanged); grafted arrays take the dtype of
    the arrays they replace.

  Raises:
    CheckpointError: a collection is missing, or names or shapes differ; the
      message lists the first differences.
  """
  for col in _GRAFTED:
    if col not in transfer_variables or FROZEN not in transfer_variables[col]:
      raise CheckpointError(f"graft_pretrained: transfer variables need {col}/{FROZEN}, "
                            f"found collections {sorted(transfer_variables)}")
    if col not in dncnn_variables:
      raise CheckpointError(f"graft_pretrained: pretrained DnCNN variables need collection "
                            f"{col!r}, found {sorted(dncnn_variables)}")
  out = {col: dict(tree) for col, tree in transfer_variables.items()}
  for col in _GRAFTED:
    want = _shapes(transfer_variables[col][FROZEN])
    got = _shapes(dncnn_variables[col])
    if want != got:
      problems = [f"missing {'/'.join(k)}" for k in sorted(want.keys() - got.keys())]
      problems += [f"unexpected {'/'.join(k)}" for k in sorted(got.keys() - want.keys())]
      problems += [f"{'/'.join(k)}: expected shape {want[k]}, found {got[k]}"
                   for k in sorted(want.keys() & got.keys()) if want[k] != got[k]]
      raise CheckpointError(
          f"graft_pretrained: the DnCNN's {col} do not fit the transfer model's "
          f"{FROZEN!r} ({len(problems)} differences): {'; '.join(problems[:6])}")
    old = traverse_util.flatten_dict(transfer_variables[col][FROZEN])
    new = traverse_util.flatten_dict(dncnn_variables[col])
    out[col][FROZEN] = traverse_util.unflatten_dict(
        {k: jnp.asarray(new[k], dtype=old[k].dtype) for k in old})
  return out
