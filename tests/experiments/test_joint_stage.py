"""experiments/configs/joint_stage.py: a pipeline's joint stage alone, as the main job trains it."""

import pytest

from experiments.configs import joint_stage, pipelines
from nhp_jax.train import config_validation


@pytest.mark.parametrize("pipeline", ["fast", "dncnn"])
def test_is_the_pipelines_own_joint_stage(pipeline):
  c = joint_stage.get_config(f"{pipeline},smoke")
  assert c.to_dict() == pipelines.pipeline_config(pipeline, "smoke").joint.to_dict()
  c.finetune.denoiser_workdir, c.finetune.descriptor_workdir = "/d", "/e"
  config_validation.validate(c)


def test_defaults_to_the_main_jobs_pipeline_on_medium():
  assert joint_stage.get_config("").to_dict() == (
      pipelines.pipeline_config(pipelines.DEFAULT, "medium").joint.to_dict())


def test_a_size_alone_keeps_the_default_pipeline():
  assert joint_stage.get_config("smoke").to_dict() == (
      pipelines.pipeline_config(pipelines.DEFAULT, "smoke").joint.to_dict())


def test_a_pipeline_without_joint_stage_is_refused():
  with pytest.raises(ValueError, match="pipeline 'baseline' has no joint stage"):
    joint_stage.get_config("baseline,smoke")
