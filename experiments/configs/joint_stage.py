"""A main-job pipeline's joint stage alone, at the main job's scale (#22's matching-gap attempts).

`get_config("<pipeline>[,<size>]")` is the `joint` stage of
`pipelines.pipeline_config(pipeline, size)` (default: the main job's
default pipeline, medium): the config the main job and the seeds study
train that stage with. A size alone (`joint_stage.py:smoke`, as every
config takes) keeps the default pipeline. Point it at
a run's trained stages and change one setting at a time:

  python -m experiments.finetune_joint --config=experiments/configs/joint_stage.py:fast,medium \\
      --config.finetune.denoiser_workdir=RUN/denoiser \\
      --config.finetune.descriptor_workdir=RUN/descriptor \\
      --config.finetune.mae_weight=0.01 --workdir=workdirs/joint_mae0.01
  python -m experiments.evaluate --workdir=workdirs/joint_mae0.01   # noisy input: the headline
"""

from experiments.configs import pipelines
from nhp_jax.data import generator


def get_config(arg: str = ""):
  pipeline, _, size = (arg or pipelines.DEFAULT).partition(",")
  if not size and pipeline not in pipelines.PIPELINES and pipeline in generator.SIZES:
    pipeline, size = pipelines.DEFAULT, pipeline
  c = pipelines.pipeline_config(pipeline, size or "medium")
  if "joint" not in c:
    raise ValueError(f"pipeline {pipeline!r} has no joint stage; pipelines with one: "
                     + ", ".join(p for p in pipelines.PIPELINES
                                 if "joint" in pipelines.pipeline_config(p, "smoke")))
  return c.joint
