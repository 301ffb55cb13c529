"""What the device's convolutions allow a model: each of its layers alone, as one JSON line.

The bound that training throughput is measured against on an accelerator
(and, as a diagnostic, on a CPU). The layers of a model are found by running
it once under `flax.linen.intercept_methods`: every `nn.Conv`,
`fast_conv.Conv` and `l2net.FullFrameConv` call, with its input shape. Each
layer is then timed alone, on the default device, as XLA's plain
convolution (`lax.conv_general_dilated`; the full-frame head as the one
matmul it is): forward, input gradient and kernel gradient in one jitted
call (`jax.vjp`), at each batch size. A model's bound at batch B is

    bound(B) = B / sum over layers of the layer's median time at B

in examples/s (patches per pass for L2-Net, pairs for the UNets): the rate
a train step would reach if it did nothing but its convolutions, each as
fast as it runs alone. Biases, batch norm, activations, the loss and the
optimiser are left out, so a step can only approach it; a step's fraction
of the bound at its best batch is the figure `train_throughput --roofline`
reports. FLOP are 2 x multiply-adds (x 3 for the two gradients).

  python -m benchmarks.conv_roofline                          # l2net, unet_shallow
  python -m benchmarks.conv_roofline --batch=256,1024,4096 --dtype=bfloat16
"""

import argparse
import dataclasses
import json
import platform
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import train_throughput
from nhp_jax.errors import ConfigError
from nhp_jax.models import fast_conv
from nhp_jax.models import get_model
from nhp_jax.models import l2net
from nhp_jax.train.state import DTYPES

TRAIN_FACTOR = train_throughput.TRAIN_FACTOR  # forward + input gradient + kernel gradient
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


@dataclasses.dataclass(frozen=True)
class Layer:
  """One convolution of a model, per example.

  Attributes:
    name: the module's path in the model, e.g. "conv_2".
    input_shape: (H, W, C_in) of one example.
    kernel: (kh, kw, C_in, C_out).
    strides: (sh, sw).
    padding: "SAME" (TensorFlow's) or "VALID".
    full_frame: computed as one matmul on the flattened input (kernel == input side, VALID).
  """
  name: str
  input_shape: tuple[int, int, int]
  kernel: tuple[int, int, int, int]
  strides: tuple[int, int]
  padding: str
  full_frame: bool = False

  @property
  def output_side(self) -> tuple[int, int]:
    """(H', W') of the output."""
    (h, w, _), (kh, kw, _, _), (sh, sw) = self.input_shape, self.kernel, self.strides
    if self.padding == "SAME":
      return (-(-h // sh), -(-w // sw))
    return ((h - kh) // sh + 1, (w - kw) // sw + 1)

  @property
  def forward_flops(self) -> int:
    """2 x multiply-adds of the forward pass, per example."""
    oh, ow = self.output_side
    return 2 * oh * ow * int(np.prod(self.kernel))


def _pair(value) -> tuple[int, int]:
  if value is None:
    return (1, 1)
  if isinstance(value, int):
    return (value, value)
  return tuple(int(v) for v in value)


def model_layers(model: nn.Module, input_shape=(32, 32, 1)) -> list[Layer]:
  """The convolutions `model` runs on one (1, *input_shape) input, in call order.

  Raises:
    ValueError: a conv with a padding other than "SAME" or "VALID".
  """
  layers = []
  conv_types = (nn.Conv, fast_conv.Conv, l2net.FullFrameConv)

  def record(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__" and isinstance(module, conv_types):
      x = args[0]
      full_frame = isinstance(module, l2net.FullFrameConv)
      padding = "VALID" if full_frame else module.padding
      if padding not in ("SAME", "VALID"):
        raise ValueError(f"{module.name}: padding {padding!r} is not 'SAME' or 'VALID'")
      kh, kw = _pair(module.kernel_size)
      layers.append(Layer(
          name="/".join(module.path) or module.name, input_shape=tuple(x.shape[1:]),
          kernel=(kh, kw, x.shape[-1], module.features),
          strides=_pair(getattr(module, "strides", 1)), padding=padding,
          full_frame=full_frame))
    return next_fun(*args, **kwargs)

  x = jnp.zeros((1, *input_shape), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  return layers


def _layer_fn(layer: Layer):
  """(x, kernel) -> output of the layer alone, as XLA's plain conv or one matmul."""
  if layer.full_frame:
    return lambda x, k: x.reshape(x.shape[0], -1) @ k.reshape(-1, k.shape[-1])
  return lambda x, k: jax.lax.conv_general_dilated(x, k, layer.strides, layer.padding,
                                                   dimension_numbers=_DIMENSIONS)


def time_layer(layer: Layer, batch: int, dtype=jnp.float32, steps: int = 10,
               warmup: int = 2) -> float:
  """Median seconds of one forward + input gradient + kernel gradient of `layer` at `batch`."""
  fn = _layer_fn(layer)

  @jax.jit
  def train(x, k, cotangent):
    y, vjp = jax.vjp(fn, x, k)
    return (y, *vjp(cotangent))

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, *layer.input_shape)), dtype)
  k = jnp.asarray(rng.normal(size=layer.kernel) * 0.1, dtype)
  cotangent = jnp.ones(jax.eval_shape(fn, x, k).shape, dtype)
  # One more untimed call than `warmup`: the first compiles.
  return statistics.median(train_throughput.timed(
      lambda: jax.block_until_ready(train(x, k, cotangent)), warmup + 1, steps))


def model_bound(layers: list[Layer], batch: int, dtype=jnp.float32, steps: int = 10,
                warmup: int = 2) -> dict:
  """The examples/s and FLOP/s a model's convolutions allow at `batch`, with each layer's share."""
  times = [time_layer(layer, batch, dtype, steps, warmup) for layer in layers]
  flops = TRAIN_FACTOR * sum(layer.forward_flops for layer in layers)
  total = sum(times)
  return {
      "batch": batch,
      "examples_per_s": round(batch / total, 1),
      "gflops": round(batch * flops / total / 1e9, 1),
      "layers": [{"name": layer.name, "ms": round(1e3 * t, 3),
                  "gflops": round(batch * TRAIN_FACTOR * layer.forward_flops / t / 1e9, 1)}
                 for layer, t in zip(layers, times)],
  }


def best_bound(model: nn.Module, batches: list[int], dtype=jnp.float32, steps: int = 10,
               warmup: int = 2) -> dict:
  """`model_bound` at every batch of `batches`, and the best of them."""
  layers = model_layers(model)
  bounds = [model_bound(layers, b, dtype, steps, warmup) for b in batches]
  best = max(bounds, key=lambda r: r["examples_per_s"])
  return {"forward_flops_per_example": sum(layer.forward_flops for layer in layers),
          "best_batch": best["batch"], "best_examples_per_s": best["examples_per_s"],
          "best_gflops": best["gflops"], "by_batch": bounds}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default="l2net,unet_shallow",
                 help="comma-separated registered model names (default settings)")
  p.add_argument("--batch", default="50,256", help="comma-separated batch sizes")
  p.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
  p.add_argument("--steps", type=int, default=10, help="timed calls per layer and batch")
  p.add_argument("--warmup", type=int, default=2)
  args = p.parse_args(argv)
  try:
    args.batch = [int(b) for b in args.batch.split(",") if b]
  except ValueError:
    p.error(f"--batch: expected comma-separated integers, got {args.batch!r}")
  if not args.batch or min(args.batch) < 1:
    p.error(f"--batch: expected positive batch sizes, got {args.batch}")
  args.models = [name for name in args.models.split(",") if name]
  for name in args.models:
    try:
      get_model(name)
    except (ConfigError, TypeError) as e:
      p.error(f"--models: {name!r} cannot be built with default settings ({e})")
  return args


def main(argv=None) -> None:
  args = parse_args(argv)
  dtype = DTYPES[args.dtype]
  kwargs = {} if args.dtype == "float32" else {"dtype": dtype}
  results = {name: best_bound(get_model(name, **kwargs), args.batch, dtype, args.steps,
                              args.warmup)
             for name in args.models}
  device = jax.devices()[0]
  print(json.dumps({
      "script": "conv_roofline",
      "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "python": platform.python_version(), "jax": jax.__version__,
      "backend": jax.default_backend(), "device": device.device_kind,
      "settings": {"dtype": args.dtype, "batch": args.batch, "steps": args.steps},
      "models": results,
  }))


if __name__ == "__main__":
  main()
