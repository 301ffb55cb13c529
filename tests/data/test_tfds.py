"""tfds_nhpatches.py: the builder on the embedded smoke set and on manual dirs of both layouts."""

import json
import os

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from nhp_jax.data import cache  # noqa: E402
from nhp_jax.data import embedded  # noqa: E402
from nhp_jax.data import generator  # noqa: E402
from nhp_jax.data import tfds_nhpatches  # noqa: E402,F401  (registers the builder)
from tests.data.data_fixtures import real_tiles  # noqa: E402
from tests.data.data_fixtures import tiny_dataset  # noqa: E402,F401  (fixture)
from tests.data.data_fixtures import write_release_sequence  # noqa: E402


def _manual(path):
  return {"download_config": tfds.download.DownloadConfig(manual_dir=str(path))}


def _check_against_reader(ds, root, subset, split="a"):
  """Every example equals the reader's arrays for its label, and all labels are present."""
  want = cache.load_split(root, split, subset, cache_dir=os.path.join(str(root), "..", "cache"))
  seen = set()
  for ex in tfds.as_numpy(ds):
    label = int(ex["label"])
    seen.add(label)
    s = want.sequence_of_label()[label]
    assert ex["sequence"].decode() == want.sequences[s]
    assert int(ex["row"]) == label - want.offsets[s]
    np.testing.assert_array_equal(ex["clean"][..., 0], want.clean[label])
    np.testing.assert_array_equal(ex["noisy"][..., 0], want.noisy[label])
    assert ex["clean"].shape == (16, 32, 32, 1) and ex["clean"].dtype == np.uint8
  assert seen == set(range(want.num_labels))


def test_embedded_smoke(tmp_path, monkeypatch):
  monkeypatch.setenv("NHP_DATA_HOME", str(tmp_path / "home"))
  ds, info = tfds.load("nhpatches/embedded_smoke", data_dir=str(tmp_path / "tfds"), split="test",
                       with_info=True)
  root = embedded.embedded_data_dir("smoke")
  assert root.startswith(str(tmp_path / "home")) and generator.is_complete(root)
  _check_against_reader(ds, root, "test")
  assert info.splits["train"].num_examples == cache.load_split(
      root, "a", "train", cache_dir=str(tmp_path / "c")).num_labels


def test_embedded_config_reads_a_generated_manual_dir(tiny_dataset, tmp_path):
  ds = tfds.load("nhpatches/embedded", data_dir=str(tmp_path / "tfds"), split="train",
                 download_and_prepare_kwargs=_manual(tiny_dataset))
  _check_against_reader(ds, tiny_dataset, "train")


def test_nhpatches_manual_dir(tiny_dataset, tmp_path):
  ds = tfds.load("nhpatches/nhpatches", data_dir=str(tmp_path / "tfds"), split="test",
                 download_and_prepare_kwargs=_manual(tiny_dataset))
  _check_against_reader(ds, tiny_dataset, "test")


def test_hpatches_manual_dir_with_real_patches(tmp_path):
  tiles = real_tiles()
  root = tmp_path / "manual" / "hpatches-release"
  write_release_sequence(str(root / "i_real"), tiles[:3])
  write_release_sequence(str(root / "v_real"), tiles[3:])
  (root / "splits.json").write_text(json.dumps(
      {"a": {"name": "a", "test": ["v_real"], "train": ["i_real"]}}))
  builder = tfds.builder("nhpatches/hpatches", data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(**_manual(root))
  assert builder.info.splits["train"].num_examples == 3
  _check_against_reader(builder.as_dataset(split="train"), root, "train")


def test_missing_manual_dir_explains_where_to_get_the_data(tmp_path):
  builder = tfds.builder("nhpatches/nhpatches", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(AssertionError, match="keras_triplet_descriptor"):
    builder.download_and_prepare(**_manual(tmp_path / "empty"))

