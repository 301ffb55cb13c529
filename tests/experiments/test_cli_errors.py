"""Every binary answers a bad flag or bad input with one line and exit status 2, never a
traceback (experiments/cli.py); a NaN in training is status 1."""

import os
import subprocess
import sys

import pytest
from absl import app

from experiments import cli
from nhp_jax import errors

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("error, status", [
    (errors.DataError("a.png: expected 32 px wide, found 31"), 2),
    (errors.ConfigError("config.x: expected 1, found 2"), 2),
    (errors.CheckpointError("w/checkpoints: none"), 2),
    (app.UsageError("--split: unknown 'z'"), 2),
    (errors.NumericsError("loss is nan at step 3"), 1)])
def test_library_errors_become_one_line_and_a_status(error, status, capsys):
  def main(argv):
    raise error
  with pytest.raises(SystemExit) as exit_info:
    cli.guarded(main)(["prog"])
  assert exit_info.value.code == status
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and ": error: " in err and str(error).split(":")[0] in err


def test_ctrl_c_is_one_line_and_status_130(capsys):
  def main(argv):
    raise KeyboardInterrupt
  with pytest.raises(SystemExit) as exit_info:
    cli.guarded(main)(["prog"])
  assert exit_info.value.code == cli.INTERRUPT_EXIT == 130
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and ": interrupted; " in err and "resume" in err


def test_bugs_keep_their_traceback():
  def main(argv):
    raise KeyError("a bug")
  with pytest.raises(KeyError):
    cli.guarded(main)(["prog"])


@pytest.mark.parametrize("args, says", [
    (["experiments.make_dataset", "--size=huge"], "make_dataset: error: flag --size=huge"),
    (["experiments.train_denoiser", "--workdir=W", "--config.training.batch_size=0"],
     "train_denoiser: error: ConfigError: config.training.batch_size"),
    (["experiments.train_descriptor", "--workdir=W", "--config.descriptor.examples_per_epoch=0"],
     "train_descriptor: error: ConfigError: config.descriptor.examples_per_epoch"),
    (["experiments.pretrain_dncnn", "--workdir=W", "--config.awgn.train_crops=0"],
     "pretrain_dncnn: error: ConfigError: config.awgn.train_crops"),
    (["experiments.finetune_joint", "--workdir=W"],   # no runs named to start from
     "finetune_joint: error: ConfigError: config.finetune.denoiser_workdir"),
    (["experiments.export_descriptors", "--workdir=NOWHERE", "--out_dir=OUT"],
     "export_descriptors: error: "),
    (["experiments.study"], "study: error: --config="),
    (["experiments.reproduce", "--studies=nope"], "reproduce: error: ConfigError: unknown study"),
    (["experiments.evaluate", "--classical=sift,surf"],
     "evaluate: error: ConfigError: classical descriptors: expected names among"),
    (["experiments.main", "--classical=surf", "--workdir=W"],
     "main: error: ConfigError: classical descriptors"),
])
def test_binaries_answer_bad_input_with_one_line(args, says, tmp_path):
  args = [a.replace("NOWHERE", str(tmp_path / "nowhere")).replace("OUT", str(tmp_path / "out"))
          .replace("=W", f"={tmp_path / 'w'}") for a in args]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if ": error: " in l]
  assert len(lines) == 1 and lines[0].startswith(says), proc.stderr[-3000:]
  assert not (tmp_path / "out").exists()


def test_evaluate_scores_classical_descriptors(tmp_path):
  out = tmp_path / "classical.json"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", "--classical=raw,rootsift",
       "--classical_inputs=clean", "--embedded_size=smoke", "--n_pairs=500",
       f"--json_out={out}"], cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"),
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  import json  # pylint: disable=import-outside-toplevel
  docs = json.loads(out.read_text())
  assert list(docs) == ["raw clean", "rootsift clean"]
  for doc in docs.values():
    assert all(0.0 < doc[t] <= 1.0 for t in ("verification", "matching", "retrieval"))
  assert "| task | raw clean | rootsift clean |" in proc.stdout
