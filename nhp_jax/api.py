"""The public API: load a trained model, describe (and denoise) patches, score descriptors.

  model = nhp_jax.load("workdirs/main/model")     # an exported file, or a workdir
  descs = model.describe(patches)                  # (N, 128) float32
  doc = nhp_jax.evaluate(descs, test_patches, data_dir=DATA)

`load` takes any of:
  * a model file written by `experiments.export_model` (`nhp_jax.model_file`):
    no workdir, config or data needed;
  * a run folder holding `denoiser/` and `descriptor/` training workdirs (as
    `experiments.main --pipeline=baseline` and the studies write them): the
    separately trained pair, `kind == "pair"`;
  * a joint fine-tuning workdir (`experiments.finetune_joint`, `<main
    workdir>/joint`): the fine-tuned `denoise_describe` pair, `kind == "joint"`;
  * a descriptor training workdir: the descriptor alone, `kind == "descriptor"`.

Patches are checked at the door: layout, dtype, value range and finiteness,
each failure one `DataError` line saying what was expected and found. Work
runs jitted, in fixed-size blocks, on whatever devices JAX has
(`nhp_jax.inference`).
"""

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from nhp_jax import errors, inference, model_file
from nhp_jax.data import layout, reader
from nhp_jax.train import state as state_lib

KINDS = tuple(model_file.KINDS)
VALUE_RANGES = ((0, 255), (0, 1))
SIDES = (layout.PATCH_SIZE, layout.HPATCHES_PATCH_SIZE)   # 32 (network input), 65 (release)
# Smallest compiled block: calls with few patches compile blocks of the next
# power of two up to `batch_size`, not a padded block of `batch_size` rows.
MIN_BLOCK = 8
_DESCRIBE = {  # kind -> (describe with the denoiser, describe without it): (network, denoiser)
    "pair": (("descriptor", "denoiser"), ("descriptor", None)),
    "joint": (("joint", None), ("joint/descriptor", None)),
    "descriptor": (None, ("descriptor", None)),
}
_DENOISER = {"pair": "denoiser", "joint": "joint/denoiser", "descriptor": None}
_PATCH_LAYOUTS = ("(N, 32, 32), (N, 32, 32, 1) or (N, 1, 32, 32) (65 for 32: HPatches release "
                  "patches)")


def _layout_of(shape: tuple[int, ...]) -> tuple[str, int] | None:
  """("nhw" | "nhwc" | "nchw", side) of a patch array shape, or None."""
  if len(shape) == 3 and shape[1] == shape[2] and shape[1] in SIDES:
    return "nhw", shape[1]
  if len(shape) == 4 and shape[1] == shape[2] and shape[1] in SIDES and shape[3] == 1:
    return "nhwc", shape[1]
  if len(shape) == 4 and shape[2] == shape[3] and shape[2] in SIDES and shape[1] == 1:
    return "nchw", shape[2]
  return None


def _value_range(value_range: Any) -> tuple[int, int] | None:
  if value_range is None:
    return None
  try:
    pair = tuple(float(v) for v in value_range)
  except (TypeError, ValueError):
    pair = None
  for allowed in VALUE_RANGES:
    if pair == allowed:
      return allowed
  raise errors.DataError(f"value_range: expected None, (0, 255) or (0, 1), found {value_range!r}")


def prepare_patches(patches: Any, value_range: Any = None
                    ) -> tuple[np.ndarray, tuple[str, bool, int]]:
  """Checks patches and brings them to the networks' input: (N, 32, 32, 1) pixels 0..255.

  Args:
    patches: (N, S, S), (N, S, S, 1) or (N, 1, S, S) with S = 32, or S = 65
      (HPatches release patches, shrunk to 32 by area averaging and rounded
      to uint8, exactly as `nhp_jax.data.reader` reads the release). uint8
      pixels 0..255, or float pixels in the stated `value_range`.
    value_range: None (uint8 only), (0, 255) or (0, 1).

  Returns:
    (pixels, how): pixels (N, 32, 32, 1) uint8 (uint8 or 65-px input) or
    float32 0..255; how = (layout name, whether the input was uint8, the
    top of its value range), for giving results back in the caller's form.

  Raises:
    DataError: a shape, dtype or value range other than the above, a float
      array without a value_range, values outside it, or NaN/Inf.
  """
  x = np.asarray(patches)
  found = _layout_of(x.shape)
  if found is None:
    hint = "; one patch: add a leading axis" if x.ndim == 2 else ""
    raise errors.DataError(f"patches: expected shape {_PATCH_LAYOUTS}, found {x.shape}{hint}")
  name, side = found
  value_range = _value_range(value_range)
  is_uint8 = x.dtype == np.uint8
  if is_uint8:
    if value_range not in (None, (0, 255)):
      raise errors.DataError(f"patches: uint8 pixels are 0..255, so expected value_range None or "
                             f"(0, 255), found {value_range}")
    top = 255
  elif np.issubdtype(x.dtype, np.floating):
    if value_range is None:
      raise errors.DataError(f"patches: expected uint8 pixels, or float pixels with "
                             f"value_range=(0, 255) or (0, 1); found {x.dtype} with no value_range")
    top = value_range[1]
    finite = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
    if not finite.all():
      raise errors.DataError(f"patches: expected finite pixels, found NaN or Inf in "
                             f"{int((~finite).sum())} of {len(x)} patches (the first: patch "
                             f"{int(np.argmin(finite))})")
    if x.size and (x.min() < 0 or x.max() > top):
      raise errors.DataError(f"patches: expected values in [0, {top}] (value_range=(0, {top})), "
                             f"found min {float(x.min()):g}, max {float(x.max()):g}")
  else:
    raise errors.DataError(f"patches: expected uint8 pixels 0..255 or float pixels with a "
                           f"value_range, found dtype {x.dtype}")
  if name == "nchw":
    x = x[:, 0]
  elif name == "nhwc":
    x = x[..., 0]
  if not is_uint8:
    x = x.astype(np.float32) * np.float32(255 / top) if top != 255 else x.astype(np.float32)
  if side != layout.PATCH_SIZE:
    x = reader.resize_area(x)   # -> uint8, as the HPatches release is read
  return x[..., None], (name, is_uint8, top)


def _restore_layout(y: np.ndarray, how: tuple[str, bool, int]) -> np.ndarray:
  """(N, 32, 32, 1) -> the caller's layout."""
  name = how[0]
  return y[..., 0] if name == "nhw" else np.moveaxis(y, 3, 1) if name == "nchw" else y


def _build(network: model_file.Network):
  """The Flax module of a network's model section and dtype (`state.build_model`)."""
  return state_lib.build_model(ml_collections.ConfigDict(
      {"model": network.model, "dtype": network.dtype}))


def _joint_half(network: model_file.Network, role: str) -> model_file.Network:
  """The denoiser or descriptor half of a `denoise_describe` network, as a network of its own."""
  variables = {col: tree[role] for col, tree in network.variables.items() if role in tree}
  return model_file.Network(dict(network.model["kwargs"][role]), network.dtype, variables,
                            dict(network.source, half=role))


def _fit_problems(module, variables: Mapping[str, Any]) -> list[str]:
  """Variables missing from `variables`, unexpected or of another shape than `module` needs."""
  target = jax.eval_shape(functools.partial(module.init, train=False), jax.random.key(0),
                          jnp.zeros((1, layout.PATCH_SIZE, layout.PATCH_SIZE, 1), jnp.float32))
  want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(dict(target), sep="/").items()}
  have = {k: tuple(np.shape(v))
          for k, v in traverse_util.flatten_dict(dict(variables), sep="/").items()}
  lines = [f"{k}: missing" for k in sorted(want.keys() - have.keys())]
  lines += [f"{k}: not in the model" for k in sorted(have.keys() - want.keys())]
  lines += [f"{k}: model {want[k]}, found {have[k]}"
            for k in sorted(want.keys() & have.keys()) if want[k] != have[k]]
  return lines


class Model:
  """A trained denoiser and descriptor (or a descriptor alone), ready for inference.

  Made by `nhp_jax.load`. What `describe` computes by default is the
  pipeline's headline descriptor:
    * kind "pair" (a run folder, or a model exported from one): noisy patch
      -> denoiser -> clipped to 0..255 and truncated to uint8 -> descriptor,
      the seed's pipeline (`inference.make_describe_fn` with a denoiser);
    * kind "joint" (a joint workdir or its export): noisy patch -> the
      fine-tuned denoiser -> clipped to 0..255 -> the fine-tuned descriptor,
      one network (`denoise_describe`);
    * kind "descriptor": the descriptor on the patch as given.
  `describe(..., denoise=False)` runs the descriptor alone (of a pair: the
  separately trained descriptor, the seed's "noisy" input when the patches
  are noisy; of a joint pair: its fine-tuned descriptor half).

  Shape:
    input: (N, 32, 32), (N, 32, 32, 1) or (N, 1, 32, 32); 65 in place of 32
      for HPatches release patches.
    describe: (N, D) float32 (D = 128 for L2-Net).
    denoise: (N, 32, 32) (or the input's other layout), the input's dtype.

  Example (`model_path`: a model file, run folder or joint workdir):

    >>> import numpy as np
    >>> import nhp_jax
    >>> model = nhp_jax.load(model_path)
    >>> patches = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    >>> descs = model.describe(patches)
    >>> descs.shape, descs.dtype
    ((5, 128), dtype('float32'))
    >>> model.describe(patches[:, None] / 255.0, value_range=(0, 1)).shape
    (5, 128)
    >>> model.denoise(patches).shape, model.denoise(patches).dtype
    ((5, 32, 32), dtype('uint8'))
    >>> model.describe(patches / 255.0)
    Traceback (most recent call last):
    ...
    nhp_jax.errors.DataError: patches: expected uint8 pixels, or float pixels with value_range=...

  Attributes:
    kind: "pair", "joint" or "descriptor".
    networks: {role: model_file.Network} (roles `model_file.KINDS[kind]`).
    source: the path it was loaded from.
    batch_size: the most patches per compiled block.
  """

  def __init__(self, kind: str, networks: Mapping[str, model_file.Network], *, source: str,
               batch_size: int = inference.DEFAULT_BATCH_SIZE):
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
      raise errors.ConfigError(f"batch_size: expected a positive int, found {batch_size!r}")
    if kind not in KINDS or tuple(networks) != model_file.KINDS[kind]:
      raise errors.ConfigError(f"Model: kind {kind!r} expects networks "
                               f"{list(model_file.KINDS.get(kind, ()))}, found {list(networks)}")
    self.kind, self.source, self.batch_size = kind, source, batch_size
    self.networks = dict(networks)
    parts = dict(self.networks)
    if kind == "joint":
      for half in ("denoiser", "descriptor"):
        parts[f"joint/{half}"] = _joint_half(self.networks["joint"], half)
    self._parts = {}
    for role, network in parts.items():
      module = _build(network)
      if role in self.networks:   # the halves of a joint network fit when the whole does
        problems = _fit_problems(module, network.variables)
        if problems:
          error = (model_file.ModelFileError if os.path.isfile(source) else errors.CheckpointError)
          raise error(f"{source}: network {role}: the variables do not fit its model "
                      f"{network.model['name']!r} ({len(problems)} differences: "
                      f"{'; '.join(problems[:4])})")
      self._parts[role] = (module, network.variables)
    self._fns: dict[tuple, Any] = {}

  def __repr__(self) -> str:
    return f"nhp_jax.Model(kind={self.kind!r}, source={self.source!r})"

  @property
  def has_denoiser(self) -> bool:
    return _DENOISER[self.kind] is not None

  @functools.cached_property
  def dim(self) -> int:
    """Descriptor dimension D."""
    module, variables = self._parts[_DESCRIBE[self.kind][1][0]]
    x = jax.ShapeDtypeStruct((1, layout.PATCH_SIZE, layout.PATCH_SIZE, 1), jnp.float32)
    return int(jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables,
                              x).shape[-1])

  @functools.cached_property
  def digest(self) -> str:
    """`model_file.variables_digest` of the networks: equal digests, equal parameters."""
    return model_file.variables_digest({r: n.variables for r, n in self.networks.items()})

  def _block(self, n: int) -> int:
    return min(self.batch_size, max(MIN_BLOCK, 1 << max(0, n - 1).bit_length()))

  def _fn(self, what: tuple, n: int):
    key = (*what, self._block(n))
    if key not in self._fns:
      block = key[-1]
      if what[0] == "describe":
        network, denoiser = what[1:]
        self._fns[key] = inference.make_describe_fn(
            *self._parts[network], block,
            denoiser=self._parts[denoiser] if denoiser else None)
      else:
        self._fns[key] = inference.make_denoise_fn(*self._parts[what[1]], block,
                                                   as_uint8=what[2])
    return self._fns[key]

  def describe(self, patches: Any, value_range: Any = None, *,
               denoise: bool | None = None) -> np.ndarray:
    """Descriptors of patches (see the class docstring for what runs).

    Args:
      patches: (N, 32, 32), (N, 32, 32, 1) or (N, 1, 32, 32) noisy patches
        (65 in place of 32: HPatches release patches, resized as the reader
        resizes them); uint8 pixels 0..255, or float pixels in `value_range`.
      value_range: None for uint8; (0, 255) or (0, 1) for float pixels (required).
      denoise: None: the model's headline (through the denoiser when it has
        one); False: the descriptor alone; True: through the denoiser (an
        error for a descriptor-only model).

    Returns:
      (N, D) float32 numpy descriptors (D = 128), row i of patch i.

    Raises:
      DataError: bad patches (see `prepare_patches`).
      ConfigError: denoise=True for a model without a denoiser.
      NumericsError: a descriptor came out NaN or Inf.
    """
    x, _ = prepare_patches(patches, value_range)
    if denoise and not self.has_denoiser:
      raise errors.ConfigError(f"denoise=True: expected a model with a denoiser, found kind "
                               f"{self.kind!r} ({self.source}); pass denoise=False or None")
    use = self.has_denoiser if denoise is None else bool(denoise)
    if len(x) == 0:
      return np.zeros((0, self.dim), np.float32)
    network, denoiser = _DESCRIBE[self.kind][0 if use else 1]
    out = self._fn(("describe", network, denoiser), len(x))(x)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
      raise errors.NumericsError(f"describe: expected finite descriptors, found NaN or Inf in "
                                 f"{int(bad.sum())} of {len(out)} (the first: patch "
                                 f"{int(np.argmax(bad))}) from {self.source}")
    return out

  def denoise(self, patches: Any, value_range: Any = None) -> np.ndarray:
    """Denoised patches, in the input's layout, dtype and value range.

    The denoiser is the pair's (kind "pair") or the fine-tuned one (kind
    "joint"), in inference mode.

    Args:
      patches: as for `describe` (65-px patches come back 32 px wide).
      value_range: as for `describe`.

    Returns:
      The input's layout with 32-px sides. uint8 input: uint8, clipped to
      0..255 and truncated, exactly the pixels a pair's descriptor sees.
      Float input: float32 clipped to the value range, not rounded
      ((0, 1): the 0..255 output / 255); a joint pair's descriptor sees
      these pixels (times 255 for (0, 1)).

    Raises:
      DataError: bad patches. ConfigError: a model without a denoiser.
    """
    x, how = prepare_patches(patches, value_range)
    if not self.has_denoiser:
      raise errors.ConfigError(f"denoise: expected a model with a denoiser, found kind "
                               f"{self.kind!r} ({self.source})")
    as_uint8 = how[1]
    if len(x) == 0:
      y = np.zeros(x.shape, np.uint8 if as_uint8 else np.float32)
    else:
      y = self._fn(("denoise", _DENOISER[self.kind], as_uint8), len(x))(x)
    if not as_uint8:
      y = np.clip(y, 0.0, 255.0)
      if how[2] != 255:
        y = y / np.float32(255 / how[2])
    return _restore_layout(y, how)

  def export(self, path: str | os.PathLike) -> dict:
    """Writes this model as one portable file (`nhp_jax.model_file`); returns its manifest."""
    return model_file.write(path, self.kind, self.networks)


def _network(restored) -> model_file.Network:
  """A `describe.RestoredModel` as a model-file network (numpy variables)."""
  config = restored.config
  return model_file.Network(
      config.model.to_dict(), str(config.dtype), jax.device_get(restored.variables),
      {"workdir": restored.workdir, "step": int(restored.step), "recipe": str(config.recipe)})


def _load_workdir(path: str, step: int | str) -> tuple[str, dict[str, model_file.Network]]:
  # pylint: disable-next=g-import-not-at-top
  from nhp_jax.evaluation import describe  # restoring needs orbax: only for workdirs
  from nhp_jax.train import checkpointing  # pylint: disable=g-import-not-at-top
  if os.path.isdir(os.path.join(path, describe.DESCRIPTOR_SUBDIR)):
    den_dir, des_dir = describe.resolve_workdirs(path)
    descriptor = describe.restore(des_dir, step)
    if descriptor.config.recipe != "descriptor":
      raise errors.CheckpointError(f"{des_dir}: expected a descriptor training workdir, found "
                                   f"a {descriptor.config.recipe} workdir")
    if den_dir is None:
      return "descriptor", {"descriptor": _network(descriptor)}
    denoiser = describe.restore(den_dir, step)
    return "pair", {"denoiser": _network(denoiser), "descriptor": _network(descriptor)}
  if os.path.isdir(os.path.join(path, checkpointing.CHECKPOINT_DIR)):
    restored = describe.restore(path, step)
    name, recipe = restored.config.model.name, restored.config.recipe
    if name == "denoise_describe":
      return "joint", {"joint": _network(restored)}
    if recipe == "descriptor":
      return "descriptor", {"descriptor": _network(restored)}
    raise errors.CheckpointError(
        f"{path}: expected a descriptor or joint training workdir, found a {recipe} workdir "
        f"(model {name}); load the run folder holding {describe.DENOISER_SUBDIR}/ and "
        f"{describe.DESCRIPTOR_SUBDIR}/ instead")
  listing = sorted(os.listdir(path))
  raise errors.CheckpointError(
      f"{path}: expected an exported model file, a run folder (denoiser/ + descriptor/) or a "
      f"training workdir (checkpoints/), found a folder holding "
      f"{', '.join(listing[:8]) or 'nothing'}{' ...' if len(listing) > 8 else ''}")


def load(path: str | os.PathLike, *, step: int | str | None = None,
         batch_size: int = inference.DEFAULT_BATCH_SIZE) -> Model:
  """Loads a trained model for inference (see the module docstring for what `path` may be).

  Args:
    path: a model file (`experiments.export_model`), a run folder
      (denoiser/ + descriptor/), a joint workdir or a descriptor workdir. A
      main-job workdir is a run folder (its separately trained pair); its
      headline model is `<workdir>/model` (or `<workdir>/joint`).
    step: workdirs only: the checkpoint, "best" (lowest validation loss, the
      default, as `experiments.evaluate` scores), "latest" or a step number.
    batch_size: the most patches per compiled block (lower it when a block
      does not fit the device's memory).

  Returns:
    A `Model` (see its docstring for an example).

  Raises:
    ModelFileError: a bad model file (foreign, truncated, altered, newer
      format, missing keys; always naming the file).
    CheckpointError: a folder that is none of the above, or unreadable
      checkpoints.
    ConfigError: `step` given for a model file, or a bad batch_size.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    kind, networks = _load_workdir(path, "best" if step is None else step)
  elif os.path.isfile(path):
    if step is not None:
      raise errors.ConfigError(f"step: a model file holds one set of variables, so expected "
                               f"step=None, found {step!r} ({path})")
    kind, networks, _ = model_file.read(path)
  else:
    raise model_file.ModelFileError(
        f"{path}: not found (expected an exported model file, a run folder with denoiser/ and "
        f"descriptor/, or a training workdir)")
  return Model(kind, networks, source=path, batch_size=batch_size)


def evaluate(descriptors: Any, patches: Any = None, *, data_dir: str | os.PathLike | None = None,
             split: str = "a", tasks_dir: str | os.PathLike | None = None,
             tasks: Sequence[str] | None = None, n_pairs: int | None = None,
             metric: str = "l2") -> dict:
  """Scores descriptors of a split's test patches on the three HPatches benchmarks.

  A thin layer over `nhp_jax.evaluation.runner.evaluate_descriptor_set`:
  task files are the official ones in `tasks_dir` when there, else generated
  the official way (seed 42) and cached under `data_dir`.

  Args:
    descriptors: one of
      * (L * 16, D) or (L, 16, D) float descriptors of `patches`, in the order
        of `patches.noisy.reshape(-1, 32, 32)` (label-major, 16 images each);
      * an `evaluation.types.DescriptorSet` (then no `patches`);
      * a folder `<seq>/<image>.csv` (`experiments.export_descriptors`); its
        sequences are the test list of `split` in `tasks_dir`'s, `data_dir`'s
        or the official splits.json.
    patches: the `PatchSet` the array was computed from
      (`nhp_jax.data.cache.load_split(data_dir, split, "test")`): gives the
      sequences and their label counts.
    data_dir: the dataset root the patches come from (caches generated task
      files; its `ref` patches give generated retrieval lists).
    split: split name, e.g. "a".
    tasks_dir: a folder that may hold the official task CSVs.
    tasks: a subset of ("verification", "matching", "retrieval"); None: all.
    n_pairs: pairs per generated verification file; None: the official 1,000,000.
    metric: descriptor distance ("l2", as the benchmark).

  Returns:
    The results document: {"verification", "matching", "retrieval": mAP in
    [0, 1], "details": per level, per task and how it was set up}
    (`evaluation.report.results_json`).

  Raises:
    DescriptorError: descriptors of the wrong shape or with NaN/Inf.
    ConfigError: an array without its `patches`, or unknown tasks.
    TaskFileError, DataError: bad task files, splits or data (before scoring).
  """
  # pylint: disable=g-import-not-at-top
  from nhp_jax.data import patchset as patchset_lib
  from nhp_jax.data import splits as splits_lib
  from nhp_jax.evaluation import descriptor_io, score, task_files, types

  data_dir = None if data_dir is None else os.fspath(data_dir)
  tasks_dir = None if tasks_dir is None else os.fspath(tasks_dir)
  meta = {"mode": "api"}
  if isinstance(descriptors, types.DescriptorSet):
    if patches is not None:
      raise errors.ConfigError("patches: a DescriptorSet names its sequences, so expected "
                               "patches=None, found a value")
    descs = descriptors
  elif isinstance(descriptors, (str, os.PathLike)):
    folder = os.fspath(descriptors)
    splits_path = score.splits_file(tasks_dir, data_dir)
    try:
      sequences = splits_lib.split_sequences(split, "test", splits_lib.load_splits(splits_path))
    except errors.TaskFileError as e:
      raise errors.TaskFileError(f"{splits_path or 'vendored splits.json'}: {e}") from None
    descs = descriptor_io.read_descriptor_folder(folder, sequences)
    meta.update(descriptors=folder, splits_file=splits_path or "vendored")
  else:
    if not isinstance(patches, patchset_lib.PatchSet):
      raise errors.ConfigError(f"patches: expected the PatchSet the descriptor array describes "
                               f"(nhp_jax.data.cache.load_split), found "
                               f"{type(patches).__name__}")
    a = np.asarray(descriptors)
    n = patches.num_labels
    if a.ndim == 2 and a.shape[0] == n * layout.NUM_IMAGES:
      a = a.reshape(n, layout.NUM_IMAGES, a.shape[1])
    if (a.ndim != 3 or a.shape[:2] != (n, layout.NUM_IMAGES) or a.shape[2] < 1
        or not np.issubdtype(a.dtype, np.floating)):
      raise errors.DescriptorError(
          f"descriptors: expected float ({n * layout.NUM_IMAGES}, D) or ({n}, 16, D) for the "
          f"{n} labels x 16 images of `patches`, found {a.dtype} {a.shape}")
    descs = types.DescriptorSet(patches.sequences, patches.offsets, a.astype(np.float32))
  bad = ~np.isfinite(descs.descs).all(axis=2).reshape(-1)
  if bad.any():
    raise errors.DescriptorError(f"descriptors: expected finite values, found NaN or Inf in "
                                 f"{int(bad.sum())} of {len(bad)} rows (the first: row "
                                 f"{int(np.argmax(bad))}, label-major)")
  return score.evaluate_descriptor_set(
      descs, split, tasks_dir=tasks_dir, data_dir=data_dir,
      tasks=tuple(tasks) if tasks is not None else types.BENCHMARKS,
      n_pairs=task_files.OFFICIAL_N_PAIRS if n_pairs is None else n_pairs, metric=metric,
      meta=meta)
