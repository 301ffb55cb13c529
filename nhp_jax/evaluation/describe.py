"""Models -> descriptors: restore a run's denoiser and descriptor, describe a split.

A run folder (`--workdir`) holds one training workdir per network, as the main
job and the experiment runner write them:

  <workdir>/denoiser/     (experiments.train_denoiser)
  <workdir>/descriptor/   (experiments.train_descriptor)

Either may also be given directly. Inputs (`inference.INPUTS`) follow the
seed's Fig. 4: `noisy` (lower bound), `denoised` (the pipeline) and `clean`
(upper bound). Scoring the descriptors is `score`'s job, both together
`runner.evaluate_workdir`'s.
"""

import dataclasses
import os
from typing import Any

from absl import logging
import ml_collections

from nhp_jax import errors
from nhp_jax import inference
from nhp_jax.data import cache
from nhp_jax.data import embedded
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import types
from nhp_jax.train import checkpointing
from nhp_jax.train import state as state_lib

DENOISER_SUBDIR = "denoiser"
DESCRIPTOR_SUBDIR = "descriptor"


@dataclasses.dataclass(frozen=True)
class RestoredModel:
  """A network restored for inference."""
  workdir: str
  step: int
  config: ml_collections.ConfigDict
  module: Any
  variables: dict

  @property
  def pair(self) -> tuple[Any, dict]:
    return self.module, self.variables


def restore(workdir: str, step: int | str = "best") -> RestoredModel:
  """Restores the model of a training workdir (its saved config builds the module).

  Raises:
    CheckpointError: no checkpoint, or variables that do not fit the saved config's model.
  """
  variables, config_dict, step = checkpointing.load_variables(workdir, step)
  config = ml_collections.ConfigDict(config_dict)
  module = state_lib.build_model(config)
  return RestoredModel(os.path.abspath(workdir), int(step), config, module, variables)


def resolve_workdirs(workdir: str | None, denoiser_workdir: str | None = None,
                     descriptor_workdir: str | None = None) -> tuple[str | None, str]:
  """(denoiser workdir or None, descriptor workdir) from a run folder and overrides.

  Raises:
    CheckpointError: no descriptor workdir can be found.
  """
  if descriptor_workdir is None and workdir is not None:
    sub = os.path.join(workdir, DESCRIPTOR_SUBDIR)
    descriptor_workdir = sub if os.path.isdir(sub) else workdir
  if denoiser_workdir is None and workdir is not None:
    sub = os.path.join(workdir, DENOISER_SUBDIR)
    denoiser_workdir = sub if os.path.isdir(sub) else None
  if descriptor_workdir is None or not os.path.isdir(
      os.path.join(descriptor_workdir, checkpointing.CHECKPOINT_DIR)):
    raise errors.CheckpointError(
        f"{descriptor_workdir or workdir}: expected a descriptor training workdir (with "
        f"{checkpointing.CHECKPOINT_DIR}/) or a run folder with {DESCRIPTOR_SUBDIR}/")
  return denoiser_workdir, descriptor_workdir


def describe_inputs(patches: patchset_lib.PatchSet, descriptor: RestoredModel,
                    denoiser: RestoredModel | None, inputs=inference.INPUTS,
                    batch_size: int = inference.DEFAULT_BATCH_SIZE
                    ) -> dict[str, types.DescriptorSet]:
  """DescriptorSets of `patches` for each input kind; `denoised` is skipped without a denoiser.

  Returns:
    {input: DescriptorSet with descs (L, 16, D) float32}, in `inputs` order.
  """
  out = {}
  for kind in inputs:
    if kind == "denoised" and denoiser is None:
      continue
    descs = inference.describe_patchset(
        patches, descriptor.pair, denoiser.pair if denoiser else None, input=kind,
        batch_size=batch_size)
    out[kind] = types.DescriptorSet(patches.sequences, patches.offsets, descs)
  return out


def restore_with_test_split(workdir: str | None, *, split: str = "a",
                            data_dir: str | None = None,
                            denoiser_workdir: str | None = None,
                            descriptor_workdir: str | None = None,
                            step: int | str = "best"):
  """Restores the networks of a run and loads the test split they are scored on.

  With no `data_dir`, the data is the embedded dataset the descriptor was
  trained on (its saved config names the size and seed).

  Returns:
    (descriptor RestoredModel, denoiser RestoredModel or None, test PatchSet,
    data_dir used).
  """
  den_dir, des_dir = resolve_workdirs(workdir, denoiser_workdir, descriptor_workdir)
  descriptor = restore(des_dir, step)
  denoiser = restore(den_dir, step) if den_dir else None
  logging.info("descriptor %s (step %d), denoiser %s", des_dir, descriptor.step,
               f"{den_dir} (step {denoiser.step})" if denoiser else "none")
  test, data_dir = load_test_split(descriptor.config.data, split=split, data_dir=data_dir)
  return descriptor, denoiser, test, data_dir


def load_test_split(data_config, *, split: str = "a", data_dir: str | None = None):
  """The test PatchSet of `split` and the data root it came from.

  Args:
    data_config: a training config's `data` section (`embedded_size`,
      `embedded_seed`): the embedded dataset used when `data_dir` is None.
    split: split name.
    data_dir: a dataset root; None: the embedded dataset of `data_config`.

  Returns:
    (test PatchSet, data_dir used).
  """
  if data_dir is None:
    data_dir = embedded.ensure_embedded(size=data_config.embedded_size,
                                        seed=data_config.embedded_seed)
  return cache.load_split(data_dir, split=split, subset="test"), data_dir


def export_split(workdir: str, out_dir: str, *, input: str = "denoised",  # noqa: A002
                 split: str = "a", data_dir: str | None = None,
                 denoiser_workdir: str | None = None, step: int | str = "best",
                 delimiter: str = ",", overwrite: bool = False,
                 batch_size: int = inference.DEFAULT_BATCH_SIZE) -> types.DescriptorSet:
  """Describes a split's test patches with a run's networks and writes the official layout.

  Data as in `restore_with_test_split`; `out_dir` gets `<seq>/<image>.csv`
  (`descriptor_io.write_descriptor_folder`).

  Returns:
    The DescriptorSet written.

  Raises:
    ConfigError: input "denoised" with no denoiser in the run (nor given).
    CheckpointError, DataError, DescriptorError: from restoring, reading, writing.
  """
  descriptor, denoiser, patches, _ = restore_with_test_split(
      workdir, split=split, data_dir=data_dir, denoiser_workdir=denoiser_workdir, step=step)
  descs = describe_inputs(patches, descriptor, denoiser, (input,), batch_size=batch_size)
  if input not in descs:
    raise errors.ConfigError(f"input {input!r} needs a denoiser: {workdir} has no "
                             f"{DENOISER_SUBDIR}/ and no denoiser workdir was given")
  descriptor_io.write_descriptor_folder(descs[input], out_dir, delimiter=delimiter,
                                        overwrite=overwrite)
  logging.info("wrote %d sequences x 16 images of %d-d descriptors to %s",
               len(patches.sequences), descs[input].dim, out_dir)
  return descs[input]
