"""reader.py: round trips on generated data, both layouts, the real 65x65 patches, area resize."""

import os
import shutil

import numpy as np
import pytest

from nhp_jax.data import generator
from nhp_jax.data import layout
from nhp_jax.data import noise
from nhp_jax.data import reader
from nhp_jax.data import splits
from tests.data.data_fixtures import normalised_distance_to_ref
from tests.data.data_fixtures import real_tiles
from tests.data.data_fixtures import tiny_config
from tests.data.data_fixtures import tiny_dataset  # noqa: F401  (fixture)
from tests.data.data_fixtures import write_release_sequence


def test_round_trip_equals_generator_output(tiny_dataset):
  names = splits.split_sequences("full", "test", splits.splits_for_root(tiny_dataset))
  ps = reader.read_split(tiny_dataset, names)
  assert ps.sequences == tuple(names)
  for name in names:
    clean, noisy = generator.generate_sequence(name, tiny_config())
    sl = ps.sequence_slice(name)
    np.testing.assert_array_equal(ps.clean[sl], clean)
    np.testing.assert_array_equal(ps.noisy[sl], noisy)
    one_clean, one_noisy = reader.read_sequence(os.path.join(tiny_dataset, "hpatches", name))
    np.testing.assert_array_equal(one_clean, clean)
    np.testing.assert_array_equal(one_noisy, noisy)


def test_threads_do_not_change_the_result(tiny_dataset):
  names = splits.split_sequences("full", "test", splits.splits_for_root(tiny_dataset))
  serial = reader.read_split(tiny_dataset, names, workers=1)
  parallel = reader.read_split(tiny_dataset, names[::-1], workers=3)
  for name in names:
    np.testing.assert_array_equal(serial.clean[serial.sequence_slice(name)],
                                  parallel.clean[parallel.sequence_slice(name)])


def test_flat_nhpatches_root(tiny_dataset, tmp_path):
  """Sequences directly under the root (no hpatches/ folder) read the same."""
  name = sorted(os.listdir(os.path.join(tiny_dataset, "hpatches")))[0]
  shutil.copytree(os.path.join(tiny_dataset, "hpatches", name), tmp_path / name)
  source = reader.open_source(tmp_path)
  assert (source.layout, source.root) == ("nhpatches", str(tmp_path))
  flat = reader.read_split(tmp_path, [name])
  nested = reader.read_split(tiny_dataset, [name])
  np.testing.assert_array_equal(flat.clean, nested.clean)
  np.testing.assert_array_equal(flat.noisy, nested.noisy)


def _area_reference(patch: np.ndarray, n_out: int) -> np.ndarray:
  """Area resize by brute force: split every input pixel into n_out x n_out equal
  sub-pixels, then each output pixel is the plain mean of its n_in x n_in block."""
  n_in = patch.shape[0]
  fine = np.repeat(np.repeat(patch, n_out, 0), n_out, 1)  # (n_in * n_out,) ** 2
  return fine.reshape(n_out, n_in, n_out, n_in).mean((1, 3))


@pytest.mark.parametrize("seed", [0, 1])
def test_resize_area_matches_slow_reference(seed):
  rng = np.random.default_rng(seed)
  patches = rng.integers(0, 256, (2, 65, 65), dtype=np.uint8)
  got = reader.resize_area(patches)
  assert got.shape == (2, 32, 32) and got.dtype == np.uint8
  for p, g in zip(patches, got):
    want = _area_reference(p.astype(np.float64), 32)
    assert np.abs(g.astype(np.float64) - want).max() <= 0.5 + 1e-9


def test_resize_area_exact_cases():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
  want = np.rint(x.reshape(3, 32, 2, 32, 2).astype(np.float64).mean((2, 4)))
  np.testing.assert_array_equal(reader.resize_area(x), want)
  flat = np.full((1, 65, 65), 77, np.uint8)
  np.testing.assert_array_equal(reader.resize_area(flat), np.full((1, 32, 32), 77))
  np.testing.assert_allclose(reader.area_weights(65, 32).sum(1), 1.0)


def test_real_hpatches_release_patches(tmp_path):
  """The real 65x65 patches, as a one-sequence release folder: resized, noised, e < h < t."""
  tiles = real_tiles()
  write_release_sequence(str(tmp_path / "release" / "i_real"), tiles)
  source = reader.open_source(tmp_path / "release")
  assert source.layout == "hpatches"
  ps = reader.read_split(tmp_path / "release", ["i_real"])
  assert ps.clean.shape == ps.noisy.shape == (4, 16, 32, 32)
  resized = reader.resize_area(tiles.reshape(-1, 65, 65)).reshape(ps.clean.shape)
  np.testing.assert_array_equal(ps.clean, resized)
  # Noise is synthesised, deterministic per (seed, sequence name), and of the documented size.
  diff = ps.noisy.astype(np.float64) - ps.clean
  assert noise.DEFAULT.sigma_min * 0.8 < diff.std() < np.hypot(noise.DEFAULT.sigma_max, 16) * 1.2
  again = reader.read_split(tmp_path / "release", ["i_real"])
  np.testing.assert_array_equal(again.noisy, ps.noisy)
  other = reader.read_split(tmp_path / "release", ["i_real"], noise_seed=1)
  assert not np.array_equal(other.noisy, ps.noisy)
  # Harder levels lie farther from the reference (zero-mean, unit-norm views).
  d = normalised_distance_to_ref(ps.clean)
  e, h, t = (d[:, layout.image_index(lv, 1):layout.image_index(lv, 5) + 1].mean() for lv in "eht")
  assert e < h < t


def test_release_folder_under_root(tmp_path):
  tiles = np.random.default_rng(0).integers(0, 256, (3, 16, 65, 65), dtype=np.uint8)
  write_release_sequence(str(tmp_path / "hpatches-release" / "v_x"), tiles)
  ps = reader.read_split(tmp_path, ["v_x"])
  assert ps.num_labels == 3 and reader.open_source(tmp_path).layout == "hpatches"


def test_png_size_reads_header_only(tiny_dataset):
  path = os.path.join(tiny_dataset, "hpatches", "i_coins_0", "ref.png")
  h, w = reader.png_size(path)
  assert w == layout.PATCH_SIZE and h == reader.read_png(path).shape[0]
