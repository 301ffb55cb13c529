"""generator.py, noise.py and embedded.py: determinism, splits, sampling, noise, atomic output."""

import json
import math
import os

import numpy as np
import pytest

from nhp_jax.data import embedded
from nhp_jax.data import generator
from nhp_jax.data import layout
from nhp_jax.data import noise
from nhp_jax.data import reader
from nhp_jax.data import splits
from nhp_jax.errors import ConfigError, DataError
from tests.data.data_fixtures import normalised_distance_to_ref
from tests.data.data_fixtures import tiny_config
from tests.data.data_fixtures import tiny_dataset  # noqa: F401  (fixture)


class Killed(BaseException):
  """Stands for the process being killed (not an Exception: no handler may swallow it)."""


def _files(root: str) -> dict[str, bytes]:
  out = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


def test_same_seed_same_bytes_whatever_the_workers(tiny_dataset, tmp_path):
  again = generator.write_dataset(tmp_path / "again", tiny_config(), workers=2)
  first, second = _files(tiny_dataset), _files(tmp_path / "again")
  assert sorted(first) == sorted(second)
  assert len(first) == 6 * 32 + 2
  assert all(first[k] == second[k] for k in first)
  assert again["sequences"] == 6 and again["patches"] == 16 * again["labels"]


def test_other_seed_other_bytes(tiny_dataset, tmp_path):
  generator.write_dataset(tmp_path / "seed1", tiny_config(seed=1), workers=1)
  first, other = _files(tiny_dataset), _files(tmp_path / "seed1")
  name = os.path.join("hpatches", "i_coins_0")
  assert first[os.path.join(name, "ref.png")] != other[os.path.join(name, "ref.png")]
  assert first[os.path.join(name, "ref_noise.png")] != other[os.path.join(name, "ref_noise.png")]


def test_generated_splits_are_valid_and_disjoint_by_photo(tiny_dataset):
  s = splits.load_splits(tiny_dataset)
  names = sorted(os.listdir(os.path.join(tiny_dataset, "hpatches")))
  _check_splits(s, names)


@pytest.mark.parametrize("size", list(generator.SIZES))
def test_splits_of_every_size(size):
  names = generator.sequence_names(generator.size_config(size))
  _check_splits(generator.make_splits(names, seed=0), names)


def _check_splits(s, names):
  assert sorted(s) == sorted(layout.SPLIT_NAMES)
  photo = lambda n: n[2:].rsplit("_", 1)[0]
  tests = []
  for split in "abc":
    test = splits.split_sequences(split, "test", s)
    train = splits.split_sequences(split, "train", s)
    assert sorted(test + train) == sorted(names)
    assert not {photo(n) for n in test} & {photo(n) for n in train}
    assert 0.2 <= len(test) / len(names) <= 0.45
    n_i = sum(n.startswith("i_") for n in test)
    assert abs(n_i - (len(test) - n_i)) <= 2
    tests.append(frozenset(test))
  assert len(set(tests)) == 3  # three different partitions
  assert sorted(splits.split_sequences("full", "test", s)) == sorted(names)
  assert all(n.startswith("i_") for n in splits.split_sequences("illum", "test", s))
  assert all(n.startswith("v_") for n in splits.split_sequences("view", "test", s))


def test_sequence_names_balanced():
  names = generator.sequence_names(generator.size_config("medium"))
  assert len(names) == len(set(names)) == 40
  assert sum(n.startswith("i_") for n in names) == 20
  assert names[:2] == ["i_astronaut_0", "v_astronaut_0"]


def test_generated_patches_look_like_hpatches(tiny_dataset):
  names = splits.split_sequences("full", "test", splits.splits_for_root(tiny_dataset))
  ps = reader.read_split(tiny_dataset, names)
  assert ps.num_labels >= 30
  ref = ps.clean[:, 0].reshape(ps.num_labels, -1).astype(np.float64)
  assert (ref.std(1) > 10).all()  # the HPatches texture rule
  d = normalised_distance_to_ref(ps.clean)
  e, h, t = (d[:, layout.image_index(lv, 1):layout.image_index(lv, 5) + 1].mean() for lv in "eht")
  assert 0 < e < h < t
  assert not np.array_equal(ps.noisy, ps.clean)
  with open(os.path.join(tiny_dataset, generator.MANIFEST)) as f:
    manifest = json.load(f)
  assert manifest["synthetic"] and manifest["labels"] == ps.num_labels
  assert generator.is_complete(tiny_dataset, tiny_config())
  assert not generator.is_complete(tiny_dataset, tiny_config(seed=5))


def _bilinear(image, x, y):
  x0, y0 = int(math.floor(x)), int(math.floor(y))
  fx, fy = x - x0, y - y0
  h, w = image.shape
  at = lambda yy, xx: image[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)]
  return ((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
          + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)))


def test_sample_patches_matches_slow_reference():
  rng = np.random.default_rng(0)
  image = rng.uniform(0, 255, (80, 90)).astype(np.float32)
  frames = np.zeros((2, 2, 3))
  for i, (angle, side, cx, cy) in enumerate([(0.3, 30.0, 45.0, 40.0), (-1.1, 20.5, 40.3, 35.7)]):
    c, s = math.cos(angle), math.sin(angle)
    frames[i] = [[c * side / 2, -s * side / 2, cx], [s * side / 2, c * side / 2, cy]]
  got = generator.sample_patches(image, frames)
  grid = (np.arange(64) + 0.5) / 32 - 1
  for i in range(2):
    fine = np.array([[_bilinear(image, *(frames[i] @ [u, v, 1])) for u in grid] for v in grid])
    want = fine.reshape(32, 2, 32, 2).mean((1, 3))
    assert np.abs(got[i] - want).max() <= 0.5 + 1e-3


def test_homography_maps_the_four_points():
  src = np.array([[0, 0], [99, 0], [99, 79], [0, 79]], np.float64)
  dst = src + np.array([[3, -2], [-5, 4], [6, 1], [-2, -7]])
  h = generator._homography_4pt(src, dst)
  x, y = generator._apply_h(h, src[:, 0], src[:, 1])
  np.testing.assert_allclose(np.stack([x, y], 1), dst, atol=1e-9)


def test_jitter_overlap_matches_the_documented_levels():
  """Median IoU of a jittered square with the original: ~0.85 / 0.71 / 0.62 (docs)."""
  rng = np.random.default_rng(0)
  g = np.linspace(-2, 2, 161)
  pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
  inside = (np.abs(pts) <= 1).all(1)
  for level, want in (("e", 0.85), ("h", 0.71), ("t", 0.62)):
    jit = generator._jitter_matrices(rng, 300, generator.JITTER[level])
    ious = []
    for m in jit:
      back = np.linalg.solve(m[:, :2], (pts - m[:, 2]).T).T
      mine = (np.abs(back) <= 1).all(1)
      ious.append((inside & mine).sum() / (inside | mine).sum())
    assert abs(np.median(ious) - want) < 0.03, level


def test_noise_model():
  clean = np.full((50, 2, 32, 32), 100, np.uint8)
  cfg = noise.NoiseConfig(sigma_min=10, sigma_max=10, signal_gain=0.0)
  a = noise.add_noise(clean, noise.sequence_rng(0, "i_x"), cfg)
  b = noise.add_noise(clean, noise.sequence_rng(0, "i_x"), cfg)
  c = noise.add_noise(clean, noise.sequence_rng(0, "i_y"), cfg)
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.uint8 and not np.array_equal(a, c)
  assert abs(a.astype(np.float64).std() - 10) < 0.3
  # Signal-dependent part: variance grows by signal_gain per grey level.
  bright = np.full((50, 2, 32, 32), 200, np.uint8)
  cfg = noise.NoiseConfig(sigma_min=0, sigma_max=0, signal_gain=0.5)
  std = noise.add_noise(bright, np.random.default_rng(1), cfg).astype(np.float64).std()
  assert abs(std - math.sqrt(100)) < 0.3
  # Per-sequence sigma is drawn inside its range.
  cfg = noise.NoiseConfig(sigma_min=5, sigma_max=8, signal_gain=0.0)
  stds = [noise.add_noise(clean, np.random.default_rng(s), cfg).astype(np.float64).std()
          for s in range(5)]
  assert 4.8 < min(stds) and max(stds) < 8.2 and max(stds) - min(stds) > 0.3
  # Blur only: no noise, smoothed edges, values clipped to uint8.
  edge = np.zeros((1, 1, 32, 32), np.uint8)
  edge[..., 16:] = 255
  blurred = noise.add_noise(edge, np.random.default_rng(0), noise.NoiseConfig(0, 0, 0, 1.5))
  assert 0 < blurred[0, 0, 0, 15] < 255 and blurred[0, 0, 0, 0] == 0


@pytest.mark.parametrize("kwargs", [dict(sigma_min=5, sigma_max=4), dict(sigma_min=-1),
                                    dict(signal_gain=float("nan")), dict(blur_sigma=-0.5)])
def test_noise_config_validation(kwargs):
  with pytest.raises(ConfigError):
    noise.NoiseConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_sequences=4), "num_sequences must be >= 6"),
    (dict(patches_per_sequence=0), "patches_per_sequence"),
    (dict(photos=("camera", "nope", "coins")), "photos must be"),
    (dict(region_sides=(4.0,)), "region_sides"),
    (dict(crop_fraction=(0.9, 0.5)), "crop_fraction"),
])
def test_generator_config_validation(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    tiny_config(**kwargs)


def test_unknown_size_lists_known():
  with pytest.raises(ConfigError, match="smoke, small, medium, large"):
    generator.size_config("huge")
  with pytest.raises(ConfigError, match="known photos"):
    generator.load_photo("mona_lisa")


def test_killed_generation_leaves_nothing(tmp_path, monkeypatch):
  real = generator.generate_sequence
  calls = []

  def dies_on_third(name, config):
    calls.append(name)
    if len(calls) == 3:
      raise Killed
    return real(name, config)

  monkeypatch.setattr(generator, "generate_sequence", dies_on_third)
  with pytest.raises(Killed):
    generator.write_dataset(tmp_path / "out", tiny_config(), workers=1)
  assert os.listdir(tmp_path) == []


def test_existing_output_needs_overwrite(tiny_dataset, tmp_path):
  (tmp_path / "out").mkdir()
  with pytest.raises(DataError, match="already exists"):
    generator.write_dataset(tmp_path / "out", tiny_config(), workers=1)


def test_embedded_location(monkeypatch, tmp_path):
  monkeypatch.setenv("NHP_DATA_HOME", str(tmp_path))
  assert embedded.embedded_data_dir("small", 3) == str(
      tmp_path / f"small-seed3-v{generator.GENERATOR_VERSION}")
  monkeypatch.delenv("NHP_DATA_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert embedded.embedded_data_dir().startswith(str(tmp_path / "home" / ".cache" / "nhp_jax"))
  with pytest.raises(ConfigError, match="known sizes"):
    embedded.embedded_data_dir("huge")


def test_ensure_embedded_generates_once_and_distrusts_partial(monkeypatch, tmp_path):
  monkeypatch.setenv("NHP_DATA_HOME", str(tmp_path))
  monkeypatch.setattr(generator, "size_config", lambda size, seed=0: tiny_config(seed=seed))
  runs = []
  real = generator.write_dataset
  monkeypatch.setattr(generator, "write_dataset",
                      lambda *a, **k: runs.append(1) or real(*a, **k))
  path = embedded.embedded_data_dir("smoke")
  # A killed earlier run: its temporary folder, and a folder without a manifest.
  os.makedirs(os.path.join(tmp_path, f".{os.path.basename(path)}.tmp-dead"))
  os.makedirs(os.path.join(path, "hpatches"))
  assert embedded.ensure_embedded("smoke", workers=1) == path
  assert embedded.ensure_embedded("smoke", workers=1) == path
  assert len(runs) == 1
  assert generator.is_complete(path) and splits.load_splits(path)
  assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".lock")) == [
      os.path.basename(path)]
