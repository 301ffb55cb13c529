"""Every malformed input gives one DataError naming the file, the expected and the found."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from nhp_jax.data import cache
from nhp_jax.data import reader
from nhp_jax.errors import DataError
from tests.data.data_fixtures import tiny_copy  # noqa: F401  (fixture)
from tests.data.data_fixtures import tiny_dataset  # noqa: F401  (fixture)
from tests.data.data_fixtures import write_release_sequence

SEQ = "i_coins_0"


def _stack(root: str, name: str) -> str:
  return os.path.join(root, "hpatches", SEQ, name)


def _labels(root: str) -> int:
  return reader.png_size(_stack(root, "ref.png"))[0] // 32


def _save(path, array, **kw):
  Image.fromarray(array, **kw).save(path, format="PNG")


def _missing_clean(root):
  os.remove(_stack(root, "e3.png"))
  return "e3.png", "image not found"


def _missing_noisy(root):
  os.remove(_stack(root, "h2_noise.png"))
  return "h2_noise.png", "image not found"


def _truncated(root):
  path = _stack(root, "t4.png")
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])
  return "t4.png", "truncated or corrupt"


def _not_png(root):
  Image.fromarray(np.zeros((32 * _labels(root), 32), np.uint8)).save(
      _stack(root, "e1.png"), format="JPEG")
  return "e1.png", "expected a PNG file, found a file starting"


def _text_file(root):
  with open(_stack(root, "e2.png"), "w") as f:
    f.write("hello, not an image at all, and long enough to pass a header read\n")
  return "e2.png", "expected a PNG file"


def _empty_file(root):
  open(_stack(root, "e4.png"), "wb").close()
  return "e4.png", "found an empty file"


def _sixteen_bit(root):
  _save(_stack(root, "ref.png"), np.zeros((32 * _labels(root), 32), np.uint16))
  return "ref.png", "expected an 8-bit greyscale PNG, found 16-bit greyscale"


def _rgb(root):
  _save(_stack(root, "h1.png"), np.zeros((32 * _labels(root), 32, 3), np.uint8))
  return "h1.png", "found 8-bit RGB"


def _rgba(root):
  _save(_stack(root, "h3.png"), np.zeros((32 * _labels(root), 32, 4), np.uint8))
  return "h3.png", "found 8-bit RGBA"


def _palette(root):
  Image.fromarray(np.zeros((32 * _labels(root), 32), np.uint8)).convert("P").save(
      _stack(root, "h4.png"))
  return "h4.png", "found 8-bit palette"


def _one_bit(root):
  Image.fromarray(np.zeros((32 * _labels(root), 32), np.uint8)).convert("1").save(
      _stack(root, "h5.png"))
  return "h5.png", "found 1-bit greyscale"


def _grey_alpha(root):
  Image.fromarray(np.zeros((32 * _labels(root), 32, 2), np.uint8), mode="LA").save(
      _stack(root, "t1.png"))
  return "t1.png", "found 8-bit greyscale\\+alpha"


def _wrong_width(root):
  _save(_stack(root, "t2.png"), np.zeros((33 * _labels(root), 33), np.uint8))
  return "t2.png", "expected a 32 px wide stack .* found an image 33 px wide"


def _height_not_multiple(root):
  _save(_stack(root, "t3.png"), np.zeros((32 * _labels(root) + 5, 32), np.uint8))
  return "t3.png", "expected a height that is a multiple of 32 .*found height \\d+"


def _fewer_patches(root):
  _save(_stack(root, "e5.png"), np.zeros((32 * (_labels(root) - 1), 32), np.uint8))
  return "e5.png", "expected \\d+ patches \\(as in ref.png\\), found"


def _noisy_count_differs(root):
  _save(_stack(root, "t5_noise.png"), np.zeros((32 * (_labels(root) + 1), 32), np.uint8))
  return "t5_noise.png", "expected \\d+ patches \\(as in ref.png\\), found"


CASES = [_missing_clean, _missing_noisy, _truncated, _not_png, _text_file, _empty_file,
         _sixteen_bit, _rgb, _rgba, _palette, _one_bit, _grey_alpha, _wrong_width,
         _height_not_multiple, _fewer_patches, _noisy_count_differs]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__[1:] for c in CASES])
def test_bad_file_names_file_and_problem(tiny_copy, corrupt):
  name, message = corrupt(tiny_copy)
  with pytest.raises(DataError, match=message) as e:
    reader.read_split(tiny_copy, [SEQ, "v_coins_0"])
  assert os.path.join(SEQ, name) in str(e.value)
  # The cached path reports the same error and leaves no cache entry behind.
  with pytest.raises(DataError, match=message):
    cache.load_split(tiny_copy, "full", "test", cache_dir=os.path.join(tiny_copy, "c"))
  entries = os.path.join(tiny_copy, "c", cache.SUBFOLDER)
  assert not os.path.isdir(entries) or not os.listdir(entries)


def test_unknown_sequences_in_split(tiny_dataset):
  with pytest.raises(DataError, match=r"not found for 2 of 3 listed sequences: i_nowhere, v_gone"):
    reader.read_split(tiny_dataset, ["i_nowhere", SEQ, "v_gone"])


def test_unknown_sequences_in_splits_file(tiny_copy):
  with open(os.path.join(tiny_copy, "splits.json"), "w") as f:
    f.write('{"a": {"name": "a", "test": ["i_coins_0"], "train": ["v_nowhere"]}}')
  splits = os.path.join(tiny_copy, "splits.json")
  with pytest.raises(DataError, match=rf"listed sequences \(split 'a' train of "
                     rf"{re.escape(splits)}\): v_nowhere"):
    cache.load_split(tiny_copy, "a", "train", cache_dir=os.path.join(tiny_copy, "c"))
  os.remove(splits)   # the official splits then: name them, and that the root has none
  with pytest.raises(DataError, match=r"\(split 'a' test of the vendored official "
                     r"splits.json: .* has no splits.json\)"):
    cache.load_split(tiny_copy, "a", "test", cache_dir=os.path.join(tiny_copy, "c"))


def test_empty_and_duplicated_lists(tiny_dataset):
  with pytest.raises(DataError, match="non-empty list of sequences"):
    reader.read_split(tiny_dataset, [])
  with pytest.raises(DataError, match="more than once"):
    reader.read_split(tiny_dataset, [SEQ, SEQ])


def test_missing_sequence_folder_in_read_sequence(tmp_path):
  with pytest.raises(DataError, match="sequence folder not found"):
    reader.read_sequence(tmp_path / "i_missing")


def test_missing_root_and_empty_root(tmp_path):
  with pytest.raises(DataError, match="data folder not found"):
    reader.read_split(tmp_path / "nowhere", [SEQ])
  with pytest.raises(DataError, match="expected sequence folders <seq>/ref.png, found none"):
    reader.read_split(tmp_path, [SEQ])


def test_hpatches_release_wrong_width(tmp_path):
  tiles = np.zeros((2, 16, 65, 65), np.uint8)
  write_release_sequence(str(tmp_path / "i_a"), tiles)
  write_release_sequence(str(tmp_path / "i_b"), tiles[..., :64, :64])
  message = "expected a 65 px wide stack .*found an image 64 px wide"
  with pytest.raises(DataError, match=message) as e:
    reader.read_split(tmp_path, ["i_a", "i_b"])
  assert os.path.join("i_b", "ref.png") in str(e.value)


def test_root_of_unknown_width(tmp_path):
  write_release_sequence(str(tmp_path / "i_a"), np.zeros((2, 16, 40, 40), np.uint8))
  with pytest.raises(DataError, match="32 px wide .* or 65 px wide .* found width 40"):
    reader.open_source(tmp_path)


def test_folder_instead_of_image(tiny_copy):
  path = _stack(tiny_copy, "e1.png")
  os.remove(path)
  os.mkdir(path)
  with pytest.raises(DataError, match="found a folder"):
    reader.read_split(tiny_copy, [SEQ])


def test_missing_noise_file_in_read_sequence(tiny_copy):
  os.remove(_stack(tiny_copy, "ref_noise.png"))
  with pytest.raises(DataError, match="ref_noise.png: image not found"):
    reader.read_sequence(os.path.join(tiny_copy, "hpatches", SEQ))
