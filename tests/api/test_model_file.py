"""The model file: bitwise round trips, bad or foreign files fail naming the file; the binary."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import nhp_jax
from nhp_jax import model_file
from nhp_jax.evaluation import describe


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def patches():
  return np.random.default_rng(5).integers(0, 256, (6, 32, 32), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["pair", "joint", "descriptor"])
def test_round_trip_is_bitwise(models, model_files, patches, kind):
  from_workdir = models[kind]
  loaded = nhp_jax.load(model_files[kind])
  assert loaded.kind == kind and loaded.source == str(model_files[kind])
  assert loaded.digest == from_workdir.digest
  np.testing.assert_array_equal(loaded.describe(patches), from_workdir.describe(patches))
  np.testing.assert_array_equal(loaded.describe(patches, denoise=False),
                                from_workdir.describe(patches, denoise=False))
  if loaded.has_denoiser:
    np.testing.assert_array_equal(loaded.denoise(patches), from_workdir.denoise(patches))
  for role, net in loaded.networks.items():   # exactly the checkpoint's arrays, and config
    restored = describe.restore(net.source["workdir"])
    assert net.model == restored.config.model.to_dict() and net.dtype == "float32"
    assert model_file.variables_digest({role: net.variables}) == model_file.variables_digest(
        {role: from_workdir.networks[role].variables})
    assert net.source["step"] == restored.step == 3


def test_compute_dtype_travels_with_the_model(models, tmp_path, patches):
  """A bfloat16 run is rebuilt computing in bfloat16 (its manifest dtype), not float32."""
  from tests.api import workdirs  # pylint: disable=g-import-not-at-top
  _, des, _ = workdirs.configs()
  des.dtype = "bfloat16"
  workdirs.save_workdir(tmp_path / "bf16", des, seed=4)   # the descriptor fixture's values
  from_workdir = nhp_jax.load(tmp_path / "bf16")
  from_workdir.export(tmp_path / "bf16.nhp")
  loaded = nhp_jax.load(tmp_path / "bf16.nhp")
  assert loaded.networks["descriptor"].dtype == "bfloat16"
  assert loaded.digest == models["descriptor"].digest     # the same float32 parameters
  got = loaded.describe(patches)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, from_workdir.describe(patches))
  in_float32 = models["descriptor"].describe(patches)
  assert np.abs(got - in_float32).max() > 1e-3            # ... computed in bfloat16
  np.testing.assert_allclose(got, in_float32, atol=0.1 * np.abs(in_float32).max())


def test_manifest_and_reproducible_bytes(models, model_files, tmp_path):
  manifest = model_file.read_manifest(model_files["pair"])
  assert manifest["format"] == "nhp_jax.model" and manifest["format_version"] == 1
  assert manifest["kind"] == "pair" and list(manifest["networks"]) == ["denoiser", "descriptor"]
  assert manifest["networks"]["denoiser"]["model"]["name"] == "unet_shallow"
  assert manifest["variables_sha256"] == models["pair"].digest
  again = tmp_path / "again.nhp"
  models["pair"].export(again)
  assert again.read_bytes() == model_files["pair"].read_bytes()
  with zipfile.ZipFile(again) as z:
    assert z.namelist() == ["manifest.json", "variables.msgpack"]


def test_digest_binds_values_to_paths():
  a = {"x": {"params": {"k": np.zeros(3, np.float32), "b": np.ones(3, np.float32)}}}
  swapped = {"x": {"params": {"k": np.ones(3, np.float32), "b": np.zeros(3, np.float32)}}}
  assert model_file.variables_digest(a) != model_file.variables_digest(swapped)
  other_dtype = {"x": {"params": {"k": np.zeros(3, np.float64)[:3].astype(np.float32),
                                  "b": np.ones(3, np.float16)}}}
  assert model_file.variables_digest(a) != model_file.variables_digest(other_dtype)


def _rewrite(src, dst, manifest=None, variables=None, drop=()):
  """A copy of model file `src` with the manifest edited / variables replaced / members dropped."""
  with zipfile.ZipFile(src) as z:
    members = {name: z.read(name) for name in z.namelist()}
  if manifest is not None:
    m = json.loads(members["manifest.json"])
    manifest(m)
    members["manifest.json"] = json.dumps(m).encode()
  if variables is not None:
    members["variables.msgpack"] = variables
  with zipfile.ZipFile(dst, "w") as z:
    for name, data in members.items():
      if name not in drop:
        z.writestr(name, data)
  return dst


def _altered_variables(src):
  from flax import serialization  # pylint: disable=g-import-not-at-top
  with zipfile.ZipFile(src) as z:
    v = serialization.msgpack_restore(z.read("variables.msgpack"))
  leaf = v["descriptor"]["params"]
  key = sorted(leaf)[0]
  leaf[key] = {k: a + np.float32(1e-3) for k, a in leaf[key].items()}
  return serialization.msgpack_serialize(v)


def _bytes(dst, data):
  dst.write_bytes(data)
  return dst


def _set(path, value):
  def edit(m):
    d = m
    for k in path[:-1]:
      d = d[k]
    if value is KeyError:
      del d[path[-1]]
    else:
      d[path[-1]] = value
  return edit


BAD_FILES = {
    "empty": (lambda src, dst: _bytes(dst, b""), ["found an empty file"]),
    "foreign": (lambda src, dst: _bytes(dst, b"\x89PNG\r\n\x1a\nxxxx"),
                ["expected an nhp_jax model file", "not a zip archive", "PNG"]),
    "truncated": (lambda src, dst: _bytes(dst, src.read_bytes()[:100_000]),
                  ["truncated or damaged zip archive"]),
    "flipped_byte": (lambda src, dst: _bytes(dst, (lambda b: b[:-5000] + bytes([b[-5000] ^ 0xFF])
                                                   + b[-4999:])(src.read_bytes())),
                     ["variables.msgpack is damaged", "CRC"]),
    "wrong_format": (lambda src, dst: _rewrite(src, dst, _set(["format"], "kornia.model")),
                     ["expected format 'nhp_jax.model', found 'kornia.model'"]),
    "newer_version": (lambda src, dst: _rewrite(src, dst, _set(["format_version"], 2)),
                      ["format version 2 is newer", "up to 1", "upgrade nhp_jax"]),
    "no_kind": (lambda src, dst: _rewrite(src, dst, _set(["kind"], KeyError)),
                ["expected key 'kind'"]),
    "no_digest": (lambda src, dst: _rewrite(src, dst, _set(["variables_sha256"], KeyError)),
                  ["expected key 'variables_sha256'"]),
    "no_model_section": (lambda src, dst: _rewrite(
        src, dst, _set(["networks", "descriptor", "model"], KeyError)),
        ["networks.descriptor", "expected key 'model'"]),
    "unknown_kind": (lambda src, dst: _rewrite(src, dst, _set(["kind"], "triple")),
                     ["expected kind one of pair, joint, descriptor, found 'triple'"]),
    "roles_mismatch": (lambda src, dst: _rewrite(src, dst, _set(["kind"], "joint")),
                       ["kind 'joint' expects networks ['joint']"]),
    "no_variables": (lambda src, dst: _rewrite(src, dst, drop=("variables.msgpack",)),
                     ["expected an nhp_jax model file with member variables.msgpack"]),
    "no_manifest": (lambda src, dst: _rewrite(src, dst, drop=("manifest.json",)),
                    ["with member manifest.json"]),
    "digest_mismatch": (lambda src, dst: _rewrite(src, dst, variables=_altered_variables(src)),
                        ["(the manifest's), found", "altered or damaged"]),
    "undecodable": (lambda src, dst: _rewrite(src, dst, variables=b"\xc1\xc1\xc1"),
                    ["expected msgpack-serialised variables"]),
    "wrong_model": (lambda src, dst: _rewrite(src, dst, _set(
        ["networks", "denoiser", "model", "name"], "dncnn")),
        ["network denoiser: the variables do not fit its model 'dncnn'", "differences"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_fail_naming_the_file(model_files, tmp_path, case):
  make, parts = BAD_FILES[case]
  bad = make(model_files["pair"], tmp_path / f"{case}.nhp")
  with pytest.raises(model_file.ModelFileError) as excinfo:
    nhp_jax.load(bad)
  message = str(excinfo.value)
  assert message.startswith(str(bad)) and "\n" not in message, message
  for part in parts:
    assert part in message, (part, message)
  assert isinstance(excinfo.value, ValueError) and isinstance(excinfo.value, nhp_jax.ModelFileError)


def test_writing_replaces_atomically(models, tmp_path):
  path = tmp_path / "model"
  path.write_bytes(b"old")
  models["descriptor"].export(path)
  assert nhp_jax.load(path).kind == "descriptor"
  assert sorted(os.listdir(tmp_path)) == ["model"]   # no temporary left behind
  with pytest.raises(model_file.ModelFileError, match="expected a model file path to write, "
                     "found a folder"):
    models["descriptor"].export(tmp_path)


def _export(*args):
  return subprocess.run([sys.executable, "-m", "experiments.export_model", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_export_binary(workdir_paths, models, tmp_path, patches):
  out = tmp_path / "joint.nhp"
  proc = _export(f"--workdir={workdir_paths['joint']}", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().startswith(f"wrote {out}: kind joint, joint (step 3), sha256 ")
  loaded = nhp_jax.load(out)
  np.testing.assert_array_equal(loaded.describe(patches), models["joint"].describe(patches))
  # Bad input: one line on stderr, status 2, no traceback; nothing written.
  for args, parts in (
      ([f"--out={tmp_path / 'x'}"], ["--workdir: expected a run folder", "found no flag"]),
      ([f"--workdir={workdir_paths['joint']}"], ["--out: expected the model file to write"]),
      ([f"--workdir={tmp_path / 'nope'}", f"--out={tmp_path / 'x'}"],
       ["--workdir=", "found nothing there"]),
      ([f"--workdir={out}", f"--out={tmp_path / 'x'}"], ["found a file there"]),
      ([f"--workdir={workdir_paths['joint']}", f"--out={out}"],
       ["found an existing file (pass --overwrite"]),
      ([f"--workdir={workdir_paths['joint']}", f"--out={tmp_path}"], ["found a folder"]),
      ([f"--workdir={workdir_paths['joint']}", f"--out={tmp_path / 'x'}", "--step=first"],
       ["--step: expected best, latest or a step number, found 'first'"]),
      (["--no_such_flag"], ["Unknown command line flag 'no_such_flag'"]),
      ([f"--workdir={tmp_path}", f"--out={tmp_path / 'x'}"],
       ["CheckpointError", "expected an exported model file, a run folder"]),
      ([f"--workdir={workdir_paths['pair'] / 'denoiser'}", f"--out={tmp_path / 'x'}"],
       ["found a denoiser workdir"]),
  ):
    proc = _export(*args)
    errors_lines = [l for l in proc.stderr.splitlines() if "export_model: error:" in l]
    assert proc.returncode == 2, (args, proc.stderr[-2000:])
    assert len(errors_lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
    for part in parts:
      assert part in errors_lines[0], (part, errors_lines[0])
  assert not (tmp_path / "x").exists()
  proc = _export(f"--workdir={workdir_paths['pair']}", f"--out={out}", "--overwrite",
                 "--step=latest")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert nhp_jax.load(out).kind == "pair"
