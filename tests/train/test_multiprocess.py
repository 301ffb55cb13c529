"""A real two-process JAX job on this CPU trains to the parameters of one process.

Two local processes join one job (`jax.distributed.initialize` on 127.0.0.1,
gloo collectives on the CPU) with one host device each; the reference is one
process with two host devices, so both meshes have two devices and both see
the same global batches (every process draws them and keeps its rows). Only
process 0 writes the metrics; the checkpoints are the job's.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT_S = 420


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "NHP_CPU_DEVICES", "JAX_COORDINATOR_ADDRESS",
                      "NHP_NUM_PROCESSES", "NHP_PROCESS_ID")}
  env.update(JAX_PLATFORMS="cpu", NHP_CPU_DEVICES=str(devices), PYTHONPATH=ROOT, **extra)
  return env


def _child(workdir, out, env):
  return subprocess.Popen([sys.executable, "-m", "tests.train.multiprocess_child",
                           str(workdir), str(out)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(procs):
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=TIMEOUT_S)[0])
  finally:
    for p in procs:
      p.kill()
  for p, text in zip(procs, outputs):
    assert p.returncode == 0, text[-4000:]
  return outputs


@pytest.mark.slow
def test_two_processes_train_to_the_parameters_of_one(tmp_path):
  port = _free_port()
  job = [_child(tmp_path / "job", tmp_path / f"job{i}.npz",
                _env(1, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", NHP_NUM_PROCESSES="2",
                     NHP_PROCESS_ID=str(i)))
         for i in range(2)]
  single = _child(tmp_path / "single", tmp_path / "single.npz", _env(2))
  logs = _wait(job + [single])
  assert "process 1 of 2" in logs[1] and "process 0 of 1" in logs[2]

  assert not (tmp_path / "job1.npz").exists()          # process 1 writes nothing
  job_params, one = np.load(tmp_path / "job0.npz"), np.load(tmp_path / "single.npz")
  assert sorted(job_params.files) == sorted(one.files) and len(one.files) > 10
  assert int(one["step"]) == 5
  for name in one.files:
    np.testing.assert_allclose(job_params[name], one[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)

  # One metrics file, written by process 0, with the same epochs as one process's.
  def records(d):
    with open(tmp_path / d / "metrics.jsonl") as f:
      return [json.loads(line) for line in f]
  job_records, one_records = records("job"), records("single")
  assert [r["step"] for r in job_records] == [r["step"] for r in one_records] == [5]
  for a, b in zip(job_records, one_records):
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
