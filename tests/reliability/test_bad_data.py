"""Bad data beyond tests/data/test_bad_input.py and the CSV tests of tests/evaluation: a seeded
fuzz (random byte damage to valid PNGs, task CSVs and descriptor CSVs) in which every failure
must be one NhpError naming the file, never another exception; plus the explicit cases the
other suites lack."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from nhp_jax import errors
from nhp_jax.data import layout, reader
from nhp_jax.evaluation import descriptor_io, task_files, types

SEQ = "i_fuzz"
LABELS = 3
FUZZ_CASES = 40


def _write_sequence(seq_dir, seed=0):
  rng = np.random.default_rng(seed)
  os.makedirs(seq_dir)
  for tp in layout.IMAGE_TYPES:
    for suffix in ("", layout.NOISE_SUFFIX):
      stack = rng.integers(0, 256, (LABELS * 32, 32), dtype=np.uint8)
      Image.fromarray(stack).save(os.path.join(seq_dir, f"{tp}{suffix}.png"))


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
  root = tmp_path_factory.mktemp("fuzz") / "data"
  _write_sequence(str(root / "hpatches" / SEQ))
  return str(root)


def _damage(data: bytes, rng: np.random.Generator) -> bytes:
  """One random kind of damage: flipped bytes, a cut, a hole, inserted or repeated bytes."""
  data = bytearray(data)
  kind = rng.integers(6)
  at = int(rng.integers(0, len(data)))
  if kind == 0:
    for i in rng.integers(0, len(data), int(rng.integers(1, 9))):
      data[i] ^= int(rng.integers(1, 256))
  elif kind == 1:
    del data[at:]
  elif kind == 2:
    del data[at:at + int(rng.integers(1, 64))]
  elif kind == 3:
    data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
  elif kind == 4:
    data[at:at + 16] = bytes(16)
  else:
    data[at:at] = data[max(0, at - 50):at]
  return bytes(data)


def _check_outcome(fn, path):
  """fn() either succeeds or raises one NhpError whose message names `path`."""
  try:
    return fn()
  except errors.NhpError as e:
    assert str(path) in str(e), f"{type(e).__name__} without the file: {e}"
    return e
  except Exception as e:  # pylint: disable=broad-except
    pytest.fail(f"{type(e).__name__} instead of an NhpError for {path}: {e!r}")


@pytest.mark.parametrize("case", range(FUZZ_CASES))
def test_png_fuzz(clean_root, tmp_path, case):
  rng = np.random.default_rng(case)
  root = str(tmp_path / "data")
  shutil.copytree(clean_root, root)
  seq_dir = os.path.join(root, "hpatches", SEQ)
  name = sorted(os.listdir(seq_dir))[int(rng.integers(32))]
  path = os.path.join(seq_dir, name)
  with open(path, "rb") as f:
    damaged = _damage(f.read(), rng)
  with open(path, "wb") as f:
    f.write(damaged)
  out = _check_outcome(lambda: reader.read_split(root, [SEQ]), path)
  if not isinstance(out, errors.NhpError):
    assert out.clean.shape == out.noisy.shape == (LABELS, 16, 32, 32)


def _png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
  import zlib  # pylint: disable=g-import-not-at-top
  crc = zlib.crc32(kind + body) if crc is None else crc
  return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


def _grey_png(rows: bytes, height: int, *, ihdr_crc: int | None = None) -> bytes:
  ihdr = (32).to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
  return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr, ihdr_crc) +
          _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize("name, content, message", [
    ("e1.png", lambda h: _grey_png(b"not zlib at all", h), "truncated or corrupt"),
    ("e2.png", lambda h: _grey_png(__import__("zlib").compress(bytes(10)), h),
     "truncated or corrupt"),
    ("e3.png", lambda h: _grey_png(__import__("zlib").compress(bytes(33 * h)), h, ihdr_crc=7),
     "truncated or corrupt"),
    ("ref_noise.png", lambda h: _grey_png(__import__("zlib").compress(bytes(33 * h)), h + 32),
     r"expected \d+ patches \(as in ref.png\), found 4"),
])
def test_handmade_pngs(clean_root, tmp_path, name, content, message):
  """Valid headers over bad pixel data: an IDAT that is not zlib, too short, a bad CRC."""
  root = str(tmp_path / "data")
  shutil.copytree(clean_root, root)
  path = os.path.join(root, "hpatches", SEQ, name)
  with open(path, "wb") as f:
    f.write(content(LABELS * 32))
  with pytest.raises(errors.DataError, match=message) as info:
    reader.read_split(root, [SEQ])
  assert path in str(info.value)


# --- task CSVs -----------------------------------------------------------------

SEQUENCES, COUNTS = ["i_a", "v_b", "i_c"], [6, 11, 4]


def _pair_text():
  pairs = task_files.generate_verification(COUNTS, 30).positives
  return task_files.pair_file_text(pairs, SEQUENCES).encode()


def _retrieval_text():
  rows = np.array([[s, i] for s, n in enumerate(COUNTS) for i in range(0, n, 2)])
  return task_files.retrieval_file_text(rows, SEQUENCES).encode()


@pytest.mark.parametrize("case", range(FUZZ_CASES))
def test_task_csv_fuzz(tmp_path, case):
  rng = np.random.default_rng(1000 + case)
  pairs = rng.integers(2) == 0
  path = tmp_path / ("verif_pos_split-a.csv" if pairs else "retr_queries_split-a.csv")
  path.write_bytes(_damage(_pair_text() if pairs else _retrieval_text(), rng))
  read = task_files.read_pair_file if pairs else task_files.read_retrieval_file
  _check_outcome(lambda: read(path, SEQUENCES, COUNTS), path)


@pytest.mark.parametrize("content, match", [
    (b"\xef\xbb\xbfs,idx\ni_a,1\n", None),   # a spreadsheet's byte-order mark: read as usual
    (b"s,idx\ni_a,nan\n", r"line 2: expected an integer in column 'idx', found 'nan'"),
    (b"s,idx\ni_a,1.5\n", r"line 2: expected an integer in column 'idx', found '1.5'"),
    (b"s,idx\ni_a,1\nv_b,3\ni_a,1\n", r"line 4: patch \(i_a, 1\) repeats line 2"),
    (b"s,idx\n\x00\x01\x02,1\n", r"line 2: column 's' names sequence"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", r"line 1: expected header s,idx"),
    (b"s;idx\ni_a;1\n", r"line 1: expected header s,idx, found s;idx"),
    (b"s,idx,extra\ni_a,1,2\n", r"line 1: expected header s,idx, found s,idx,extra"),
    (b"s,idx\ni_a\n", r"line 2: expected 2 comma-separated columns"),
    (b"s,idx\ni_a,99999999999999999999\n", r"expected an integer in column 'idx'|64-bit"),
])
def test_retrieval_file_cases(tmp_path, content, match):
  path = tmp_path / "retr_queries_split-a.csv"
  path.write_bytes(content)
  if match is None:
    assert task_files.read_retrieval_file(path, SEQUENCES, COUNTS).tolist() == [[0, 1]]
    return
  with pytest.raises(errors.TaskFileError, match=match) as info:
    task_files.read_retrieval_file(path, SEQUENCES, COUNTS)
  assert str(path) in str(info.value)


# --- descriptor CSVs -------------------------------------------------------------

def _descriptor_folder(root, counts=(4, 3), dim=5, seed=0):
  rng = np.random.default_rng(seed)
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  names = tuple(f"i_s{i}" for i in range(len(counts)))
  values = rng.standard_normal((int(offsets[-1]), 16, dim)).astype(np.float32)
  descriptor_io.write_descriptor_folder(types.DescriptorSet(names, offsets, values), root)
  return names


@pytest.mark.parametrize("case", range(FUZZ_CASES))
def test_descriptor_csv_fuzz(tmp_path, case):
  rng = np.random.default_rng(2000 + case)
  root = tmp_path / "descs"
  names = _descriptor_folder(root)
  path = root / names[int(rng.integers(2))] / f"{layout.IMAGE_TYPES[int(rng.integers(16))]}.csv"
  path.write_bytes(_damage(path.read_bytes(), rng))
  _check_outcome(lambda: descriptor_io.read_descriptor_folder(root, names), path)


@pytest.mark.parametrize("content, match", [
    (b"\xef\xbb\xbf1,2,3,4,5\n", r"line 1, column 1: expected a number, found '\\ufeff1'"),
    (b"d0,d1,d2,d3,d4\n1,2,3,4,5\n", r"line 1, column 1: expected a number, found 'd0'"),
    (b"1,2,3,4,5\n1,2,\x00,4,5\n", r"line 2, column 3: expected a number"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"expected a number|expected descriptor values"),
    (b"1,2,3,4,NaN\n", r"line 1, column 5: expected a finite number, found nan"),
    (b"1,2,3,4,1e999\n", r"line 1, column 5: expected a finite number, found inf"),
    (b"\n\n  \n", r"found an empty file"),
])
def test_descriptor_file_cases(tmp_path, content, match):
  path = tmp_path / "ref.csv"
  path.write_bytes(content)
  with pytest.raises(errors.DescriptorError, match=match) as info:
    descriptor_io.read_descriptor_file(path)
  assert str(path) in str(info.value)


def test_descriptor_folder_with_a_sequence_listed_twice(tmp_path):
  names = _descriptor_folder(tmp_path / "descs")
  with pytest.raises(errors.DescriptorError, match=r"expected distinct sequences to read, found "
                                                   r"i_s1 more than once"):
    descriptor_io.read_descriptor_folder(tmp_path / "descs", names + names[1:])
