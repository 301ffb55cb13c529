"""A pipeline's stages and the run folder they train in.

A pipeline config (`experiments/configs/pipelines.py`) holds one experiment
config per stage present, in `STAGES` order: `pretrain` (a DnCNN on AWGN,
for transfer), `denoiser`, `descriptor`, `joint` (both fine-tuned end to
end). Each trains under `<run folder>/<stage>/`. Light on purpose: the
configs import it.
"""

import os

import ml_collections

STAGES = ("pretrain", "denoiser", "descriptor", "joint")


def stages_of(c: ml_collections.ConfigDict) -> list[str]:
  """The stages a pipeline config has, in training order."""
  return [s for s in STAGES if s in c]


def stage_dirs(workdir: str) -> dict[str, str]:
  """{stage: <workdir>/<stage>} for every stage of `STAGES`."""
  return {stage: os.path.join(workdir, stage) for stage in STAGES}


def wire(c: ml_collections.ConfigDict, workdir: str) -> dict[str, str]:
  """Points each stage at the workdirs of the stages it builds on; returns `stage_dirs`."""
  dirs = stage_dirs(workdir)
  if "pretrain" in c:
    c.denoiser.transfer.pretrained_workdir = dirs["pretrain"]
  if "joint" in c:
    c.joint.finetune.denoiser_workdir, c.joint.finetune.descriptor_workdir = (dirs["denoiser"],
                                                                        dirs["descriptor"])
  return dirs
