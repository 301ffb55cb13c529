"""Survey: `experiments.evaluate` on damaged copies of an HPatches-style folder.

Not collected by pytest (minutes: one evaluate process per damage). Makes a
copy of the embedded smoke dataset per kind of damage, scores it with a
classical descriptor (no model needed) and prints, per damage, the exit
status, whether a traceback was printed, whether the error line names the
damaged file, and that line. Every row should read "2 no yes".

  python -m tests.reliability.survey_damaged_data [--out=DIR]
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _png_header_only(rows: int, width: int = 32) -> bytes:
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  ihdr = struct.pack(">IIBBBBB", width, rows, 8, 0, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 33))


def damages(seq: str, other: str):
  """(name, the file it damages relative to the root, fn(root)) for each kind of damage."""
  def write(rel, data):
    def fn(root):
      with open(os.path.join(root, rel), "wb") as f:
        f.write(data)
    return fn

  def remove(rel):
    return lambda root: os.remove(os.path.join(root, rel))

  def image(rel, array):
    return lambda root: Image.fromarray(array).save(os.path.join(root, rel))

  def truncate(rel):
    def fn(root):
      path = os.path.join(root, rel)
      with open(path, "rb") as f:
        data = f.read()
      with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    return fn

  def splits(edit):
    def fn(root):
      path = os.path.join(root, "splits.json")
      with open(path) as f:
        doc = json.load(f)
      with open(path, "w") as f:
        f.write(edit(doc) if callable(edit) else edit)
    return fn

  ref = f"hpatches/{seq}/ref.png"
  e3 = f"hpatches/{seq}/e3.png"
  with_missing = lambda d: json.dumps(  # noqa: E731
      {k: dict(v, test=v["test"] + ["v_nowhere"]) for k, v in d.items()})
  return [
      ("ref.png missing", ref, remove(ref)),
      ("e3.png missing", e3, remove(e3)),
      ("truncated PNG", e3, truncate(e3)),
      ("empty PNG", e3, write(e3, b"")),
      ("text, not a PNG", e3, write(e3, b"hello, world\n")),
      ("header declares 10 million rows", e3, write(e3, _png_header_only(10_000_000))),
      ("rows not a multiple of the patch size", e3, image(e3, np.zeros((100, 32), np.uint8))),
      ("fewer patches than ref", e3, image(e3, np.zeros((32, 32), np.uint8))),
      ("RGB, not grey", e3, image(e3, np.zeros((64, 32, 3), np.uint8))),
      ("16-bit grey", e3, image(e3, np.zeros((64, 32), np.uint16))),
      ("width 40", e3, image(e3, np.zeros((80, 40), np.uint8))),
      ("bad IHDR CRC", e3, write(e3, _png_header_only(64)[:29] + b"\0\0\0\0"
                                 + _png_header_only(64)[33:])),
      ("splits.json missing", "splits.json", remove("splits.json")),
      ("splits.json not JSON", "splits.json", splits("{not json")),
      ("split a missing", "splits.json", splits(lambda d: json.dumps(
          {k: v for k, v in d.items() if k != "a"}))),
      ("test sequence not on disk", "splits.json", splits(with_missing)),
      ("sequence folder is a file", f"hpatches/{other}", lambda root: (
          shutil.rmtree(os.path.join(root, "hpatches", other)),
          open(os.path.join(root, "hpatches", other), "w").close())),
      ("empty sequence folder", f"hpatches/{other}", lambda root: [
          os.remove(os.path.join(root, "hpatches", other, f))
          for f in os.listdir(os.path.join(root, "hpatches", other))]),
  ]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=None, help="where the damaged copies go (default: a "
                      "temporary folder, removed afterwards)")
  args = parser.parse_args()
  sys.path.insert(0, REPO)
  from nhp_jax.data import embedded  # pylint: disable=import-outside-toplevel
  from nhp_jax.data import splits as splits_lib  # pylint: disable=import-outside-toplevel
  source = embedded.ensure_embedded(size="smoke")
  test = splits_lib.split_sequences("a", "test", splits_lib.load_splits(
      os.path.join(source, "splits.json")))
  out = args.out or tempfile.mkdtemp(prefix="damaged_")
  rows, good = [], 0
  for i, (name, rel, damage) in enumerate(damages(test[0], test[-1])):
    root = os.path.join(out, f"case{i:02d}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".nhp_cache"))
    damage(root)
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--data_dir={root}", "--classical=raw",
         "--n_pairs=1000", f"--json_out={os.path.join(root, 'out.json')}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, JAX_PLATFORMS="cpu"))
    errors = [l for l in proc.stderr.splitlines() if ": error: " in l]
    line = errors[-1] if errors else (proc.stderr.strip().splitlines() or [""])[-1]
    names = os.path.basename(rel) in line
    traceback = "Traceback" in proc.stderr
    ok = proc.returncode == 2 and not traceback and names and len(errors) == 1
    good += ok
    rows.append((name, proc.returncode, traceback, names, line[:160]))
    print(f"{name:40s} {proc.returncode:3d} {'yes' if traceback else 'no ':3s} "
          f"{'yes' if names else 'no ':3s} {line[:160]}", flush=True)
  print(f"{good} of {len(rows)} damages: exit status 2, one line naming the file, no traceback")
  if not args.out:
    shutil.rmtree(out, ignore_errors=True)
  return 0 if good == len(rows) else 1


if __name__ == "__main__":
  sys.exit(main())
