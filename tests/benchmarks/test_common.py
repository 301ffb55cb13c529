"""benchmarks/common.py: FLOP counts from the models, timing, cores; and the benchmarks' layering."""

import ast
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import common
from nhp_jax.models import get_model
from nhp_jax.models import l2net

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = os.path.join(ROOT, "benchmarks")


def _conv_flops(out_side: int, k: int, c_in: int, c_out: int) -> int:
  """2 x multiply-adds of a k x k conv with a square output, per example."""
  return 2 * out_side * out_side * k * k * c_in * c_out


def test_l2net_forward_flops_equal_a_hand_count_of_its_layers():
  """Six 3x3 SAME convs from a 32x32x1 patch (strides 1, 1, 2, 1, 2, 1), then the dense head."""
  flops, side, c_in = 0, 32, 1
  for c_out, stride in l2net.LAYERS:
    side = -(-side // stride)
    flops += _conv_flops(side, 3, c_in, c_out)
    c_in = c_out
  assert side == l2net.HEAD_SIZE == 8
  flops += 2 * side * side * c_in * l2net.DESCRIPTOR_DIM   # dense: 8 * 8 * 128 -> 128
  assert flops == 78_184_448                               # the README's "L2-Net 78 MFLOP"
  assert common.forward_flops(get_model("l2net")) == flops
  # The parameters agree with the shapes counted: one kernel per counted layer.
  params = jax.eval_shape(get_model("l2net").init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32))["params"]
  layers = common.model_layers(get_model("l2net"))
  assert [layer.kernel for layer in layers] == [
      tuple(params[layer.name]["kernel"].shape) for layer in layers]


def test_a_strided_valid_conv_and_a_full_frame_head_are_counted_from_their_shapes():
  class Toy(nn.Module):

    @nn.compact
    def __call__(self, x):
      x = nn.Conv(8, (3, 3), strides=2, padding="VALID")(x)        # 9x9x2 -> 4x4x8
      x = nn.Conv(4, (1, 1), padding="SAME")(x)                    # 4x4x8 -> 4x4x4
      return l2net.FullFrameConv(5, (4, 4), name="head")(x)        # 4*4*4 -> 5

  layers = common.model_layers(Toy(), input_shape=(9, 9, 2))
  assert [layer.output_side for layer in layers] == [(4, 4), (4, 4), (1, 1)]
  assert [layer.full_frame for layer in layers] == [False, False, True]
  assert common.forward_flops(Toy(), input_shape=(9, 9, 2)) == (
      _conv_flops(4, 3, 2, 8) + _conv_flops(4, 1, 8, 4) + 2 * 4 * 4 * 4 * 5)


def test_counting_flops_starts_no_jax_backend():
  """Safe before `platform.setup()` and in a process that must not take the accelerator."""
  code = ("from benchmarks import common; from nhp_jax.models import get_model; "
          "from nhp_jax import host_devices; "
          "n = common.forward_flops(get_model('unet_shallow')); "
          "print(n, host_devices.backend_started())")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("NHP_CONV_FORMS", None)
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.PIPE, text=True).stdout.split()
  assert out == [str(common.forward_flops(get_model("unet_shallow"))), "False"]


def test_timed_and_train_factor():
  calls = []
  times = common.timed(lambda: calls.append(1), warmup=2, steps=3)
  assert len(calls) == 5 and len(times) == 3 and min(times) >= 0
  assert common.TRAIN_FACTOR == 3


def _imported_modules(path: str) -> set[str]:
  """Every module an `import` / `from ... import` in the file names (relative ones with dots)."""
  names = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = "." * node.level + (node.module or "")
      names.add(base)
      names.update(f"{base}.{alias.name}" if node.module or node.level else alias.name
                   for alias in node.names)
  return names


def test_no_benchmark_imports_another_but_common():
  scripts = {name[:-3] for name in os.listdir(BENCHMARKS) if name.endswith(".py")}
  assert "common" in scripts and len(scripts) > 2
  for script in sorted(scripts):
    imported = _imported_modules(os.path.join(BENCHMARKS, f"{script}.py"))
    assert not any(name.startswith(".") for name in imported), script
    others = {name for name in imported if name.split(".")[0] == "benchmarks"}
    assert others <= {"benchmarks", "benchmarks.common"}, (script, others)
    if script == "common":
      assert not others, "common imports no benchmark"
