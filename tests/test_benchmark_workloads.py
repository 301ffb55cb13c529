"""The benchmark scripts' bookkeeping (not their timings): FLOP counts and process plans."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import train_throughput
from nhp_jax.models import get_model


def _conv_kernels(params) -> list[tuple[int, ...]]:
  return [tuple(v.shape) for path, v in jax.tree_util.tree_flatten_with_path(params)[0]
          if path[-1].key == "kernel"]


def test_dncnn17_flops_match_the_model():
  """2 x multiply-adds of every 3x3 conv of DnCNN-17, all at 32x32."""
  model = get_model("dncnn", depth=17, features=64)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
  kernels = _conv_kernels(shapes["params"])
  assert len(kernels) == 17
  assert train_throughput.DNCNN17_FORWARD_FLOPS == sum(2 * 32 * 32 * np.prod(k)
                                                       for k in kernels)


def test_l2net_flops_match_the_model():
  """Six 3x3 convs at output sides 32, 32, 16, 16, 8, 8, then the 8x8 head at one position."""
  model = get_model("l2net")
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
  kernels = _conv_kernels(shapes["params"])
  sides = [32, 32, 16, 16, 8, 8, 1]
  assert len(kernels) == len(sides)
  assert train_throughput.L2NET_FORWARD_FLOPS == sum(2 * s * s * np.prod(k)
                                                     for s, k in zip(sides, kernels))


def test_default_plan_gives_each_training_batch_a_process():
  args = train_throughput.parse_args(["--only=triplet,dncnn,infer", "--batch=50,256"])
  assert train_throughput._child_jobs(args, "default") == [
      ["--batch=50", "--only=triplet,dncnn"], ["--batch=256", "--only=triplet,dncnn"],
      ["--batch=", "--only=infer"]]
  assert train_throughput._child_jobs(args, "4") == [[]]
  assert "dncnn" not in train_throughput.parse_args([]).only.split(",")


def test_unknown_workload_is_refused(capsys):
  with pytest.raises(SystemExit):
    train_throughput.parse_args(["--only=triplet,dncn"])
  assert "unknown workloads ['dncn']" in capsys.readouterr().err
