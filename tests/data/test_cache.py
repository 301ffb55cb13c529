"""cache.py: built once, memory-mapped after, invalidated by source changes, never half-trusted."""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from nhp_jax.data import cache
from nhp_jax.data import reader
from nhp_jax.data import splits
from nhp_jax.errors import TaskFileError
from tests.data.data_fixtures import tiny_copy  # noqa: F401  (fixture)
from tests.data.data_fixtures import tiny_dataset  # noqa: F401  (fixture)
from tests.data.data_fixtures import write_release_sequence


class Killed(BaseException):
  """Stands for the process being killed (not an Exception: no handler may swallow it)."""


@pytest.fixture
def decodes(monkeypatch):
  """Counts calls of the decoder behind the cache."""
  calls = []
  real = reader.read_into

  def counting(*args, **kwargs):
    calls.append(args[1])
    return real(*args, **kwargs)

  monkeypatch.setattr(reader, "read_into", counting)
  return calls


def _entries(cache_dir) -> list[str]:
  return sorted(os.listdir(os.path.join(cache_dir, cache.SUBFOLDER)))


def _expected(root, split, subset):
  names = splits.split_sequences(split, subset, splits.splits_for_root(root))
  return reader.read_split(root, names)


def test_second_load_is_memory_mapped_and_equal(tiny_dataset, tmp_path, decodes):
  first = cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  second = cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  assert len(decodes) == 1
  assert isinstance(second.clean, np.memmap) and isinstance(second.noisy, np.memmap)
  assert not second.clean.flags.writeable
  want = _expected(tiny_dataset, "a", "train")
  for ps in (first, second):
    assert ps.sequences == want.sequences
    np.testing.assert_array_equal(ps.offsets, want.offsets)
    np.testing.assert_array_equal(ps.clean, want.clean)
    np.testing.assert_array_equal(ps.noisy, want.noisy)
  n = len(decodes)
  test = cache.load_split(tiny_dataset, "a", "test", cache_dir=tmp_path)
  assert len(decodes) == n + 1 and not set(test.sequences) & set(second.sequences)
  assert len(_entries(tmp_path)) == 2


def test_touched_png_invalidates(tiny_copy, tmp_path, decodes):
  cache.load_split(tiny_copy, "a", "test", cache_dir=tmp_path)
  old_entries = _entries(tmp_path)
  seq = splits.split_sequences("a", "test", splits.splits_for_root(tiny_copy))[0]
  path = os.path.join(tiny_copy, "hpatches", seq, "h3_noise.png")
  st = os.stat(path)
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
  cache.load_split(tiny_copy, "a", "test", cache_dir=tmp_path)
  assert len(decodes) == 2
  assert len(_entries(tmp_path)) == 1 and _entries(tmp_path) != old_entries  # old entry removed


def test_changed_png_is_seen(tiny_copy, tmp_path):
  before = cache.load_split(tiny_copy, "a", "test", cache_dir=tmp_path)
  seq = before.sequences[0]
  path = os.path.join(tiny_copy, "hpatches", seq, "ref.png")
  pixels = np.asarray(Image.open(path))
  Image.fromarray(255 - pixels).save(path)
  after = cache.load_split(tiny_copy, "a", "test", cache_dir=tmp_path)
  rows = after.sequence_slice(seq)
  np.testing.assert_array_equal(after.clean[rows, 0], 255 - np.asarray(before.clean[rows, 0]))


@pytest.mark.parametrize("damage", ["no_index", "bad_index", "other_key", "truncated_npy",
                                    "missing_npy", "wrong_shape"])
def test_damaged_entry_is_rebuilt(tiny_dataset, tmp_path, decodes, damage):
  cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  entry = os.path.join(tmp_path, cache.SUBFOLDER, _entries(tmp_path)[0])
  index = os.path.join(entry, cache.INDEX)
  if damage == "no_index":
    os.remove(index)
  elif damage == "bad_index":
    with open(index, "w") as f:
      f.write('{"key": ')
  elif damage == "other_key":
    with open(index) as f:
      data = json.load(f)
    data["key"] = "0" * 64
    with open(index, "w") as f:
      json.dump(data, f)
  elif damage == "truncated_npy":
    with open(os.path.join(entry, "noisy.npy"), "r+b") as f:
      f.truncate(1000)
  elif damage == "missing_npy":
    os.remove(os.path.join(entry, "clean.npy"))
  elif damage == "wrong_shape":
    np.save(os.path.join(entry, "clean.npy"), np.zeros((1, 16, 32, 32), np.uint8))
  ps = cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  assert len(decodes) == 2
  want = _expected(tiny_dataset, "a", "train")
  np.testing.assert_array_equal(ps.clean, want.clean)
  np.testing.assert_array_equal(ps.noisy, want.noisy)


def test_killed_build_leaves_nothing_trusted(tiny_dataset, tmp_path, monkeypatch):
  real = reader.read_into

  def dies_half_way(source, sequences, offsets, clean, noisy, workers=None):
    real(source, sequences[:1], offsets[:2], clean, noisy, workers)
    raise Killed  # as if the run were killed while decoding

  monkeypatch.setattr(reader, "read_into", dies_half_way)
  with pytest.raises(Killed):
    cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  assert _entries(tmp_path) == []  # neither an entry nor its temporary folder
  monkeypatch.setattr(reader, "read_into", real)
  ps = cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  np.testing.assert_array_equal(ps.noisy, _expected(tiny_dataset, "a", "train").noisy)


def test_temporary_leftovers_ignored_and_stale_ones_removed(tiny_dataset, tmp_path, decodes):
  folder = os.path.join(tmp_path, cache.SUBFOLDER)
  os.makedirs(folder)
  fresh = os.path.join(folder, ".x-a-train-0123.tmp-fresh")
  stale = os.path.join(folder, ".x-a-train-0123.tmp-stale")
  for d in (fresh, stale):
    os.makedirs(d)
    np.save(os.path.join(d, "clean.npy"), np.zeros(3, np.uint8))
  old = time.time() - 3 * 24 * 3600
  os.utime(stale, (old, old))
  cache.load_split(tiny_dataset, "a", "train", cache_dir=tmp_path)
  assert len(decodes) == 1
  assert os.path.isdir(fresh) and not os.path.exists(stale)


def test_default_location(tiny_copy, tmp_path, monkeypatch):
  monkeypatch.delenv("NHP_CACHE_DIR", raising=False)
  assert cache.default_cache_dir(tiny_copy) == os.path.join(tiny_copy, ".nhp_cache")
  cache.load_split(tiny_copy, "a", "test")
  assert _entries(os.path.join(tiny_copy, ".nhp_cache"))
  # The cache folder inside the root is not mistaken for a sequence.
  assert reader.open_source(tiny_copy).layout == "nhpatches"
  monkeypatch.setenv("NHP_CACHE_DIR", str(tmp_path / "env"))
  assert cache.default_cache_dir(tiny_copy) == str(tmp_path / "env")


def test_unwritable_root_falls_back_to_user_cache(tmp_path, monkeypatch):
  monkeypatch.delenv("NHP_CACHE_DIR", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  root = tmp_path / "ro"
  root.mkdir()
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  want = tmp_path / "home" / ".cache" / "nhp_jax" / "cache"
  assert cache.default_cache_dir(str(root)) == str(want)


def test_hpatches_noise_settings_are_part_of_the_key(tmp_path, decodes):
  tiles = np.random.default_rng(0).integers(0, 256, (2, 16, 65, 65), dtype=np.uint8)
  root = tmp_path / "release"
  for name in ("i_a", "v_b"):
    write_release_sequence(str(root / name), tiles)
  (root / "splits.json").write_text('{"a": {"name": "a", "test": ["i_a"], "train": ["v_b"]}}')
  first = cache.load_split(root, "a", "test", cache_dir=tmp_path / "c")
  again = cache.load_split(root, "a", "test", cache_dir=tmp_path / "c")
  other = cache.load_split(root, "a", "test", cache_dir=tmp_path / "c", noise_seed=1)
  assert len(decodes) == 2
  np.testing.assert_array_equal(first.noisy, again.noisy)
  assert not np.array_equal(first.noisy, other.noisy)
  np.testing.assert_array_equal(first.clean, other.clean)


def test_unknown_split_and_subset(tiny_dataset, tmp_path):
  # The message names the splits file the split was looked up in.
  with pytest.raises(TaskFileError, match=r"(splits\.json|vendored official splits\.json): "
                                          r"unknown split 'q'"):
    cache.load_split(tiny_dataset, "q", "train", cache_dir=tmp_path)
  with pytest.raises(TaskFileError, match="no subset 'train'"):
    cache.load_split(tiny_dataset, "full", "train", cache_dir=tmp_path)
