"""Progress of long loops a user waits for: a tqdm bar on a terminal, log lines elsewhere.

    with progress.Progress(total=n, desc="describe", unit="patch") as bar:
      for block in blocks:
        ...
        bar.update(len(block))

On a terminal (stderr is a TTY) this is a tqdm bar with rate and ETA. Not on
a terminal (logs, CI, notebooks' captured subprocesses) it writes one log
line every `every_s` seconds, `desc: done/total unit (pct), rate unit/s,
ETA h:mm:ss`, and a last line when the loop took longer than that, so a
redirected run still shows it is alive. $NHP_PROGRESS chooses: "auto"
(default), "bar", "log" or "off".
"""

import math
import os
import sys
import time

from absl import logging

from nhp_jax import errors

ENV = "NHP_PROGRESS"
MODES = ("auto", "bar", "log", "off")
LOG_EVERY_S = 10.0


def mode() -> str:
  """The active mode: $NHP_PROGRESS, "auto" resolved to "bar" on a TTY and "log" elsewhere."""
  value = os.environ.get(ENV, "").strip().lower() or "auto"
  if value not in MODES:
    raise errors.ConfigError(f"${ENV}: expected one of {', '.join(MODES)}, found {value!r}")
  if value == "auto":
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "log"
  return value


def format_duration(seconds: float) -> str:
  """h:mm:ss, or "?" for an unknown (infinite or NaN) duration."""
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
  """Counts work done towards `total` units; a context manager.

  Args:
    total: units of work in all (e.g. patches, sequences).
    desc: what is being done, first word of every line.
    unit: name of one unit.
    every_s: seconds between log lines (log mode).
    clock: time source (tests pass a fake one).
  """

  def __init__(self, total: int, desc: str, unit: str = "it", every_s: float = LOG_EVERY_S,
               clock=time.monotonic):
    self.total, self.desc, self.unit, self.every_s, self._clock = (
        int(total), desc, unit, every_s, clock)
    self.done = 0
    self.mode = mode()
    self._start = self._last_log = clock()
    self._logged = False
    self._bar = None
    if self.mode == "bar":
      import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm.tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr,
                            dynamic_ncols=True, leave=False)

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def line(self) -> str:
    """The log line for the work done so far."""
    elapsed = max(self._clock() - self._start, 1e-9)
    rate = self.done / elapsed
    pct = 100.0 * self.done / self.total if self.total else 100.0
    eta = (self.total - self.done) / rate if rate > 0 else math.inf
    return (f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%), "
            f"{rate:,.1f} {self.unit}/s, ETA {format_duration(eta)}")

  def update(self, n: int = 1) -> None:
    """Adds `n` units of finished work."""
    self.done += int(n)
    if self._bar is not None:
      self._bar.update(int(n))
    elif self.mode == "log" and self._clock() - self._last_log >= self.every_s:
      logging.info("%s", self.line())
      self._last_log, self._logged = self._clock(), True

  def close(self) -> None:
    """Ends the bar; in log mode a last line if any line was written."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    elif self.mode == "log" and self._logged:
      logging.info("%s (done in %s)", self.line(), format_duration(self._clock() - self._start))
      self._logged = False
