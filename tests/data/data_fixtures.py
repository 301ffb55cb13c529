"""Small generated datasets and helpers shared by the data tests (import the fixtures by name)."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from nhp_jax.data import generator
from nhp_jax.data import layout

# The real 65x65 HPatches patches (4 labels x 16 views), when the shared folder is present.
REAL_FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                            "data-samples", "hpatches_vis_4x16_patches.png")


def tiny_config(seed: int = 0, **overrides) -> generator.GeneratorConfig:
  """6 sequences x <= 6 labels from small crops of small photos: generates in about a second."""
  fields = dict(num_sequences=6, patches_per_sequence=6, seed=seed,
                photos=("coins", "page", "chelsea"), crop_fraction=(0.5, 0.5))
  fields.update(overrides)
  return generator.GeneratorConfig(**fields)


# Test modules import the fixture, which makes one fixture per module; generate once per process.
_GENERATED: dict[str, str] = {}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
  """A generated N-HPatches-layout root (read-only by convention: copy before changing it)."""
  if "tiny" not in _GENERATED:
    root = str(tmp_path_factory.mktemp("tiny") / "data")
    generator.write_dataset(root, tiny_config(), workers=1)
    _GENERATED["tiny"] = root
  return _GENERATED["tiny"]


@pytest.fixture
def tiny_copy(tiny_dataset, tmp_path) -> str:
  """A private, writable copy of `tiny_dataset`."""
  root = str(tmp_path / "data")
  shutil.copytree(tiny_dataset, root)
  return root


def real_tiles() -> np.ndarray:
  """(4, 16, 65, 65) uint8: the real HPatches patches of the fixture; skips if absent."""
  if not os.path.isfile(REAL_FIXTURE):
    pytest.skip("shared real HPatches fixture not present")
  image = np.asarray(Image.open(REAL_FIXTURE))
  return image[35:35 + 4 * 65].reshape(4, 65, 16, 65).transpose(0, 2, 1, 3).copy()


def write_release_sequence(seq_dir: str, tiles: np.ndarray) -> None:
  """Writes (N, 16, S, S) uint8 tiles as an HPatches-release sequence folder (16 stacks)."""
  os.makedirs(seq_dir, exist_ok=True)
  n, _, s, _ = tiles.shape
  for t, tp in enumerate(layout.IMAGE_TYPES):
    Image.fromarray(tiles[:, t].reshape(n * s, s)).save(os.path.join(seq_dir, f"{tp}.png"))


def normalised_distance_to_ref(patches: np.ndarray) -> np.ndarray:
  """(N, 16) L2 distance of each zero-mean unit-norm view to the label's ref view.

  Args:
    patches: (N, 16, H, W) uint8.
  """
  x = patches.reshape(*patches.shape[:2], -1).astype(np.float64)
  x -= x.mean(-1, keepdims=True)
  x /= np.linalg.norm(x, axis=-1, keepdims=True) + 1e-9
  return np.linalg.norm(x - x[:, :1], axis=-1)
