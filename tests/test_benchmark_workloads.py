"""The benchmark scripts' bookkeeping (not their timings): FLOP counts and process plans."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import common
from benchmarks import compare_torch
from benchmarks import conv_roofline
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
  assert common.forward_flops(model) == sum(2 * 32 * 32 * np.prod(k) for k in kernels)


def test_l2net_flops_match_the_model():
  """Six 3x3 convs at output sides 32, 32, 16, 16, 8, 8, then the 8x8 head at one position."""
  model = get_model("l2net")
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
  kernels = _conv_kernels(shapes["params"])
  sides = [32, 32, 16, 16, 8, 8, 1]
  assert len(kernels) == len(sides)
  assert common.forward_flops(model) == sum(2 * s * s * np.prod(k)
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


def test_roofline_finds_every_conv_of_the_models():
  """The layers conv_roofline times are the models' own, with the FLOP of their shapes."""
  l2net_layers = common.model_layers(get_model("l2net"))
  assert [layer.name for layer in l2net_layers] == [f"conv_{i}" for i in range(6)] + ["head"]
  assert [layer.strides for layer in l2net_layers] == [(1, 1), (1, 1), (2, 2), (1, 1), (2, 2),
                                                       (1, 1), (1, 1)]
  assert [layer.output_side for layer in l2net_layers] == [(32, 32), (32, 32), (16, 16),
                                                           (16, 16), (8, 8), (8, 8), (1, 1)]
  assert [layer.full_frame for layer in l2net_layers] == [False] * 6 + [True]
  assert sum(layer.forward_flops for layer in l2net_layers) == 2 * (
      1024 * 9 * 1 * 32 + 1024 * 9 * 32 * 32 + 256 * 9 * 32 * 64 + 256 * 9 * 64 * 64
      + 64 * 9 * 64 * 128 + 64 * 9 * 128 * 128 + 8192 * 128)
  unet_layers = common.model_layers(get_model("unet_shallow"))
  assert [layer.kernel for layer in unet_layers] == [(3, 3, 1, 16), (3, 3, 16, 32), (2, 2, 32, 64),
                                                     (3, 3, 80, 64), (3, 3, 64, 1)]
  # 3x3 1->16 at 32x32, 3x3 16->32 at 16x16, 2x2 32->64 at 32x32, 3x3 80->64 and 3x3 64->1
  # at 32x32.
  assert sum(layer.forward_flops for layer in unet_layers) == 2 * (
      1024 * 9 * 1 * 16 + 256 * 9 * 16 * 32 + 1024 * 4 * 32 * 64 + 1024 * 9 * 80 * 64
      + 1024 * 9 * 64 * 1)
  dncnn_layers = common.model_layers(get_model("dncnn", depth=17, features=64))
  assert sum(layer.forward_flops for layer in dncnn_layers) == (
      2 * 1024 * 9 * (1 * 64 + 15 * 64 * 64 + 64 * 1))


def test_roofline_layers_compute_what_the_models_convs_compute():
  """Each timed layer (plain conv, or the head's matmul) equals nn.Conv with its settings."""
  rng = np.random.default_rng(0)
  for layer in common.model_layers(get_model("l2net")):
    x = jnp.asarray(rng.normal(size=(2, *layer.input_shape)), jnp.float32)
    conv = nn.Conv(layer.kernel[-1], layer.kernel[:2], strides=layer.strides,
                   padding=layer.padding, use_bias=False)
    variables = conv.init(jax.random.PRNGKey(0), x)
    want = conv.apply(variables, x).reshape(2, -1)
    got = common._layer_fn(layer)(x, variables["params"]["kernel"]).reshape(2, -1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=layer.name)


def test_roofline_bound_is_the_batch_over_the_summed_layer_times(monkeypatch):
  layers = common.model_layers(get_model("unet_shallow"))
  times = {layer.name: 0.001 * (i + 1) for i, layer in enumerate(layers)}  # 1..5 ms
  monkeypatch.setattr(common, "time_layer", lambda layer, batch, *a: times[layer.name])
  bound = common.model_bound(layers, 30)
  assert bound["examples_per_s"] == pytest.approx(30 / 0.015, rel=1e-3)
  assert bound["gflops"] == pytest.approx(
      30 * 3 * common.forward_flops(get_model("unet_shallow")) / 0.015 / 1e9, rel=1e-3)
  assert [entry["ms"] for entry in bound["layers"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
  monkeypatch.setattr(common, "time_layer",
                      lambda layer, batch, *a: times[layer.name] * (1 if batch == 8 else 3))
  best = conv_roofline.best_bound(get_model("unet_shallow"), [4, 8])
  assert best["best_batch"] == 8
  assert best["best_examples_per_s"] == pytest.approx(8 / 0.015, rel=1e-3)


def test_roofline_times_a_layer_and_refuses_bad_batches(capsys):
  layer = common.model_layers(get_model("l2net"))[2]
  assert common.time_layer(layer, 2, steps=1, warmup=0) > 0
  with pytest.raises(SystemExit):
    conv_roofline.parse_args(["--batch=50,x"])
  assert "comma-separated integers" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    conv_roofline.parse_args(["--models=l2net,l2nt"])
  assert "'l2nt' cannot be built" in capsys.readouterr().err
  assert conv_roofline.parse_args(["--models=l2net,dncnn"]).models == ["l2net", "dncnn"]


def test_children_get_the_parents_switches():
  """Flags reach the per-device-count children as flags (not '--roofline=True')."""
  args = train_throughput.parse_args(["--roofline", "--batch=64", "--only=dncnn"])
  forwarded = train_throughput._forwarded(args)
  assert "--roofline" in forwarded and "--batch=64" in forwarded
  assert not any(f.startswith("--devices") or f.startswith("--child") for f in forwarded)
  assert vars(train_throughput.parse_args(forwarded)) == vars(args)
  assert "--roofline" not in train_throughput._forwarded(train_throughput.parse_args([]))


def test_compare_torch_runs_both_sides_on_the_same_workloads():
  args = compare_torch.parse_args(["--torch_device=cuda", "--bf16", "--batch=64,1024",
                                   "--torch_python=python3"])
  torch_cmd, ours_cmd = compare_torch._commands(args)
  assert torch_cmd[torch_cmd.index("--device") + 1] == "cuda"
  assert torch_cmd[torch_cmd.index("--batch") + 1] == "64,1024" and "--bf16" in torch_cmd
  assert "--batch=64,1024" in ours_cmd and "--dtype=bfloat16" in ours_cmd
  torch_cmd, ours_cmd = compare_torch._commands(compare_torch.parse_args([]))
  assert torch_cmd[torch_cmd.index("--device") + 1] == "cpu" and "--bf16" not in torch_cmd
  assert "--dtype=float32" in ours_cmd


def test_compare_torch_without_pytorch_says_skipped(tmp_path, capsys):
  compare_torch.main([f"--torch_python={tmp_path / 'no-python'}"])
  out = capsys.readouterr()
  assert json.loads(out.out.strip().splitlines()[-1]) == {"script": "compare_torch",
                                                           "skipped": True}
  assert "not found" in out.err
