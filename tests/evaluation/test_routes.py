"""The device policy of the evaluation kernels: float32 screening on the default
device, exact float64 work on the CPU device, and the forced split route."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from nhp_jax.errors import ConfigError
from nhp_jax.evaluation import kernels
from tests.evaluation.routes import check_calls
from tests.reference import hpatches_reference as ref

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_route_policy(monkeypatch):
  monkeypatch.delenv(kernels.ROUTE_ENV, raising=False)
  assert kernels.route() == "auto"
  assert kernels.exact_device() == jax.local_devices(backend="cpu")[0]
  assert kernels.screen_device() == jax.local_devices()[0]
  with kernels.force_split_route():
    assert kernels.route() == "split"
    cpus = jax.local_devices(backend="cpu")
    assert kernels.screen_device() == cpus[min(1, len(cpus) - 1)]
    assert kernels.exact_device() == cpus[0]
    with kernels.use_route("auto"):
      assert kernels.route() == "auto"
    assert kernels.route() == "split"
  assert kernels.route() == "auto"
  monkeypatch.setenv(kernels.ROUTE_ENV, "split")
  assert kernels.route() == "split"
  monkeypatch.setenv(kernels.ROUTE_ENV, "tpu")
  with pytest.raises(ConfigError, match="NHP_EVAL_ROUTE: expected one of auto, split"):
    kernels.route()
  with pytest.raises(ConfigError, match="route"):
    with kernels.use_route("gpu"):
      pass


def test_screen_device_refuses_64_bit_arrays():
  for route in kernels.ROUTES:
    with kernels.use_route(route):
      with pytest.raises(TypeError, match="32-bit arrays only"):
        kernels.to_screen(np.zeros(3, np.float64))
      with pytest.raises(TypeError, match=r"nn_screen_block inputs.*int64"):
        kernels.run_screen("nn_screen_block", lambda x: x, np.zeros(3, np.int64))
      with pytest.raises(TypeError, match="outputs"):
        kernels.run_screen("widening", lambda x: np.asarray(x, np.float64),
                           np.zeros(3, np.float32))


def _wide_types(hlo: str) -> list[str]:
  """Element types wider than 32 bits among the tensors of a StableHLO module."""
  types = set(re.findall(r"tensor<(?:[0-9?]+x)*([a-z]+[0-9]+)>", hlo))
  return sorted(t for t in types if int(re.sub("[a-z]", "", t)) > 32)


@pytest.mark.parametrize("route", kernels.ROUTES)
def test_screening_kernel_holds_no_64_bit_value(route):
  """Inputs, outputs and every value inside the compiled screen are at most 32-bit.

  A TPU has no 64-bit bitcasts and emulates float64; the screen is all that
  runs there. Its lowered module is read for 64-bit types, lowered through
  `run_screen` inside x64 (the evaluation's setting; traced with x64 on, its
  index arithmetic would be int64).
  """
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(20, 8)).astype(np.float32)
  cands = rng.normal(size=(3, 21, 8)).astype(np.float32)
  with kernels.use_route(route), kernels.record_calls() as calls:
    index, dist = kernels.nearest_neighbours(queries, cands, "l2", block=16, chunk=8)
  check_calls(calls, route)
  screens = [c for c in calls if c.role == "screen"]
  assert [c.kernel for c in screens] == ["nn_screen_block"] * 2  # 20 queries, blocks of 16
  assert screens[0].in_dtypes == ("float32",) * 4 + ("int32",)
  assert screens[0].out_dtypes == ("int32", "bool")
  assert {c.kernel for c in calls if c.role == "exact"} >= {"nn_chosen_exact"}
  # The screen kernel's whole program, as run_screen traces it.
  args = (np.zeros((16, 8), np.float32), np.zeros((3, 24, 8), np.float32),
          np.zeros((3, 3, 8), np.float32), np.zeros((3,), np.float32), np.int32(3))
  with jax.enable_x64(True), kernels.use_route(route):
    hlo = kernels.run_screen("lower", lambda *a: kernels._nn_screen_block.lower(*a).as_text(),
                             *args)
  assert "dot_general" in hlo and "HIGHEST" in hlo
  assert not _wide_types(hlo), _wide_types(hlo)
  want_index, want_dist = _reference_nn(queries, cands)
  np.testing.assert_array_equal(index, want_index)
  np.testing.assert_array_equal(dist, want_dist)


def test_wide_type_scan_sees_64_bit_values():
  """The scan above is not blind: an exact kernel lowers with float64 and int64."""
  with jax.enable_x64(True):
    hlo = kernels._nn_chosen_exact.lower(
        np.zeros((4, 8), np.float32), np.zeros((2, 6, 8), np.float32),
        np.zeros((4, 3), np.int32), kernels.opaque_zero(), chunk=2).as_text()
  assert {"f64", "i64"} <= set(_wide_types(hlo))


def _reference_nn(queries, cands):
  dist = np.stack([ref.cdist(queries, c, "l2") for c in cands])
  index = np.argmin(dist, axis=2)
  return index, np.take_along_axis(dist, index[..., None], 2)[..., 0]


def test_split_route_nearest_neighbour_ties_go_to_the_lowest_index():
  """Exact ties within and across screen chunks and sets, through the split route:
  the screen cannot tell them apart, the CPU resolution keeps np.argmin's first."""
  rng = np.random.default_rng(11)
  cands = rng.integers(0, 3, (3, 40, 4)).astype(np.float32)
  cands[1, 30] = cands[1, 2]          # a copy in a later chunk (chunks of 8)
  cands[2, 7], cands[2, 8] = cands[2, 20], cands[2, 20]  # copies straddling a boundary
  queries = np.concatenate([cands[1, [2]], cands[2, [20]],
                            rng.integers(0, 3, (30, 4)).astype(np.float32)])
  queries[5:10] += 0.5                # equidistant from neighbouring integer points
  with kernels.force_split_route(), kernels.record_calls() as calls:
    index, dist = kernels.nearest_neighbours(queries, cands, "l2", block=16, chunk=8)
  check_calls(calls, "split")
  kinds = {c.kernel for c in calls}
  assert {"nn_screen_block", "nn_exact_block", "to_screen", "to_exact"} <= kinds
  want_index, want_dist = _reference_nn(queries, cands)
  np.testing.assert_array_equal(index, want_index)
  np.testing.assert_array_equal(dist, want_dist)
  assert index[1, 0] == 2 and index[2, 1] == 7


_TWO_DEVICES = r"""
import json, sys
import numpy as np
import jax
from nhp_jax.evaluation import kernels, matching, retrieval, verification
from tests.reference import hpatches_reference as ref

cpus = jax.local_devices(backend="cpu")
assert len(cpus) == 2, cpus
counts = (9, 1, 23)
rng = np.random.default_rng(0)
descs = ref.descriptor_set(counts, 4, rng, "ties")
vtask = ref.verification_task(counts, 30, rng)
rtask = ref.retrieval_task(counts, 6, 20, rng)
pools = (1, 5, 6, 30)


def flat(tree, path=""):
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{path}/{key}").items()}
  if isinstance(tree, list):
    return {k: v for i, sub in enumerate(tree) for k, v in flat(sub, f"{path}/{i}").items()}
  return {path: tree}


def same(got, want):
  got, want = flat(got), flat(want)
  return got.keys() == want.keys() and all(abs(got[k] - want[k]) <= 1e-9 for k in want)


out = {}
with kernels.force_split_route(), kernels.record_calls() as calls:
  assert kernels.screen_device() == cpus[1] and kernels.exact_device() == cpus[0]
  out["matching"] = same(matching.evaluate_matching(descs), ref.matching(descs))
  out["verification"] = same(verification.evaluate_verification(descs, vtask),
                             ref.verification(descs, vtask))
  got = retrieval.query_ap(descs, rtask, pools, "l2")
  out["retrieval"] = bool(np.allclose(got, ref.retrieval_query_aps(descs, rtask, pools),
                                      rtol=0, atol=1e-12))
  queries, cands = descs.descs[:, 0], descs.descs[:, 1:3].transpose(1, 0, 2)
  index, dist = kernels.nearest_neighbours(queries, cands)
  want = np.stack([ref.cdist(queries, c, "l2") for c in cands])
  out["nn"] = bool((index == want.argmin(axis=2)).all() and (dist == want.min(axis=2)).all())
out["calls"] = [[c.kernel, c.role, c.device.id, sorted(d.id for d in c.out_devices),
                 list(c.in_dtypes + c.out_dtypes)] for c in calls]
print(json.dumps(out))
"""


def test_split_route_keeps_exact_work_on_the_cpu_device():
  """Two CPU devices: the screen runs on the second, everything else on the first.

  Exact kernels running anywhere but `exact_device()` (device 0), or a
  64-bit array reaching the screen device (device 1), fail this test; the
  three tasks still equal the reference, ties included.
  """
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  env.pop(kernels.ROUTE_ENV, None)
  proc = subprocess.run([sys.executable, "-c", _TWO_DEVICES], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["matching"] and out["verification"] and out["retrieval"] and out["nn"]
  calls = out["calls"]
  screens = [c for c in calls if c[1] == "screen" or c[0] == "to_screen"]
  others = [c for c in calls if c not in screens]
  assert screens and others
  for kernel, role, device, out_devices, dtypes in screens:
    assert device == 1 and out_devices == [1], (kernel, device)
    assert all(np.dtype(d).itemsize <= 4 for d in dtypes), (kernel, dtypes)
  for kernel, role, device, out_devices, dtypes in others:
    assert device == 0 and out_devices == [0], (kernel, device)
  kinds = {c[0] for c in others}
  assert {"nn_chosen_exact", "ap_rows", "paired_block", "verification_ap_auc",
          "retrieval_screen_block", "retrieval_ap_from_counts"} <= kinds, kinds
  assert any("float64" in c[4] for c in others)
