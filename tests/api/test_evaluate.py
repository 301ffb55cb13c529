"""nhp_jax.evaluate: every descriptor form gives the evaluator's document; bad input fails first."""

import numpy as np
import pytest

import nhp_jax
from nhp_jax import errors
from nhp_jax.data import cache, embedded
from nhp_jax.evaluation import descriptor_io, score, types

TASKS = ("verification", "matching", "retrieval")
N_PAIRS = 500


@pytest.fixture(scope="module")
def scored(models):
  """(data_dir, test PatchSet, (L * 16, 128) descriptors, the evaluator's own document)."""
  data_dir = embedded.ensure_embedded(size="smoke")
  test = cache.load_split(data_dir, split="a", subset="test")
  descs = models["descriptor"].describe(test.noisy.reshape(-1, 32, 32))
  reference = score.evaluate_descriptor_set(
      types.DescriptorSet(test.sequences, test.offsets, descs.reshape(test.num_labels, 16, -1)),
      "a", data_dir=data_dir, n_pairs=N_PAIRS)
  return data_dir, test, descs, reference


def _same(doc, reference, tol=0.0):
  for task in TASKS:
    assert doc[task] == pytest.approx(reference[task], abs=tol), task
  assert doc["details"]["meta"]["mode"] == "api"


def test_arrays_and_sets_give_the_evaluators_document(scored):
  data_dir, test, descs, reference = scored
  _same(nhp_jax.evaluate(descs, test, data_dir=data_dir, n_pairs=N_PAIRS), reference)
  _same(nhp_jax.evaluate(descs.reshape(test.num_labels, 16, 128).astype(np.float64), test,
                         data_dir=data_dir, n_pairs=N_PAIRS), reference)
  as_set = types.DescriptorSet(test.sequences, test.offsets,
                               descs.reshape(test.num_labels, 16, 128))
  _same(nhp_jax.evaluate(as_set, data_dir=data_dir, n_pairs=N_PAIRS), reference)
  only = nhp_jax.evaluate(descs, test, data_dir=data_dir, n_pairs=N_PAIRS, tasks=["matching"])
  assert only["verification"] is None and only["matching"] == reference["matching"]


def test_a_descriptor_folder(scored, tmp_path):
  data_dir, test, descs, reference = scored
  as_set = types.DescriptorSet(test.sequences, test.offsets,
                               descs.reshape(test.num_labels, 16, 128))
  descriptor_io.write_descriptor_folder(as_set, tmp_path / "descs")
  doc = nhp_jax.evaluate(tmp_path / "descs", data_dir=data_dir, n_pairs=N_PAIRS)
  _same(doc, reference, tol=1e-6)   # the CSV text keeps ~7 digits
  assert doc["details"]["meta"]["descriptors"] == str(tmp_path / "descs")
  with pytest.raises(errors.TaskFileError, match="unknown split 'q'"):
    nhp_jax.evaluate(tmp_path / "descs", data_dir=data_dir, split="q")


def test_bad_descriptors_fail_before_scoring(scored):
  data_dir, test, descs, _ = scored
  n = test.num_labels
  with pytest.raises(errors.DescriptorError, match=rf"expected float \({n * 16}, D\) or "
                     rf"\({n}, 16, D\) .* found float32 \({n * 16 - 1}, 128\)"):
    nhp_jax.evaluate(descs[1:], test, data_dir=data_dir)
  with pytest.raises(errors.DescriptorError, match="found int64"):
    nhp_jax.evaluate(descs.astype(np.int64), test, data_dir=data_dir)
  bad = descs.copy()
  bad[37, 5] = np.nan
  with pytest.raises(errors.DescriptorError,
                     match=rf"NaN or Inf in 1 of {n * 16} rows \(the first: row 37,"):
    nhp_jax.evaluate(bad, test, data_dir=data_dir)
  with pytest.raises(errors.ConfigError, match=r"expected the PatchSet .* found NoneType"):
    nhp_jax.evaluate(descs, data_dir=data_dir)
  as_set = types.DescriptorSet(test.sequences, test.offsets, descs.reshape(n, 16, 128))
  with pytest.raises(errors.ConfigError, match="expected patches=None"):
    nhp_jax.evaluate(as_set, test, data_dir=data_dir)
  with pytest.raises(errors.ConfigError, match="tasks"):
    nhp_jax.evaluate(descs, test, data_dir=data_dir, tasks=["speed"])
