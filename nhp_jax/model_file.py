"""The portable model file: trained networks with what rebuilds them, in one zip archive.

`experiments.export_model` writes one; `nhp_jax.load` reads it back with no
training workdir, config or data. The file is a zip archive (stored, not
compressed: float parameters barely compress) of two members:

  manifest.json      {"format": "nhp_jax.model", "format_version": 1,
                      "kind": "pair" | "joint" | "descriptor",
                      "networks": {role: {"model": {"name", "kwargs"},
                                          "dtype": "float32" | "bfloat16",
                                          "source": {"workdir", "step", "recipe"}}},
                      "variables_sha256": hex digest, "written_by": "nhp_jax X.Y.Z"}
  variables.msgpack  {role: {"params": ..., ["batch_stats": ...]}} as numpy
                     arrays, `flax.serialization.msgpack_serialize`

A role's `model` and `dtype` are what `nhp_jax.train.state.build_model`
needs to rebuild its Flax module. The roles of each kind (`KINDS`): a
separately trained `pair` (a run folder: `denoiser` and `descriptor`), a
`joint` fine-tuned pair (one `denoise_describe` network) or a `descriptor`
alone.

Why one file and not a folder: a model is one thing to copy, upload or
attach, and one atomic rename writes it whole (`nhp_jax.atomic`); zip is the
container of `torch.save` and NumPy's `.npz`, so the manifest stays readable
with standard tools (`unzip -p model manifest.json`). Integrity: zip's
central directory sits at the end of the file, so a truncated copy is
detected before anything is parsed; each member has a CRC-32; and
`variables_sha256` (SHA-256 over every variable's path, dtype, shape and
bytes, in path order) identifies the parameters themselves: equal digests,
equal networks, whatever machine wrote them. The archive's timestamps are
fixed, so the same variables always give the same bytes.

Every problem with a file raises one `ModelFileError` line naming the file,
what was expected and what was found.
"""

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from nhp_jax import __version__, atomic, errors

FORMAT = "nhp_jax.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VARIABLES = "variables.msgpack"
# The networks ("roles") of each kind, in manifest order.
KINDS = {"pair": ("denoiser", "descriptor"), "joint": ("joint",), "descriptor": ("descriptor",)}
COLLECTIONS = ("params", "batch_stats")
DTYPES = ("float32", "bfloat16")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)   # zip's earliest date: reproducible bytes


class ModelFileError(errors.NhpError, ValueError):
  """A model file is missing, foreign, truncated, altered or of a newer format."""


@dataclasses.dataclass(frozen=True)
class Network:
  """One network of a model file.

  Attributes:
    model: the config's model section, {"name": registry name, "kwargs": {...}}.
    dtype: the config's compute dtype, "float32" or "bfloat16" (parameters
      are float32 either way).
    variables: {"params": tree, ["batch_stats": tree]} of numpy arrays.
    source: where it came from, JSON values ({"workdir", "step", "recipe"}; files
      written before #21 say "task" for "recipe").
  """
  model: dict
  dtype: str
  variables: dict
  source: dict = dataclasses.field(default_factory=dict)


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, np.ndarray]]:
  """[("a/b/c", array)] of a nested mapping, sorted by path."""
  out = []
  for key in sorted(tree, key=str):
    value, path = tree[key], f"{prefix}{key}"
    if isinstance(value, Mapping):
      out += _leaves(value, path + "/")
    else:
      out.append((path, np.asarray(value)))
  return out


def variables_digest(variables: Mapping[str, Any]) -> str:
  """SHA-256 (hex) over every leaf's path, dtype, shape and bytes, in sorted path order.

  Args:
    variables: {role: {"params", ["batch_stats"]}}, leaves numpy or jax arrays.
  """
  h = hashlib.sha256()
  for path, a in _leaves(variables):
    a = np.ascontiguousarray(a)
    h.update(f"{path}\0{a.dtype.str}\0{a.shape}\0".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _host_tree(tree: Mapping[str, Any]) -> dict:
  """A nested dict copy of `tree` with numpy leaves (jax arrays fetched from devices)."""
  return {str(k): _host_tree(v) if isinstance(v, Mapping) else np.asarray(v)
          for k, v in tree.items()}


def _check_networks(kind: str, networks: Mapping[str, Network], where: str) -> None:
  if kind not in KINDS:
    raise ModelFileError(f"{where}: expected kind one of {', '.join(KINDS)}, found {kind!r}")
  if tuple(networks) != KINDS[kind]:
    raise ModelFileError(f"{where}: kind {kind!r} expects networks {list(KINDS[kind])}, "
                         f"found {list(networks)}")


def write(path: str | os.PathLike, kind: str, networks: Mapping[str, Network]) -> dict:
  """Writes a model file atomically (a reader sees the old file or the whole new one).

  Args:
    path: destination file; an existing file there is replaced.
    kind: a key of `KINDS`.
    networks: {role: Network} with exactly the roles of `kind`, in order.

  Returns:
    The manifest written.

  Raises:
    ModelFileError: a kind or roles that do not match, or a network without
      params or with an unknown dtype.
  """
  # pylint: disable-next=g-import-not-at-top
  from flax import serialization  # flax is heavy: only writers and readers pay for it
  path = os.fspath(path)
  if os.path.isdir(path):
    raise ModelFileError(f"{path}: expected a model file path to write, found a folder")
  _check_networks(kind, networks, path)
  variables = {}
  for role, net in networks.items():
    unknown = sorted(set(net.variables) - set(COLLECTIONS))
    if "params" not in net.variables or unknown:
      raise ModelFileError(f"{path}: network {role}: expected collections params and optionally "
                           f"batch_stats, found {sorted(net.variables)}")
    if net.dtype not in DTYPES:
      raise ModelFileError(f"{path}: network {role}: expected dtype one of {', '.join(DTYPES)}, "
                           f"found {net.dtype!r}")
    variables[role] = _host_tree(net.variables)
  manifest = {
      "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
      "networks": {role: {"model": json.loads(json.dumps(net.model)), "dtype": net.dtype,
                          "source": json.loads(json.dumps(net.source))}
                   for role, net in networks.items()},
      "variables_sha256": variables_digest(variables),
      "written_by": f"nhp_jax {__version__}",
  }
  payload = serialization.msgpack_serialize(variables)
  with atomic.atomic_path(path) as tmp:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
      for name, data in ((MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode()),
                         (VARIABLES, payload)):
        z.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), data)
  return manifest


def _describe_start(path: str) -> str:
  with open(path, "rb") as f:
    head = f.read(8)
  if not head:
    return "an empty file"
  if head.startswith(b"PK\x03\x04"):
    return "a truncated or damaged zip archive (no readable central directory at its end)"
  return f"a file that is not a zip archive (it starts {head!r})"


def _open(path: str) -> zipfile.ZipFile:
  if os.path.isdir(path):
    raise ModelFileError(f"{path}: expected a model file, found a folder")
  if not os.path.isfile(path):
    raise ModelFileError(f"{path}: model file not found")
  try:
    return zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError, EOFError):
    raise ModelFileError(f"{path}: expected an nhp_jax model file (a zip archive written by "
                         f"experiments.export_model), found {_describe_start(path)}") from None


def _member(z: zipfile.ZipFile, path: str, name: str) -> bytes:
  names = z.namelist()
  if name not in names:
    raise ModelFileError(f"{path}: expected an nhp_jax model file with member {name}, found "
                         f"members {names[:6]}")
  try:
    return z.read(name)
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # CRC mismatch, truncation
    raise ModelFileError(f"{path}: member {name} is damaged ({e})") from None


def _require(manifest: Mapping, key: str, kind: type | tuple[type, ...], path: str,
             where: str = "manifest") -> Any:
  if key not in manifest:
    raise ModelFileError(f"{path}: {where}: expected key {key!r}, found keys "
                         f"{sorted(manifest)}")
  value = manifest[key]
  if not isinstance(value, kind) or isinstance(value, bool):
    names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
    raise ModelFileError(f"{path}: {where}: expected {key!r} to be a {names}, found "
                         f"{type(value).__name__} {value!r}"[:300])
  return value


def _check_manifest(manifest: Any, path: str) -> dict:
  """The manifest, validated: format, version, kind, networks and digest (ModelFileError)."""
  if not isinstance(manifest, dict):
    raise ModelFileError(f"{path}: {MANIFEST}: expected a JSON object, found "
                         f"{type(manifest).__name__}")
  fmt = _require(manifest, "format", str, path)
  if fmt != FORMAT:
    raise ModelFileError(f"{path}: expected format {FORMAT!r}, found {fmt!r}")
  version = _require(manifest, "format_version", int, path)
  if version > FORMAT_VERSION:
    raise ModelFileError(f"{path}: format version {version} is newer than this nhp_jax "
                         f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade nhp_jax")
  if version < 1:
    raise ModelFileError(f"{path}: expected format version 1..{FORMAT_VERSION}, found {version}")
  kind = _require(manifest, "kind", str, path)
  networks = _require(manifest, "networks", dict, path)
  if kind not in KINDS:
    raise ModelFileError(f"{path}: expected kind one of {', '.join(KINDS)}, found {kind!r}")
  if sorted(networks) != sorted(KINDS[kind]):
    raise ModelFileError(f"{path}: kind {kind!r} expects networks {list(KINDS[kind])}, found "
                         f"{sorted(networks)}")
  for role in KINDS[kind]:
    where = f"manifest networks.{role}"
    entry = _require(networks, role, dict, path, "manifest networks")
    model = _require(entry, "model", dict, path, where)
    _require(model, "name", str, path, where + ".model")
    _require(model, "kwargs", dict, path, where + ".model")
    dtype = _require(entry, "dtype", str, path, where)
    if dtype not in DTYPES:
      raise ModelFileError(f"{path}: {where}: expected dtype one of {', '.join(DTYPES)}, "
                           f"found {dtype!r}")
  digest = _require(manifest, "variables_sha256", str, path)
  if len(digest) != 64:
    raise ModelFileError(f"{path}: manifest: expected variables_sha256 of 64 hex digits, "
                         f"found {digest[:80]!r}")
  return manifest


def read_manifest(path: str | os.PathLike) -> dict:
  """The validated manifest of a model file, without reading its variables.

  Raises:
    ModelFileError: see the module docstring.
  """
  path = os.fspath(path)
  with _open(path) as z:
    data = _member(z, path, MANIFEST)
  try:
    manifest = json.loads(data.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ModelFileError(f"{path}: {MANIFEST}: expected JSON, found invalid text ({e})") from None
  return _check_manifest(manifest, path)


def read(path: str | os.PathLike) -> tuple[str, dict[str, Network], dict]:
  """Reads and verifies a model file.

  Args:
    path: a file written by `write`.

  Returns:
    (kind, {role: Network with numpy variables}, manifest).

  Raises:
    ModelFileError: a missing, foreign, truncated or damaged file, another
      format, a newer format version, missing manifest keys, variables whose
      roles or collections do not match the manifest, or a digest mismatch.
  """
  # pylint: disable-next=g-import-not-at-top
  from flax import serialization
  path = os.fspath(path)
  manifest = read_manifest(path)
  with _open(path) as z:
    payload = _member(z, path, VARIABLES)
  try:
    variables = serialization.msgpack_restore(payload)
  except Exception as e:  # pylint: disable=broad-except  (msgpack raises several kinds)
    raise ModelFileError(f"{path}: {VARIABLES}: expected msgpack-serialised variables, found "
                         f"undecodable bytes ({type(e).__name__}: {e})") from None
  kind = manifest["kind"]
  roles = KINDS[kind]
  if not isinstance(variables, dict) or sorted(variables) != sorted(roles):
    found = sorted(variables) if isinstance(variables, dict) else type(variables).__name__
    raise ModelFileError(f"{path}: {VARIABLES}: expected networks {list(roles)}, found {found}")
  for role in roles:
    cols = variables[role]
    if (not isinstance(cols, dict) or "params" not in cols
        or set(cols) - set(COLLECTIONS)):
      found = sorted(cols) if isinstance(cols, dict) else type(cols).__name__
      raise ModelFileError(f"{path}: {VARIABLES}: network {role}: expected collections params "
                           f"and optionally batch_stats, found {found}")
  digest = variables_digest(variables)
  if digest != manifest["variables_sha256"]:
    raise ModelFileError(f"{path}: expected variables with sha256 {manifest['variables_sha256']} "
                         f"(the manifest's), found {digest}: the file was altered or damaged")
  networks = {}
  for role in roles:
    entry = manifest["networks"][role]
    source = entry.get("source", {})
    networks[role] = Network(entry["model"], entry["dtype"], variables[role],
                             source if isinstance(source, dict) else {})
  return kind, networks, manifest
