"""Progress: log lines with rate and ETA off a terminal, a tqdm bar on one, silence on request."""

import io

import pytest
from absl import logging

from nhp_jax import progress


class _Clock:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


@pytest.fixture
def lines(monkeypatch):
  seen = []
  monkeypatch.setattr(logging, "info", lambda fmt, *args: seen.append(fmt % args))
  return seen


def test_log_mode_writes_periodic_lines_with_rate_and_eta(monkeypatch, lines):
  monkeypatch.setenv(progress.ENV, "log")
  clock = _Clock()
  with progress.Progress(100, "describing", unit="patches", every_s=10, clock=clock) as bar:
    clock.t += 5
    bar.update(10)                  # 5 s in: too early for a line
    assert lines == []
    clock.t += 5
    bar.update(10)                  # 10 s in: 20 done, 2/s, 80 left -> 40 s
    assert lines == ["describing: 20/100 patches (20%), 2.0 patches/s, ETA 0:00:40"]
    clock.t += 30
    bar.update(80)
  assert len(lines) == 3 and lines[1].startswith("describing: 100/100 patches (100%)")
  assert lines[2].endswith("(done in 0:00:40)")


def test_quick_loops_stay_quiet(monkeypatch, lines):
  monkeypatch.setenv(progress.ENV, "log")
  with progress.Progress(3, "x", clock=_Clock()) as bar:
    bar.update(3)
  assert lines == []


def test_off_and_bad_modes(monkeypatch, lines):
  monkeypatch.setenv(progress.ENV, "off")
  clock = _Clock()
  with progress.Progress(10, "x", every_s=0, clock=clock) as bar:
    clock.t += 100
    bar.update(10)
  assert lines == []
  monkeypatch.setenv(progress.ENV, "loud")
  with pytest.raises(ValueError, match=r"NHP_PROGRESS: expected one of auto, bar, log, off, "
                                       r"found 'loud'"):
    progress.Progress(1, "x")


def test_auto_is_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
  monkeypatch.delenv(progress.ENV, raising=False)
  tty = io.StringIO()
  tty.isatty = lambda: True
  monkeypatch.setattr("sys.stderr", tty)
  with progress.Progress(4, "decoding", unit="sequences") as bar:
    assert bar.mode == "bar"
    bar.update(4)
  assert "decoding" in tty.getvalue() and "sequences/s" in tty.getvalue()
  pipe = io.StringIO()
  pipe.isatty = lambda: False
  monkeypatch.setattr("sys.stderr", pipe)
  assert progress.mode() == "log"


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.9, "0:00:59"), (3725, "1:02:05"),
                                           (float("inf"), "?"), (float("nan"), "?")])
def test_format_duration(seconds, text):
  assert progress.format_duration(seconds) == text


class _Recorder(progress.Progress):
  """A Progress that keeps every instance, to see what a library loop reported."""
  made = []

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    _Recorder.made.append(self)


def test_task_file_generation_and_matching_report_their_progress(monkeypatch):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from nhp_jax.evaluation import matching, types  # pylint: disable=g-import-not-at-top
  from nhp_jax.evaluation.task_files import generate  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv(progress.ENV, "off")
  monkeypatch.setattr(progress, "Progress", _Recorder)
  _Recorder.made = []
  generate.generate_verification([30, 40, 50], 45_001)
  (bar,) = _Recorder.made
  assert (bar.desc, bar.total, bar.done) == ("verification pairs", 45_001, 45_001)
  _Recorder.made = []
  descs = np.random.default_rng(0).normal(size=(12, 16, 8)).astype(np.float32)
  matching.evaluate_matching(types.DescriptorSet(("s0", "s1", "s2"), np.array([0, 3, 7, 12]),
                                                 descs))
  (bar,) = _Recorder.made
  assert (bar.desc, bar.total, bar.done) == ("matching", 3, 3)
