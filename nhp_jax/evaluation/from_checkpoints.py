"""Descriptors from trained checkpoints: restore denoiser and descriptor, describe a split.

A run folder (`--workdir`) holds one training workdir per network, as the main
job and the experiment runner write them:

  <workdir>/denoiser/     (experiments.train_denoiser)
  <workdir>/descriptor/   (experiments.train_descriptor)

Either may also be given directly. Inputs follow the seed's Fig. 4: `noisy`
(lower bound), `denoised` (the pipeline) and `clean` (upper bound).
"""

import dataclasses
import os
from typing import Any

import ml_collections

from nhp_jax import atomic
from nhp_jax import errors
from nhp_jax import inference
from nhp_jax.data import patchset as patchset_lib
from nhp_jax.evaluation import types
from nhp_jax.train import checkpointing
from nhp_jax.train import state as state_lib

INPUTS = ("noisy", "denoised", "clean")
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


def describe(patches: patchset_lib.PatchSet, descriptor: RestoredModel,
             denoiser: RestoredModel | None, inputs=INPUTS,
             batch_size: int = inference.DEFAULT_BATCH_SIZE) -> dict[str, types.DescriptorSet]:
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
  # pylint: disable=g-import-not-at-top
  from absl import logging

  from nhp_jax.data import cache

  den_dir, des_dir = resolve_workdirs(workdir, denoiser_workdir, descriptor_workdir)
  descriptor = restore(des_dir, step)
  denoiser = restore(den_dir, step) if den_dir else None
  logging.info("descriptor %s (step %d), denoiser %s", des_dir, descriptor.step,
               f"{den_dir} (step {denoiser.step})" if denoiser else "none")
  if data_dir is None:
    from nhp_jax.data import embedded
    data = descriptor.config.data
    data_dir = embedded.ensure_embedded(size=data.embedded_size, seed=data.embedded_seed)
  return descriptor, denoiser, cache.load_split(data_dir, split=split, subset="test"), data_dir


def comparison_table(docs: dict[str, dict]) -> str:
  """The seed's Fig. 4 table: one row per task, one column per input kind."""
  kinds = list(docs)
  lines = ["| task | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
  for task in ("verification", "matching", "retrieval"):
    cells = [docs[k].get(task) for k in kinds]
    lines.append(f"| {task} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells)
                 + " |")
  return "\n".join(lines) + "\n"


def evaluate_workdir(workdir: str | None, *, split: str = "a",
                     data_dir: str | None = None, tasks_dir: str | None = None,
                     denoiser_workdir: str | None = None,
                     descriptor_workdir: str | None = None, inputs=INPUTS,
                     step: int | str = "best", tasks=None, n_pairs: int | None = None,
                     metric: str = "l2", json_out: str | None = None,
                     markdown_out: str | None = None,
                     batch_size: int = inference.DEFAULT_BATCH_SIZE) -> dict:
  """Restores checkpoints, describes the test split per input kind, scores each.

  Data as in `restore_with_test_split`.

  Returns:
    A results document whose headline numbers are those of the pipeline's
    own input (`denoised` when a denoiser is present, else the first input),
    with every input's full document under details["inputs"].

  Raises:
    CheckpointError, ConfigError, DataError, TaskFileError: before any scoring.
  """
  # pylint: disable=g-import-not-at-top
  from absl import logging

  from nhp_jax.evaluation import report, runner, task_files

  unknown = [k for k in inputs if k not in INPUTS]
  if unknown or not inputs:
    raise errors.ConfigError(f"inputs: expected a non-empty subset of {', '.join(INPUTS)}, "
                             f"found {', '.join(inputs) or 'none'}")
  descriptor, denoiser, patches, data_dir = restore_with_test_split(
      workdir, split=split, data_dir=data_dir, denoiser_workdir=denoiser_workdir,
      descriptor_workdir=descriptor_workdir, step=step)
  des_dir = descriptor.workdir
  den_dir = denoiser.workdir if denoiser else None
  sets = describe(patches, descriptor, denoiser, inputs, batch_size)
  docs = {}
  for kind, descs in sets.items():
    logging.info("scoring %s inputs", kind)
    docs[kind] = runner.evaluate_descriptor_set(
        descs, split, tasks_dir=tasks_dir, data_dir=data_dir,
        tasks=tasks or runner.TASKS,
        n_pairs=n_pairs or task_files.OFFICIAL_N_PAIRS, metric=metric,
        meta={"mode": "checkpoints", "input": kind, "descriptor_workdir": des_dir,
              "descriptor_step": descriptor.step, "denoiser_workdir": den_dir,
              "denoiser_step": denoiser.step if denoiser else None})
    print(f"== {kind} inputs ==\n" + report.format_tables(docs[kind]), flush=True)
  main_kind = "denoised" if "denoised" in docs else next(iter(docs))
  doc = {t: docs[main_kind].get(t) for t in runner.TASKS}
  doc["details"] = dict(docs[main_kind]["details"], headline_input=main_kind, inputs=docs)
  table = comparison_table(docs)
  print(table, end="", flush=True)
  if json_out:
    report.write_results(json_out, doc)
  if markdown_out:
    atomic.write_text(markdown_out, f"Split {split}, data {data_dir}\n\n" + table)
  return doc
