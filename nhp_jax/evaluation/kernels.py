"""Kernels of the HPatches protocol: distances, nearest neighbours, AP, ROC AUC.

The numbers reproduce the official benchmark's Python code (its CPU path,
`python/utils/tasks.py` and `metrics.py` of hpatches-benchmark), including
its float precision, because ties and near-ties decide rankings:

* Verification distances are float32. The official code calls
  `scipy.spatial.distance.euclidean` on two float32 rows: a float32
  difference whose BLAS `snrm2` accumulates in double and rounds the root to
  float32. Here: float32 difference, float64 sum of squares, float64 root,
  rounded to float32. For L1 (`cityblock`) it is `abs(u - v).sum()` in
  float32, summed in numpy's pairwise order, which is reproduced exactly.
* Matching and retrieval distances are float64. `scipy.spatial.distance.cdist`
  casts both sets to float64 and sums (a_k - b_k)^2 (or |a_k - b_k|) over k
  in order. Here the same sequential sum, with every term rounded before it
  is added (no fused multiply-add, see `exact_sums`), so values are
  identical bit for bit.
  The quadratic parts are first screened with Gram-matrix distances whose
  rounding error is bounded (`gram_error_bound`); whatever that bound leaves
  undecided is recomputed exactly, so screening never changes a result.
* Ranking is by ascending distance (descending score = -distance), stable:
  on equal distances the earlier list entry ranks first. AP is the trapezoid
  area of precision over recall, starting at (recall 0, precision 1), with
  precision max(tp, 1e-10) / max(tp + fp, 1e-10); entries at distance +inf
  are never retrieved but still count as positives. ROC AUC is the
  trapezoid area of the true-positive rate over the false-positive rate.

Kernels run blocked: fixed-size blocks, padded, so each compiles once per
evaluation and nothing quadratic in the whole test set is held.

Devices (see "devices" below): exact work, everything float64 or int64
(`jax.enable_x64`, entered here), runs on the host CPU device on every
backend, because XLA:TPU has no 64-bit bitcasts and emulates float64 and
GPUs run it slowly. Only the float32 Gram screen of the L2 nearest-neighbour
search (`_nn_screen_block`: float32 and int32 only, its matmul at
`Precision.HIGHEST`) runs on the default device, the accelerator where
there is one; what its error bound leaves undecided is resolved exactly on
the CPU device. On a CPU backend both are the same device and nothing
leaves it. `force_split_route()` (or NHP_EVAL_ROUTE=split) takes the
accelerator route on a CPU (tests).
"""

import contextlib
import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterator

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from nhp_jax.errors import ConfigError, DescriptorError

F32_EPS = 2.0 ** -24  # unit roundoff of float32
F64_EPS = 2.0 ** -53  # unit roundoff of float64
TINY = 1e-10  # the official code's guard in precision and recall

PAIR_BLOCK = 16384     # verification pairs per kernel call (temporaries stay small)
NN_BLOCK = 128         # matching reference rows per screening call
SCREEN_CHUNK = 512     # matching candidates per screening step
EXACT_BLOCK = 16       # rows per exact (fallback) nearest-neighbour call
EXACT_CHUNK = 256      # candidates per exact step


# ---------------------------------------------------------------- devices
#
# Policy, in one place:
#   * exact device: the first local CPU device, on every backend (JAX starts
#     its CPU backend in every process, next to any accelerator). Every
#     kernel with a float64 or int64 value runs there, its inputs committed
#     to it with `jax.device_put` so that the jitted computation follows
#     them (`run_exact`; `jax.jit(device=)` is deprecated).
#   * screen device: the first local device of the default backend (the
#     accelerator, else that same CPU device). Only float32 screening runs
#     there (`run_screen`): its inputs and outputs are checked to be at most
#     32-bit, and it is traced with x64 off, so no 64-bit value exists in it.
#   * Between them arrays move with `to_screen` / `to_exact`. Where both are
#     one device (a CPU backend) `jax.device_put` is a no-op: same code, no copy.
# Route "split" (`force_split_route()`, or $NHP_EVAL_ROUTE=split) puts the
# screen on a second CPU device if the process has one (else the same one)
# and sends every transfer through host memory, as from an accelerator, so
# CPU tests take the accelerator route. `record_calls()` lists what ran where.

ROUTE_ENV = "NHP_EVAL_ROUTE"
ROUTES = ("auto", "split")
_forced_route: list[str] = []           # innermost `use_route` last
_recorders: list[list["KernelCall"]] = []


@dataclasses.dataclass(frozen=True)
class KernelCall:
  """One kernel launch or transfer, as `record_calls` lists it.

  Attributes:
    kernel: the kernel's name, or "to_screen" / "to_exact" for a transfer.
    role: "screen", "exact" or "transfer".
    device: the device it was sent to.
    in_dtypes: dtype names of its array inputs.
    out_dtypes: dtype names of its array outputs.
    out_devices: every device holding one of its outputs.
  """
  kernel: str
  role: str
  device: jax.Device
  in_dtypes: tuple[str, ...]
  out_dtypes: tuple[str, ...]
  out_devices: frozenset


def route() -> str:
  """The active route: "auto", or "split" when forced (`use_route`, $NHP_EVAL_ROUTE)."""
  name = _forced_route[-1] if _forced_route else os.environ.get(ROUTE_ENV, "") or "auto"
  if name not in ROUTES:
    raise ConfigError(f"{ROUTE_ENV}: expected one of {', '.join(ROUTES)}, found {name!r}")
  return name


@contextlib.contextmanager
def use_route(name: str) -> Iterator[None]:
  """Evaluates with route `name` ("auto" or "split") inside the block."""
  if name not in ROUTES:
    raise ConfigError(f"route: expected one of {', '.join(ROUTES)}, found {name!r}")
  _forced_route.append(name)
  try:
    yield
  finally:
    _forced_route.pop()


def force_split_route() -> contextlib.AbstractContextManager:
  """The accelerator route on a CPU: screen and exact work on two CPU devices if
  the process has two (XLA_FLAGS=--xla_force_host_platform_device_count=2),
  every transfer through host memory."""
  return use_route("split")


@contextlib.contextmanager
def record_calls() -> Iterator[list[KernelCall]]:
  """Yields a list that collects a `KernelCall` per kernel launch and transfer inside the block."""
  calls: list[KernelCall] = []
  _recorders.append(calls)
  try:
    yield calls
  finally:
    _recorders.remove(calls)


def _cpu_devices() -> list:
  try:
    return jax.local_devices(backend="cpu")
  except RuntimeError as e:  # JAX_PLATFORMS without "cpu"
    raise ConfigError("evaluation: its exact float64 work needs JAX's CPU backend; "
                      f"add 'cpu' to JAX_PLATFORMS ({e})") from e


def exact_device() -> jax.Device:
  """Where float64/int64 work runs: the first local CPU device, on every backend."""
  return _cpu_devices()[0]


def screen_device() -> jax.Device:
  """Where the float32 screen runs: the default backend's first local device
  (route "split": the second CPU device if there is one, else the first)."""
  if route() == "split":
    cpus = _cpu_devices()
    return cpus[1] if len(cpus) > 1 else cpus[0]
  return jax.local_devices()[0]


def _is_array(x) -> bool:
  return isinstance(x, (np.ndarray, np.generic, jax.Array))


def _dtype_names(xs) -> tuple[str, ...]:
  return tuple(str(x.dtype) for x in xs if _is_array(x))


def _record(kernel: str, role: str, device, args, out) -> None:
  if not _recorders:
    return
  outs = [x for x in jax.tree_util.tree_leaves(out) if isinstance(x, jax.Array)]
  call = KernelCall(kernel, role, device, _dtype_names(args), _dtype_names(outs),
                    frozenset(d for x in outs for d in x.devices()))
  for calls in _recorders:
    calls.append(call)


def _check_32_bit(what: str, xs) -> None:
  wide = [str(x.dtype) for x in xs if _is_array(x) and np.dtype(x.dtype).itemsize > 4]
  if wide:
    raise TypeError(f"{what}: the screen device takes 32-bit arrays only, found {wide}")


def to_screen(x: np.ndarray | jax.Array) -> jax.Array:
  """`x` committed to `screen_device()`; TypeError if it is 64-bit."""
  _check_32_bit("to_screen", [x])
  device = screen_device()
  out = jax.device_put(np.asarray(x) if route() == "split" else x, device)
  _record("to_screen", "transfer", device, [x], out)
  return out


def to_exact(x: np.ndarray | jax.Array) -> jax.Array:
  """`x` committed to `exact_device()` (route "split": by way of host memory)."""
  device = exact_device()
  out = jax.device_put(np.asarray(x) if route() == "split" else x, device)
  _record("to_exact", "transfer", device, [x], out)
  return out


def run_screen(name: str, kernel: Callable, *args, **static):
  """Runs float32 `kernel(*args, **static)` on `screen_device()`, traced with x64 off.

  Array arguments must be at most 32-bit (TypeError otherwise, as for its
  outputs) and are committed to the screen device; Python scalars and
  `static` pass as they are.
  """
  _check_32_bit(f"{name} inputs", args)
  device = screen_device()
  placed = [jax.device_put(a, device) if _is_array(a) else a for a in args]
  with jax.enable_x64(False):
    out = kernel(*placed, **static)
  _check_32_bit(f"{name} outputs", jax.tree_util.tree_leaves(out))
  _record(name, "screen", device, placed, out)
  return out


def run_exact(name: str, kernel: Callable, *args, **static):
  """Runs `kernel(*args, **static)` on `exact_device()` (the CPU).

  Array arguments are committed to the exact device first (a no-op for
  those already there), so the computation and its outputs are there.
  """
  device = exact_device()
  placed = [jax.device_put(a, device) if _is_array(a) else a for a in args]
  out = kernel(*placed, **static)
  _record(name, "exact", device, placed, out)
  return out


def _l2_term(d: jax.Array) -> jax.Array:
  return d * d


def _l1_term(d: jax.Array) -> jax.Array:
  return jnp.abs(d)


# Per-coordinate term of each distance; the distance is the root of the sum
# for l2 and the sum itself for l1.
METRICS: dict[str, Callable[[jax.Array], jax.Array]] = {"l2": _l2_term, "l1": _l1_term}


def check_metric(metric: str) -> str:
  """Returns `metric` if known, else raises ConfigError listing the known ones."""
  if metric not in METRICS:
    raise ConfigError(f"metric: expected one of {', '.join(sorted(METRICS))}, found {metric!r}")
  return metric


def x64(fn):
  """Runs `fn` with float64 enabled: the official distances are float64."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.enable_x64(True):
      return fn(*args, **kwargs)
  return wrapped


def check_finite(descs: np.ndarray, what: str = "descriptors") -> None:
  """Raises DescriptorError if `descs` holds NaN or Inf (they have no rank)."""
  bad = int(np.size(descs) - np.count_nonzero(np.isfinite(descs)))
  if bad:
    raise DescriptorError(f"{what}: expected finite values, found {bad} NaN/Inf entries")


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  """Pads axis 0 of `x` with zeros up to `rows`."""
  if x.shape[0] == rows:
    return x
  pad = np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)
  return np.concatenate([x, pad])


# ---------------------------------------------------------------- distances


def opaque_zero() -> np.ndarray:
  """An int64 zero to pass to kernels as an argument, so the compiler cannot fold it."""
  return np.zeros((), np.int64)


def exact_sums(x: jax.Array, y: jax.Array, metric: str, zero: jax.Array) -> jax.Array:
  """The official cdist sums: float64, terms added one coordinate after another.

  Args:
    x: (..., D) float32 descriptors.
    y: (..., D) float32 descriptors, broadcastable against x.
    metric: "l2" (sum of squared differences) or "l1" (of absolute ones).
    zero: int64 scalar 0 received as a kernel argument (`opaque_zero`).
      Each squared term's bits are XORed with it: an identity the compiler
      cannot see through, so it cannot fuse product and sum into one
      multiply-add, which rounds once where scipy rounds twice.

  Returns:
    (...) float64 sums, bit-identical to scipy's cdist before its root.
  """
  d = x.astype(jnp.float64) - y.astype(jnp.float64)
  terms = METRICS[metric](d)
  if metric == "l2":
    terms = lax.bitcast_convert_type(lax.bitcast_convert_type(terms, jnp.int64) ^ zero,
                                     jnp.float64)
  total = terms[..., 0]
  for k in range(1, terms.shape[-1]):
    total = total + terms[..., k]
  return total


def sums_to_distances(sums: jax.Array, metric: str) -> jax.Array:
  """Distances from `exact_sums`: the root for l2, the sum itself for l1."""
  return jnp.sqrt(sums) if metric == "l2" else sums


def _numpy_pairwise_sum(terms: jax.Array) -> jax.Array:
  """Sum over the last axis in numpy's float32 `add.reduce` order (pairwise, 8 lanes)."""
  def block(lo, n):
    if n < 8:
      total = jnp.zeros(terms.shape[:-1], terms.dtype)
      for i in range(n):
        total = total + terms[..., lo + i]
      return total
    if n <= 128:
      lanes = [terms[..., lo + j] for j in range(8)]
      stop = n - n % 8
      for i in range(8, stop, 8):
        lanes = [lanes[j] + terms[..., lo + i + j] for j in range(8)]
      total = (((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
               + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])))
      for i in range(stop, n):
        total = total + terms[..., lo + i]
      return total
    half = n // 2
    half -= half % 8
    return block(lo, half) + block(lo + half, n - half)
  return block(0, terms.shape[-1])


def verification_distance(x: jax.Array, y: jax.Array, metric: str) -> jax.Array:
  """Official verification distance of paired rows.

  Args:
    x: (..., D) float32.
    y: (..., D) float32.
    metric: "l2" or "l1".

  Returns:
    (...) float32: l2 = float32 of the float64 root of the float64 sum of
    the squared float32 differences (scipy `euclidean` via BLAS snrm2);
    l1 = float32 sum of float32 |differences| in numpy's pairwise order
    (scipy `cityblock`).
  """
  d = x - y
  if metric == "l2":
    d = d.astype(jnp.float64)
    return jnp.sqrt(jnp.sum(d * d, axis=-1)).astype(jnp.float32)
  return _numpy_pairwise_sum(jnp.abs(d))


@functools.partial(jax.jit, static_argnames="metric")
def _paired_block(table, rows_a, rows_b, metric):
  a = table.at[rows_a].get(mode="promise_in_bounds")
  b = table.at[rows_b].get(mode="promise_in_bounds")
  return verification_distance(a, b, metric)


@x64
def paired_distances(table: jax.Array | np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray,
                     metric: str = "l2", block: int = PAIR_BLOCK) -> np.ndarray:
  """Verification distances between rows `rows_a[n]` and `rows_b[n]` of `table`.

  Exact work (float64 sums for L2, numpy's float32 summation order for L1,
  which flush-to-zero accelerators would not keep): runs on `exact_device()`.

  Args:
    table: (R, D) float32 descriptors (an array already on `exact_device()`,
      see `to_exact`, avoids a copy per call).
    rows_a: (N,) int row indices in [0, R).
    rows_b: (N,) int row indices in [0, R).
    metric: "l2" or "l1".
    block: pairs per kernel call; the last block is padded.

  Returns:
    (N,) float32 distances, see `verification_distance`.
  """
  check_metric(metric)
  if not (isinstance(table, jax.Array) and table.dtype == jnp.float32):
    table = np.asarray(table, np.float32)
  table = jax.device_put(table, exact_device())
  n = int(rows_a.shape[0])
  outs = []
  for start in range(0, n, block):
    a = pad_rows(np.asarray(rows_a[start:start + block], np.int32), block)
    b = pad_rows(np.asarray(rows_b[start:start + block], np.int32), block)
    outs.append(run_exact("paired_block", _paired_block, table, a, b, metric=metric))
  if not outs:
    return np.zeros((0,), np.float32)
  return np.concatenate([np.asarray(o) for o in outs])[:n]


def gram_error_bound(norms_x: jax.Array, norms_y: jax.Array, dim: int, eps: float) -> jax.Array:
  """Bound on |Gram-matrix squared distance - exact cdist sum| for one pair.

  The Gram form |x|^2 + |y|^2 - 2 x.y in a precision with unit roundoff
  `eps` errs by at most about (2 dim + 3) eps (|x|^2 + |y|^2), whatever the
  summation order (or fused multiply-adds) of the dot products; the cdist
  sum itself is within about 2 dim F64_EPS (|x|^2 + |y|^2) of the true
  value. Both are taken 4 and 2 times over, which also covers norms
  computed apart from the Gram matrix and accelerator dot paths.

  Args:
    norms_x: squared norms |x|^2 (any float dtype), broadcastable.
    norms_y: squared norms |y|^2, broadcastable.
    dim: descriptor dimension D.
    eps: unit roundoff of the Gram computation (F32_EPS or F64_EPS).

  Returns:
    The bound, in the units of the squared distance.
  """
  return ((8 * dim + 32) * eps + (4 * dim + 16) * F64_EPS) * (norms_x + norms_y)


def exact_distances(queries: jax.Array, cands: jax.Array, metric: str,
                    zero: jax.Array) -> jax.Array:
  """Official cdist distances of every query to every candidate, float64.

  Candidates are taken a chunk at a time (`lax.map`), so the float64 terms
  of one chunk are all that is held: a few MiB, reused by every chunk.

  Args:
    queries: (F, D) float32.
    cands: (C, D) float32.
    metric: "l2" or "l1".
    zero: `opaque_zero()`, see `exact_sums`.

  Returns:
    (F, C) float64, bit-identical to scipy's cdist.
  """
  num_c, dim = cands.shape
  chunk = min(256, num_c & -num_c)  # a power of two dividing C
  def one_chunk(part):
    return sums_to_distances(exact_sums(queries[:, None, :], part[None], metric, zero),
                             metric)
  out = lax.map(one_chunk, cands.reshape(num_c // chunk, chunk, dim))
  return out.transpose(1, 0, 2).reshape(queries.shape[0], num_c)


# ---------------------------------------------------------------- nearest neighbours


@functools.partial(jax.jit, static_argnames=("metric", "chunk"))
def _nn_exact_block(queries, sets, cands, num_valid, zero, metric, chunk):
  """Exact nearest neighbour of each query in its candidate set.

  Args:
    queries: (F, D) float32.
    sets: (F,) int32 candidate set of each query.
    cands: (I, W, D) float32 candidate sets, W a multiple of chunk.
    num_valid: int scalar, real candidates per set (the rest is padding).
    zero: `opaque_zero()`, see `exact_sums`.
    metric: "l2" or "l1".
    chunk: candidates per step.

  Returns:
    index: (F,) int32, the lowest index among equal smallest distances (the
      official `np.argmin`).
    distance: (F,) float64 official distance to it.
  """
  def step(c, state):
    best, first = state
    part = lax.dynamic_slice_in_dim(cands, c * chunk, chunk, axis=1)[sets]  # (F, chunk, D)
    dist = sums_to_distances(exact_sums(queries[:, None, :], part, metric, zero), metric)
    dist = jnp.where(c * chunk + jnp.arange(chunk)[None, :] < num_valid, dist, jnp.inf)
    c_best = jnp.min(dist, axis=1)
    c_first = jnp.argmin(dist, axis=1).astype(jnp.int32)
    better = c_best < best  # earlier chunks keep equal minima: lower indices
    return jnp.where(better, c_best, best), jnp.where(better, c * chunk + c_first, first)

  init = (jnp.full(queries.shape[:1], jnp.inf), jnp.zeros(queries.shape[:1], jnp.int32))
  best, first = lax.fori_loop(0, -(-num_valid // chunk), step, init)
  return first, best


F32_TINY = 2.0 ** -126  # smallest normal float32


@jax.jit
def _nn_screen_block(queries, cands, cand_norms, cand_norm_max, num_chunks):
  """Float32 Gram screening of one block of queries against I candidate sets (L2).

  Runs on the screen device (`run_screen`): float32 and int32 values only,
  so it compiles for any backend (TPUs have no 64-bit bitcasts). Candidates
  are visited one chunk of K per set at a time for `num_chunks` chunks,
  keeping the smallest screened key and how many keys lie near it, so one
  compiled kernel serves candidate sets of any size up to the padded width.

  Args:
    queries: (B, D) float32.
    cands: (W / K, I * K, D) float32: chunk c holds candidates c K .. c K + K - 1
      of every set (set-major), zero padded.
    cand_norms: (W / K, I, K) float32 squared norms, +inf on padding.
    cand_norm_max: (I,) float32 largest squared norm per set.
    num_chunks: int32 scalar, chunks holding real candidates.

  Returns:
    first: (B, I) int32 lowest index of the smallest screened distance.
    unique: (B, I) bool, True when no other candidate can be as close in
      exact arithmetic; then `first` is the official nearest neighbour and
      only its exact distance is left to compute (`_nn_chosen_exact`).
  """
  dim = queries.shape[1]
  num_i, chunk = cand_norms.shape[1:]
  shape = (queries.shape[0], num_i)
  query_norms = jnp.sum(queries * queries, axis=1)
  # Two candidates can tie in exact arithmetic only if their keys are within
  # two error bounds; a relative 8 ulps of float64 more covers equal roots,
  # and an absolute few float32 normals the products that accelerators
  # flushing subnormals to zero lose.
  norms = query_norms[:, None] + cand_norm_max[None, :]
  slack = (2.0 * gram_error_bound(query_norms[:, None], cand_norm_max[None, :], dim, F32_EPS)
           + 16.0 * F64_EPS * norms + (8 * dim + 32) * F32_TINY)

  def step(c, state):
    best, first, close = state
    # One GEMM; HIGHEST: TPUs default to bfloat16 passes, beyond the bound.
    gram = jnp.dot(queries, cands[c].T, precision=lax.Precision.HIGHEST)
    # |q|^2 is the same for the whole row: leave it out of the key.
    key = cand_norms[c][None] - 2.0 * gram.reshape(shape + (chunk,))
    c_best = jnp.min(key, axis=2)
    iota = lax.broadcasted_iota(jnp.int32, key.shape, 2)
    c_first = jnp.min(jnp.where(key == c_best[..., None], iota, chunk), axis=2)
    c_close = jnp.sum(key <= (c_best + slack)[..., None], axis=2, dtype=jnp.int32)
    # `close` counts keys within slack of the running minimum. Merged with a
    # chunk whose minimum is more than slack away, only the lower side's
    # count survives; within slack both minima are close: not unique.
    # Earlier chunks hold lower indices, so they keep equal minima.
    better = c_best < best
    near = jnp.abs(c_best - best) <= slack
    return (jnp.where(better, c_best, best),
            jnp.where(better, c * chunk + c_first, first),
            jnp.where(near, close + c_close, jnp.where(better, c_close, close)))

  init = (jnp.full(shape, jnp.inf, jnp.float32), jnp.zeros(shape, jnp.int32),
          jnp.zeros(shape, jnp.int32))
  best, first, close = lax.fori_loop(jnp.int32(0), num_chunks, step, init)
  return first, (close == 1) & jnp.isfinite(best)


@functools.partial(jax.jit, static_argnames="chunk")
def _nn_chosen_exact(queries, cands, first, zero, chunk):
  """Exact official L2 distance of each query to its screened nearest neighbour.

  Args:
    queries: (B, D) float32.
    cands: (W / K, I * K, D) float32, laid out as for `_nn_screen_block`.
    first: (B, I) int32 candidate index per query and set (`_nn_screen_block`).
    zero: `opaque_zero()`, see `exact_sums`.
    chunk: K.

  Returns:
    (B, I) float64 distances, bit-identical to scipy's cdist.
  """
  num_i = first.shape[1]
  chosen = cands[first // chunk, jnp.arange(num_i, dtype=jnp.int32)[None, :] * chunk
                 + first % chunk]  # (B, I, D)
  return jnp.sqrt(exact_sums(queries[:, None, :], chosen, "l2", zero))


def padded_width(num_candidates: int, chunk: int = SCREEN_CHUNK) -> int:
  """Candidate-set width used by `nearest_neighbours`: a multiple of chunk."""
  return max(1, -(-num_candidates // chunk)) * chunk


@x64
def nearest_neighbours(queries: np.ndarray, cands: np.ndarray, metric: str = "l2",
                       width: int | None = None, block: int = NN_BLOCK,
                       chunk: int = SCREEN_CHUNK, exact_block: int = EXACT_BLOCK
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Official nearest neighbour of every query in each of I candidate sets.

  The official matching takes `np.argmin` of a float64 `cdist` row: the
  smallest distance, the lowest index among equal ones. For L2 a float32
  Gram screen on the screen device (the accelerator, if any) finds the
  minimum and whether any other candidate lies within its error bound;
  then on the exact (CPU) device the distance to a unique minimum is
  computed exactly, and rows that are not unique are searched exactly
  (as is all of L1, and everything when descriptors are so large that
  float32 norms overflow). Only float32 data goes to the screen device and
  only its (B, I) int32/bool verdicts come back.

  Args:
    queries: (N, D) float32, finite.
    cands: (I, C, D) float32, finite; C >= 1.
    metric: "l2" or "l1".
    width: padded candidate count, a multiple of chunk >= C; pass the same
      width for every call of an evaluation so kernels compile once.
      Default `padded_width(C, chunk)`.
    block: queries per screening call.
    chunk: candidates per screening step.
    exact_block: queries per exact call.

  Returns:
    index: (I, N) int64 nearest candidate.
    distance: (I, N) float64 official distance to it.
  """
  check_metric(metric)
  queries = np.asarray(queries, np.float32)
  cands = np.asarray(cands, np.float32)
  n, num_i, num_c = queries.shape[0], cands.shape[0], cands.shape[1]
  if num_c == 0:
    raise DescriptorError("nearest neighbours: expected at least one candidate, found 0")
  width = padded_width(num_c, chunk) if width is None else width
  if width < num_c or width % chunk:
    raise ValueError(f"width: expected a multiple of {chunk} >= {num_c}, found {width}")
  cands_p = np.zeros((num_i, width, cands.shape[2]), np.float32)
  cands_p[:, :num_c] = cands
  index = np.zeros((num_i, n), np.int64)
  dist = np.zeros((num_i, n), np.float64)
  todo = np.ones((num_i, n), bool)
  norms = np.full((num_i, width), np.inf, np.float32)
  norms[:, :num_c] = np.einsum("icd,icd->ic", cands, cands)
  norm_max = norms[:, :num_c].max(axis=1)
  # Float32 Gram keys overflow for huge descriptors: then all rows go exact.
  small = max(norm_max.max(), np.einsum("nd,nd->n", queries, queries).max(initial=0)) < 1e36
  if metric == "l2" and n and small:
    num_chunks = width // chunk
    by_chunk = to_screen(cands_p.reshape(num_i, num_chunks, chunk, -1).transpose(1, 0, 2, 3)
                         .reshape(num_chunks, num_i * chunk, -1))
    by_chunk_exact = to_exact(by_chunk)  # on a CPU backend: the same array
    norms_by_chunk = to_screen(norms.reshape(num_i, num_chunks, chunk).transpose(1, 0, 2))
    norm_max = to_screen(norm_max)
    used_chunks = np.int32(-(-num_c // chunk))
    outs = []
    for start in range(0, n, block):
      q = pad_rows(queries[start:start + block], block)
      first, unique = run_screen("nn_screen_block", _nn_screen_block, q, by_chunk,
                                 norms_by_chunk, norm_max, used_chunks)
      first = to_exact(first)
      exact = run_exact("nn_chosen_exact", _nn_chosen_exact, q, by_chunk_exact, first,
                        opaque_zero(), chunk=chunk)
      outs.append((first, to_exact(unique), exact))
    first, unique, exact = (np.concatenate([np.asarray(o[k]) for o in outs])[:n].T
                            for k in range(3))
    index[unique] = first[unique]
    dist[unique] = exact[unique]
    todo = ~unique
  sets, rows = np.nonzero(todo)
  cands_dev = to_exact(cands_p) if rows.size else None
  exact_chunk = math.gcd(EXACT_CHUNK, chunk)  # divides the width
  for start in range(0, rows.size, exact_block):
    sel = slice(start, start + exact_block)
    idx, d = run_exact("nn_exact_block", _nn_exact_block,
                       pad_rows(queries[rows[sel]], exact_block),
                       pad_rows(sets[sel].astype(np.int32), exact_block), cands_dev,
                       num_c, opaque_zero(), metric=metric, chunk=exact_chunk)
    index[sets[sel], rows[sel]] = np.asarray(idx)[:rows[sel].size]
    dist[sets[sel], rows[sel]] = np.asarray(d)[:rows[sel].size]
  return index, dist


# ---------------------------------------------------------------- ranking metrics


def trapezoid_terms(tp: jax.Array, rank: jax.Array) -> jax.Array:
  """Precision-recall trapezoid of one retrieved positive, times the number of positives.

  Recall grows by 1/p at each positive, so AP = sum of these terms / p.

  Args:
    tp: positives retrieved up to and including this one (>= 1).
    rank: its 1-based rank in the list.

  Returns:
    float64 (precision at rank + precision at rank - 1) / 2, with the
    official guards: precision = max(tp, 1e-10) / max(rank, 1e-10), so the
    point before the first item has precision 1.
  """
  tp = tp.astype(jnp.float64)
  rank = rank.astype(jnp.float64)
  here = jnp.maximum(tp, TINY) / jnp.maximum(rank, TINY)
  before = jnp.maximum(tp - 1.0, TINY) / jnp.maximum(rank - 1.0, TINY)
  return 0.5 * (here + before)


def _sortable(dist: jax.Array) -> jax.Array:
  """Integers ordered as the float distances (ties stay ties, -0 == +0)."""
  dist = jnp.where(dist == 0, jnp.zeros_like(dist), dist)
  if dist.dtype == jnp.float64:
    bits = lax.bitcast_convert_type(dist, jnp.int64)
    return jnp.where(bits < 0, bits ^ jnp.int64(0x7FFFFFFFFFFFFFFF), bits)
  bits = lax.bitcast_convert_type(dist.astype(jnp.float32), jnp.int32)
  return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def _stable_rank(dist, labels):
  """Sorts rows by ascending distance, stable; returns (labels, retrieved) in rank order."""
  retrieved = dist < jnp.inf
  _, labels_s, retrieved_s = lax.sort((_sortable(dist), labels, retrieved), dimension=-1,
                                      num_keys=1, is_stable=True)
  return labels_s, retrieved_s


@jax.jit
def _ap_rows(dist, labels, num_pos):
  labels_s, retrieved_s = _stable_rank(dist, labels)
  hits = labels_s & retrieved_s
  tp = jnp.cumsum(hits, axis=-1)
  rank = jnp.arange(1, dist.shape[-1] + 1)
  terms = jnp.where(hits, trapezoid_terms(tp, rank), 0.0)
  return jnp.sum(terms, axis=-1) / jnp.maximum(num_pos.astype(jnp.float64), TINY)


@jax.jit
def _auc_rows(dist, labels):
  labels_s, retrieved_s = _stable_rank(dist, labels)
  tp = jnp.cumsum(labels_s & retrieved_s, axis=-1)
  num_pos = jnp.sum(labels, axis=-1).astype(jnp.float64)
  num_neg = jnp.sum(~labels, axis=-1).astype(jnp.float64)
  # At a negative the false-positive rate steps by 1/n while the true
  # positive rate stays tp/p: the trapezoid is tp / (p n).
  area = jnp.sum(jnp.where(~labels_s & retrieved_s, tp, 0), axis=-1).astype(jnp.float64)
  return area / (jnp.maximum(num_pos, TINY) * jnp.maximum(num_neg, TINY))


def _as_rows(dist, labels):
  dist = np.asarray(dist)
  labels = np.asarray(labels, bool)
  if dist.shape != labels.shape or dist.ndim not in (1, 2):
    raise ValueError(f"distances and labels: expected equal (N,) or (R, N) shapes, "
                     f"found {dist.shape} and {labels.shape}")
  if np.isnan(dist).any():
    raise DescriptorError("distances: expected no NaN, found some")
  return dist.reshape((-1, dist.shape[-1])), labels.reshape((-1, dist.shape[-1]))


@x64
def average_precision(dist: np.ndarray, labels: np.ndarray,
                      num_positives: np.ndarray | int | None = None) -> np.ndarray | float:
  """Official AP of ranked lists (`metrics.pr`), rows independently, on `exact_device()`.

  Args:
    dist: (N,) or (R, N) float distances (score = -distance); +inf entries
      are never retrieved (the official -inf scores), so padding uses +inf.
    labels: same shape, bool, True for positives.
    num_positives: positives per row (the official `numpos`, which counts
      positives missing from the list); default the True labels per row.

  Returns:
    float (1-D input) or (R,) float64 AP.
  """
  rows_d, rows_l = _as_rows(dist, labels)
  listed = rows_l.sum(axis=1)
  num_pos = np.broadcast_to(np.asarray(listed if num_positives is None else num_positives,
                                       np.int64), (rows_d.shape[0],))
  if (num_pos < listed).any():
    raise ValueError(f"num_positives: expected at least the positives listed, found "
                     f"{num_pos.tolist()} < {listed.tolist()}")
  ap = np.asarray(run_exact("ap_rows", _ap_rows, rows_d, rows_l, num_pos))
  return float(ap[0]) if np.ndim(dist) == 1 else ap


@x64
def roc_auc(dist: np.ndarray, labels: np.ndarray) -> np.ndarray | float:
  """Official ROC AUC of ranked lists (`metrics.roc`), rows independently, on `exact_device()`.

  Args:
    dist: (N,) or (R, N) float distances; +inf entries are never retrieved.
    labels: same shape, bool, True for positives.

  Returns:
    float (1-D input) or (R,) float64 area under tpr(fpr).
  """
  rows_d, rows_l = _as_rows(dist, labels)
  auc = np.asarray(run_exact("auc_rows", _auc_rows, rows_d, rows_l))
  return float(auc[0]) if np.ndim(dist) == 1 else auc


@jax.jit
def _verification_ap_auc(neg, pos, num_neg_in, num_pos_in):
  num_neg, num_pos = neg.shape[0], pos.shape[0]
  # Float32 distances are >= 0, so their bit patterns sort as they do; the
  # low word keeps each positive's list position (integer sorts are fast).
  packed = lax.sort((lax.bitcast_convert_type(pos, jnp.int32).astype(jnp.int64) << 32)
                    | jnp.arange(num_pos, dtype=jnp.int64))
  pos_sorted = (packed >> 32).astype(jnp.int32)
  pos_in = (packed & 0xFFFFFFFF) < num_pos_in
  # Negatives precede positives in the official list, so on equal distance
  # the negative ranks first: each negative is preceded by the positives
  # strictly closer than it.
  closer = jnp.searchsorted(pos_sorted, lax.bitcast_convert_type(neg, jnp.int32), side="left")
  auc = (jnp.sum(closer.astype(jnp.int64)).astype(jnp.float64)
         / (jnp.maximum(float(num_neg), TINY) * jnp.maximum(float(num_pos), TINY)))
  neg_in = (jnp.arange(num_neg) < num_neg_in).astype(jnp.int64)
  negs_before = jnp.cumsum(jnp.bincount(closer, weights=neg_in, length=num_pos + 1))[:num_pos]
  tp = jnp.cumsum(pos_in)
  terms = jnp.where(pos_in, trapezoid_terms(tp, tp + negs_before), 0.0)
  ap = jnp.sum(terms) / jnp.maximum(num_pos_in.astype(jnp.float64), TINY)
  return ap, auc


@x64
def verification_ap_auc(neg: np.ndarray, pos: np.ndarray, list_size: int) -> tuple[float, float]:
  """Official verification scores of one (level, negative set).

  The official list is [negatives..., positives...] with labels 0/1:
  'balanced' = ROC AUC of the whole list, 'imbalanced' = AP of its first
  `list_size` entries. Computed with one sort of the positives and a
  search of each negative among them, not a sort of the whole list.
  Runs on `exact_device()` (int64 keys, float64 sums).

  Args:
    neg: (Nn,) float32 finite negative-pair distances >= 0, file order.
    pos: (Np,) float32 finite positive-pair distances >= 0, file order.
    list_size: entries of the list kept for AP (len(pos) + int(0.2 len(pos))).

  Returns:
    (ap, auc) floats.
  """
  neg = np.asarray(neg, np.float32)
  pos = np.asarray(pos, np.float32)
  num_neg_in = min(neg.shape[0], list_size)
  num_pos_in = min(pos.shape[0], max(0, list_size - neg.shape[0]))
  ap, auc = run_exact("verification_ap_auc", _verification_ap_auc, neg, pos,
                      np.int64(num_neg_in), np.int64(num_pos_in))
  return float(ap), float(auc)
