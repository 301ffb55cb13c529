"""tf.data pipelines: pixels, determinism, resume, sources, denoise_source, errors."""

import numpy as np
import pytest
import tensorflow as tf

from nhp_jax import errors
from nhp_jax.data import layout
from nhp_jax.data import patchset
from nhp_jax.data import pipelines
from nhp_jax.data import triplets

CURRICULUM = (("tough_positive", 1), ("regular", 1), ("far_negative", 1))
GAP = 15  # random_patchset has 27 labels: anchors 0..11 and 15..26


def _batches(ds) -> list[dict[str, np.ndarray]]:
  return list(pipelines.as_numpy(ds))


def _stacked(batches, key) -> np.ndarray:
  return np.concatenate([b[key] for b in batches])


def _where(array: np.ndarray) -> dict[bytes, tuple[int, int]]:
  """(label, image) of every patch of an (L, 16, 32, 32) array, by its pixels."""
  found = {array[l, i].tobytes(): (l, i)
           for l in range(array.shape[0]) for i in range(array.shape[1])}
  assert len(found) == array.shape[0] * array.shape[1]  # random patches are unique
  return found


def _locate(batch_part: np.ndarray, where: dict) -> np.ndarray:
  """(B, 2) [label, image] of each (32, 32, 1) patch of a batch."""
  return np.array([where[p[..., 0].tobytes()] for p in batch_part])


def _reference_gather(array: np.ndarray, flat: np.ndarray) -> np.ndarray:
  """Patches at flat indices, one at a time: (n, 32, 32, 1)."""
  out = np.empty(flat.shape + (32, 32, 1), np.uint8)
  for pos in np.ndindex(flat.shape):
    label, image = divmod(int(flat[pos]), layout.NUM_IMAGES)
    out[pos] = array[label, image][..., None]
  return out


def _descriptor(ps, **overrides):
  kwargs = dict(batch_size=4, seed=3, triplets_per_epoch=10, schedule=CURRICULUM,
                far_gap=GAP, num_epochs=4)
  kwargs.update(overrides)
  return pipelines.descriptor_dataset(ps, **kwargs)


def test_tensorflow_sees_no_gpu():
  assert tf.config.get_visible_devices("GPU") == []


def test_denoiser_batches_are_the_sampled_pixels(random_patchset):
  ps, batch = random_patchset, 50
  ds = pipelines.denoiser_dataset(ps, batch_size=batch, seed=1, num_epochs=2)
  assert ds.element_spec == {k: tf.TensorSpec((batch, 32, 32, 1), tf.uint8)
                             for k in ("noisy", "clean")}
  got = _batches(ds)
  steps = pipelines.denoiser_steps_per_epoch(ps.num_labels, batch)
  assert steps == 432 // 50 and len(got) == 2 * steps
  for epoch in range(2):
    order = pipelines.denoiser_epoch_indices(ps.num_labels, 1, epoch)
    for step in range(steps):
      b = got[epoch * steps + step]
      assert b["noisy"].dtype == np.uint8 and b["noisy"].shape == (batch, 32, 32, 1)
      flat = order[step * batch:(step + 1) * batch]
      np.testing.assert_array_equal(b["noisy"], _reference_gather(ps.noisy, flat))
      np.testing.assert_array_equal(b["clean"], _reference_gather(ps.clean, flat))


def test_denoiser_epoch_covers_every_patch_once_as_aligned_pairs(random_patchset):
  ps = random_patchset
  ds = pipelines.denoiser_dataset(ps, batch_size=50, seed=2, num_epochs=1,
                                  drop_remainder=False)
  got = _batches(ds)
  assert [len(b["clean"]) for b in got] == [50] * 8 + [32]
  assert len(got) == pipelines.denoiser_steps_per_epoch(ps.num_labels, 50,
                                                        drop_remainder=False)
  clean_at = _locate(_stacked(got, "clean"), _where(ps.clean))
  noisy_at = _locate(_stacked(got, "noisy"), _where(ps.noisy))
  np.testing.assert_array_equal(clean_at, noisy_at)
  assert len(set(map(tuple, clean_at.tolist()))) == ps.num_labels * 16
  # Shuffled, not load order.
  assert not np.array_equal(clean_at[:, 0], np.sort(clean_at[:, 0]))


def test_denoiser_without_shuffle_is_load_order(random_patchset):
  ds = pipelines.denoiser_dataset(random_patchset, batch_size=16, seed=0, num_epochs=2,
                                  shuffle=False)
  got = _stacked(_batches(ds), "clean")
  expected = random_patchset.clean.reshape(-1, 32, 32, 1)
  np.testing.assert_array_equal(got, np.concatenate([expected, expected]))


@pytest.mark.parametrize("source", ["clean", "noisy", "array"])
def test_descriptor_batches_are_the_sampled_pixels(random_patchset, source):
  ps = random_patchset
  array = (np.random.default_rng(9).integers(0, 256, ps.clean.shape, dtype=np.uint8)
           if source == "array" else getattr(ps, source))
  ds = _descriptor(ps, source=array if source == "array" else source)
  assert ds.element_spec == {k: tf.TensorSpec((4, 32, 32, 1), tf.uint8)
                             for k in ("anchor", "positive", "negative")}
  got = _batches(ds)
  steps = pipelines.descriptor_steps_per_epoch(10, 4)
  assert steps == 2 and len(got) == 4 * steps
  for epoch in range(4):
    flat = pipelines.descriptor_epoch_indices(
        ps.num_labels, 3, epoch, batch_size=4, triplets_per_epoch=10,
        schedule=CURRICULUM, far_gap=GAP)
    for step in range(steps):
      expected = _reference_gather(array, flat[step * 4:(step + 1) * 4])
      for k, key in enumerate(("anchor", "positive", "negative")):
        np.testing.assert_array_equal(got[epoch * steps + step][key], expected[:, k])


def test_descriptor_triplets_follow_the_curriculum(random_patchset):
  ps = random_patchset
  where = _where(ps.clean)
  # Enough triplets per epoch that every constraint is exercised.
  ds = _descriptor(ps, batch_size=8, triplets_per_epoch=400, num_epochs=4)
  got = _batches(ds)
  steps = 400 // 8
  for epoch, strategy in enumerate(["tough_positive", "regular", "far_negative",
                                    "far_negative"]):
    part = got[epoch * steps:(epoch + 1) * steps]
    a, p, n = (_locate(_stacked(part, k), where) for k in ("anchor", "positive", "negative"))
    assert (a[:, 0] == p[:, 0]).all() and (a[:, 1] != p[:, 1]).all()
    assert (n[:, 0] != a[:, 0]).all()
    for rows in a[:, 0].reshape(steps, 8):  # distinct anchors within each batch
      assert len(set(rows.tolist())) == 8
    tough = np.isin(p[:, 1], layout.TOUGH_IMAGES)
    assert tough.all() == (strategy == "tough_positive")
    far = np.abs(n[:, 0] - a[:, 0]) >= GAP
    assert far.all() == (strategy == "far_negative")


def test_same_seed_same_batches_other_seed_differs(random_patchset):
  first = _batches(_descriptor(random_patchset))
  again = _batches(_descriptor(random_patchset))
  other = _batches(_descriptor(random_patchset, seed=4))
  for x, y in zip(first, again, strict=True):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  assert not np.array_equal(_stacked(first, "anchor"), _stacked(other, "anchor"))
  # Iterating the same dataset twice replays it.
  ds = pipelines.denoiser_dataset(random_patchset, batch_size=40, seed=5, num_epochs=1)
  np.testing.assert_array_equal(_stacked(_batches(ds), "noisy"),
                                _stacked(_batches(ds), "noisy"))
  ds6 = pipelines.denoiser_dataset(random_patchset, batch_size=40, seed=6, num_epochs=1)
  assert not np.array_equal(_stacked(_batches(ds), "noisy"), _stacked(_batches(ds6), "noisy"))


def test_every_epoch_draws_anew(random_patchset):
  got = _batches(_descriptor(random_patchset, schedule="regular", num_epochs=2))
  assert not np.array_equal(_stacked(got[:2], "anchor"), _stacked(got[2:], "anchor"))
  ds = pipelines.denoiser_dataset(random_patchset, batch_size=216, seed=0, num_epochs=2)
  got = _batches(ds)
  assert not np.array_equal(_stacked(got[:2], "clean"), _stacked(got[2:], "clean"))


@pytest.mark.parametrize("start_step", [1, 2, 5, 7, 8])
def test_descriptor_resume_is_the_tail(random_patchset, start_step):
  full = _batches(_descriptor(random_patchset))
  tail = _batches(_descriptor(random_patchset, start_step=start_step))
  assert len(tail) == len(full) - start_step
  for x, y in zip(full[start_step:], tail, strict=True):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.parametrize("drop_remainder,start_step", [(True, 3), (True, 8), (True, 13),
                                                       (False, 8), (False, 9), (False, 11)])
def test_denoiser_resume_is_the_tail(random_patchset, drop_remainder, start_step):
  kwargs = dict(batch_size=50, seed=7, num_epochs=2, drop_remainder=drop_remainder)
  full = _batches(pipelines.denoiser_dataset(random_patchset, **kwargs))
  tail = _batches(pipelines.denoiser_dataset(random_patchset, start_step=start_step,
                                             **kwargs))
  assert len(tail) == len(full) - start_step
  for x, y in zip(full[start_step:], tail, strict=True):
    np.testing.assert_array_equal(x["noisy"], y["noisy"])
    np.testing.assert_array_equal(x["clean"], y["clean"])


def test_unbounded_stream_continues_past_the_schedule(random_patchset):
  ds = _descriptor(random_patchset, num_epochs=None, start_step=2 * 100)
  b = next(pipelines.as_numpy(ds.take(1)))
  where = _where(random_patchset.clean)
  a, n = _locate(b["anchor"], where), _locate(b["negative"], where)
  assert (np.abs(n[:, 0] - a[:, 0]) >= GAP).all()  # epoch 100: far_negative


def test_memory_mapped_patchset(random_patchset, tmp_path):
  np.save(tmp_path / "clean.npy", random_patchset.clean)
  np.save(tmp_path / "noisy.npy", random_patchset.noisy)
  mapped = patchset.PatchSet(random_patchset.sequences, random_patchset.offsets,
                             np.load(tmp_path / "clean.npy", mmap_mode="r"),
                             np.load(tmp_path / "noisy.npy", mmap_mode="r"))
  for make in (_descriptor, lambda ps: pipelines.denoiser_dataset(
      ps, batch_size=32, seed=0, num_epochs=1)):
    for x, y in zip(_batches(make(mapped)), _batches(make(random_patchset)), strict=True):
      for key in x:
        np.testing.assert_array_equal(x[key], y[key])


def test_denoise_source_clips_truncates_and_pads(random_patchset):
  calls = []

  def denoise(x):
    calls.append((x.shape, x.dtype))
    return x * 0.5 + 0.7

  def stretch(x):
    return x.astype(np.float32) * 1.7 - 60.3

  # 432 patches in chunks of 100: the last call is padded from 32 rows.
  out = pipelines.denoise_source(random_patchset, denoise, batch_size=100)
  assert calls == [((100, 32, 32, 1), np.uint8)] * 5
  noisy = random_patchset.noisy.astype(np.float64)
  assert out.dtype == np.uint8 and out.shape == random_patchset.noisy.shape
  np.testing.assert_array_equal(out, np.floor(noisy * 0.5 + 0.7).astype(np.uint8))
  out = pipelines.denoise_source(random_patchset, stretch, batch_size=128)
  expected = np.floor(np.clip(stretch(random_patchset.noisy), 0, 255))
  np.testing.assert_array_equal(out, expected.astype(np.uint8))
  assert out.min() == 0 and out.max() == 255
  # The result feeds the descriptor pipeline.
  assert _batches(_descriptor(random_patchset, source=out, num_epochs=1))


def test_denoise_source_rejects_bad_outputs(random_patchset):
  with pytest.raises(errors.NumericsError, match="NaN or Inf"):
    pipelines.denoise_source(random_patchset, lambda x: np.full(x.shape, np.nan), batch_size=64)
  with pytest.raises(errors.DataError, match=r"must return shape \(64, 32, 32, 1\)"):
    pipelines.denoise_source(random_patchset, lambda x: x[..., 0], batch_size=64)


@pytest.mark.parametrize("overrides,error,match", [
    (dict(source="denoised"), errors.ConfigError, "clean, noisy or an array"),
    (dict(source=np.zeros((27, 16, 32, 32), np.float32)), errors.DataError,
     r"uint8 \(27, 16, 32, 32\).*float32"),
    (dict(far_gap=27), errors.ConfigError, "largest feasible gap"),
    (dict(schedule="hardest"), errors.ConfigError, "known: regular"),
    (dict(batch_size=25, triplets_per_epoch=100), errors.ConfigError, "block size in 1..24"),
    (dict(triplets_per_epoch=3), errors.ConfigError, "must be >= batch_size"),
    (dict(seed=-1), errors.ConfigError, "seed"),
    (dict(start_step=-1), errors.ConfigError, "start_step"),
    (dict(batch_size=0), errors.ConfigError, "batch_size"),
])
def test_descriptor_bad_arguments_fail_at_construction(random_patchset, overrides, error,
                                                       match):
  with pytest.raises(error, match=match):
    _descriptor(random_patchset, **overrides)


def test_denoiser_batch_larger_than_epoch_fails(random_patchset):
  with pytest.raises(errors.ConfigError, match="exceeds the 432 patches"):
    pipelines.denoiser_dataset(random_patchset, batch_size=500, seed=0)


def test_steps_per_epoch():
  assert pipelines.denoiser_steps_per_epoch(97_435, 50) == 97_435 * 16 // 50
  assert pipelines.denoiser_steps_per_epoch(10, 50, drop_remainder=False) == 4
  assert pipelines.descriptor_steps_per_epoch(100_000, 50) == 2000
  assert pipelines.descriptor_steps_per_epoch(100_000, 256) == 390
  assert triplets.DEFAULT_FAR_GAP == 10_000
