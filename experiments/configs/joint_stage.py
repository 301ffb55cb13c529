"""A main-job pipeline's joint stage alone, at the main job's scale (#22's matching-gap attempts).

`get_config("<pipeline>[,<size>]")` is the `joint` stage of
`pipelines.pipeline_config(pipeline, size)` (default fast, medium): the
config the main job and the seeds study train that stage with. Point it at
a run's trained stages and change one setting at a time:

  python -m experiments.finetune_joint --config=experiments/configs/joint_stage.py:fast,medium \\
      --config.joint.denoiser_workdir=RUN/denoiser \\
      --config.joint.descriptor_workdir=RUN/descriptor \\
      --config.joint.mae_weight=0.01 --workdir=workdirs/joint_mae0.01
  python -m experiments.evaluate --workdir=workdirs/joint_mae0.01   # noisy input: the headline
"""

from experiments.configs import pipelines


def get_config(arg: str = ""):
  pipeline, _, size = (arg or "fast").partition(",")
  c = pipelines.pipeline_config(pipeline, size or "medium")
  if "joint" not in c:
    raise ValueError(f"pipeline {pipeline!r} has no joint stage; pipelines with one: "
                     + ", ".join(p for p in pipelines.PIPELINES
                                 if "joint" in pipelines.pipeline_config(p, "smoke")))
  return c.joint
