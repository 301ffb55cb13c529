"""What the benchmark scripts share: timing, FLOP counts from the models, the core count.

The one module a benchmark may import from `benchmarks/` (no script imports
another script):

  * `timed`: per-call wall times of a blocking function;
  * `model_layers` / `forward_flops`: the convolutions (and L2-Net's
    full-frame head, a dense layer) a flax model runs, found by running it
    once, abstractly, under `flax.linen.intercept_methods`: every `nn.Conv`,
    `fast_conv.Conv` and `l2net.FullFrameConv` call with its input shape.
    FLOP are 2 x multiply-adds; a train step counts TRAIN_FACTOR x forward;
  * `time_layer` / `model_bound`: each of those layers timed alone as XLA's
    plain convolution (forward, input and kernel gradient), and the rate
    they allow together: the roofline of `conv_roofline` and of
    `train_throughput --roofline`;

Importing this module imports nothing from JAX (train_throughput imports it
before `platform.setup()`), and counting FLOP starts no JAX backend: the
model is traced with an abstract input and the plain convolution forms.
"""

import dataclasses
import math
import statistics
import time

TRAIN_FACTOR = 3  # forward + input gradient + kernel gradient
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def timed(fn, warmup: int, steps: int) -> list[float]:
  """Calls fn() (which blocks until its result is ready) warmup + steps times."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


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
    return 2 * oh * ow * math.prod(self.kernel)


def _pair(value) -> tuple[int, int]:
  if value is None:
    return (1, 1)
  if isinstance(value, int):
    return (value, value)
  return tuple(int(v) for v in value)


def model_layers(model, input_shape=(32, 32, 1)) -> list[Layer]:
  """The convolutions flax `model` runs on one (1, *input_shape) input, in call order.

  Raises:
    ValueError: a conv with a padding other than "SAME" or "VALID".
  """
  # pylint: disable=import-outside-toplevel  (no JAX import with this module)
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from nhp_jax import platform
  from nhp_jax.models import fast_conv
  from nhp_jax.models import l2net

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

  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  # The plain forms: the same modules and shapes, and choosing them asks no backend.
  with platform.conv_forms("plain"), nn.intercept_methods(record):
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
  return layers


def forward_flops(model, input_shape=(32, 32, 1)) -> int:
  """2 x multiply-adds of `model`'s convolutions and full-frame head, per example."""
  return sum(layer.forward_flops for layer in model_layers(model, input_shape))


def _layer_fn(layer: Layer):
  """(x, kernel) -> output of the layer alone, as XLA's plain conv or one matmul."""
  import jax  # pylint: disable=import-outside-toplevel
  if layer.full_frame:
    return lambda x, k: x.reshape(x.shape[0], -1) @ k.reshape(-1, k.shape[-1])
  return lambda x, k: jax.lax.conv_general_dilated(x, k, layer.strides, layer.padding,
                                                   dimension_numbers=_DIMENSIONS)


def time_layer(layer: Layer, batch: int, dtype=None, steps: int = 10,
               warmup: int = 2) -> float:
  """Median seconds of one forward + input gradient + kernel gradient of `layer` at `batch`.

  `dtype`: of the input and kernel (None: float32).
  """
  # pylint: disable=import-outside-toplevel  (no JAX import with this module)
  import jax
  import jax.numpy as jnp
  import numpy as np

  dtype = jnp.float32 if dtype is None else dtype
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
  return statistics.median(timed(
      lambda: jax.block_until_ready(train(x, k, cotangent)), warmup + 1, steps))


def model_bound(layers: list[Layer], batch: int, dtype=None, steps: int = 10,
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
