"""Workdirs, model files and loaded models shared by the API tests (built once per worker)."""

import pytest

import nhp_jax
from tests.api import workdirs


@pytest.fixture(scope="session")
def workdir_paths(tmp_path_factory):
  """{"pair": run folder, "joint": joint workdir, "descriptor": descriptor workdir}."""
  return workdirs.make_all(tmp_path_factory.mktemp("api_workdirs"))


@pytest.fixture(scope="session")
def models(workdir_paths):
  """{kind: Model loaded from its workdir}: shared, so each compiles its blocks once."""
  return {kind: nhp_jax.load(path) for kind, path in workdir_paths.items()}


@pytest.fixture(scope="session")
def model_files(models, tmp_path_factory):
  """{kind: path of the model file exported from the workdir of that kind}."""
  root = tmp_path_factory.mktemp("api_model_files")
  paths = {}
  for kind, model in models.items():
    paths[kind] = root / f"{kind}.nhp"
    model.export(paths[kind])
  return paths
