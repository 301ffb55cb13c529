"""A tiny HPatches-style data root for evaluator tests: ref.png stacks and a splits.json."""

import json
import pathlib

import numpy as np
from PIL import Image


def write_data_root(data: pathlib.Path, counts: dict[str, int], rng: np.random.Generator,
                    train: str = "v_train") -> np.ndarray:
  """Writes `data/hpatches/<seq>/ref.png` (random (n * 32, 32) uint8 stacks drawn from `rng`,
  in `counts` order) and a split "a" testing those sequences; returns their (S + 1,) offsets."""
  for name, n in counts.items():
    (data / "hpatches" / name).mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (n * 32, 32), dtype=np.uint8)).save(
        data / "hpatches" / name / "ref.png")
  (data / "splits.json").write_text(json.dumps(
      {"a": {"name": "a", "test": list(counts), "train": [train]}}))
  return np.concatenate([[0], np.cumsum(list(counts.values()))]).astype(np.int64)
