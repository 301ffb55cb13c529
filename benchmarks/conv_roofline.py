"""What the device's convolutions allow a model: each of its layers alone, as one JSON line.

The bound that training throughput is measured against on an accelerator
(and, as a diagnostic, on a CPU). The layers of a model are found by running
it once under `flax.linen.intercept_methods`: every `nn.Conv`,
`fast_conv.Conv` and `l2net.FullFrameConv` call, with its input shape
(`common.model_layers`). Each layer is then timed alone, on the default
device, as XLA's plain convolution (`lax.conv_general_dilated`; the
full-frame head as the one matmul it is): forward, input gradient and
kernel gradient in one jitted call (`jax.vjp`), at each batch size
(`common.time_layer`). A model's bound at batch B (`common.model_bound`) is

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
import json
import platform
import time

import flax.linen as nn
import jax

from benchmarks import common
from nhp_jax.errors import ConfigError
from nhp_jax.models import get_model
from nhp_jax.train.state import DTYPES


def best_bound(model: nn.Module, batches: list[int], dtype=None, steps: int = 10,
               warmup: int = 2) -> dict:
  """`common.model_bound` at every batch of `batches`, and the best of them."""
  layers = common.model_layers(model)
  bounds = [common.model_bound(layers, b, dtype, steps, warmup) for b in batches]
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
