"""Classical baselines scored like any descriptor set, on the same patches."""

import numpy as np
import pytest

from nhp_jax import errors
from nhp_jax.evaluation import baselines, score, types
from nhp_jax.models import classical


def test_names_are_checked():
  assert baselines.parse_names("SIFT, raw,sift") == ["sift", "raw"]
  assert baselines.parse_names("") == [] and baselines.parse_names("none") == []
  with pytest.raises(errors.ConfigError, match="expected names among raw, sift, rootsift, "
                                               "found surf"):
    baselines.parse_names("sift,surf")


def test_scores_equal_the_descriptors_scored_directly(random_patchset, tmp_path):
  data = {"n_pairs": 300, "tasks": ("verification", "matching")}
  docs = baselines.score_patches(random_patchset, "a", ["raw"], ["noisy", "clean"],
                         ref_patches=lambda: [np.asarray(random_patchset.clean[
                             random_patchset.sequence_slice(s), 0])
                             for s in random_patchset.sequences], **data)
  assert list(docs) == ["raw noisy", "raw clean"]
  for kind in ("noisy", "clean"):
    pixels = random_patchset.noisy if kind == "noisy" else random_patchset.clean
    descs = types.DescriptorSet(random_patchset.sequences, random_patchset.offsets,
                                classical.describe("raw", pixels))
    direct = score.evaluate_descriptor_set(descs, "a", **data)
    for task in data["tasks"]:
      assert docs[f"raw {kind}"][task] == direct[task]
    assert docs[f"raw {kind}"]["details"]["meta"]["input"] == kind
  with pytest.raises(errors.ConfigError, match="classical inputs"):
    baselines.score_patches(random_patchset, "a", ["raw"], ["denoised"])
