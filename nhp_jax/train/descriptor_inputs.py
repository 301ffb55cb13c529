"""The pixels a descriptor is trained and validated on (`config.input.source`).

"clean" and "noisy" are the PatchSet's own arrays; "denoised" runs the
trained denoiser of `config.input.denoiser_workdir` over the training and
validation patches first (`nhp_jax.inference`).
"""

import ml_collections
from absl import logging

from nhp_jax import inference
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.data import pipelines
from nhp_jax.train import checkpointing
from nhp_jax.train import state as state_lib


def sources(config: ml_collections.ConfigDict, train: patchset_lib.PatchSet,
            val: patchset_lib.PatchSet):
  """(training source, validation pixels): a source name or arrays (see `pipelines`).

  Args:
    config: a descriptor config (`config.input` is read).
    train: the training PatchSet.
    val: the validation PatchSet.

  Returns:
    For "clean" / "noisy": (the source name, that (L, 16, 32, 32) uint8 array
    of `val`); for "denoised": the denoised (L, 16, 32, 32) uint8 patches of
    `train` and of `val`.
  """
  source = config.input.source
  if source != "denoised":
    return source, getattr(val, source)
  variables, saved, step = checkpointing.load_variables(config.input.denoiser_workdir,
                                                        config.input.denoiser_checkpoint)
  model = state_lib.build_model(ml_collections.ConfigDict(saved))
  batch = config.input.denoise_batch_size
  fn = inference.make_denoise_fn(model, variables, batch)
  logging.info("denoising the descriptor's inputs with %s (%s, step %d)",
               config.input.denoiser_workdir, saved["model"]["name"], step)
  return (pipelines.denoise_source(train, fn, batch_size=batch),
          pipelines.denoise_source(val, fn, batch_size=batch))
