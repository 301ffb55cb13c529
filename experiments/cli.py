"""What every binary does around its one library call: one line per error, never a traceback.

    if __name__ == "__main__":
      cli.run(main)

instead of `absl.app.run(main)`:
  * a bad flag (absl's parsing errors, `app.UsageError`) or bad input (the
    library's ConfigError, DataError, TaskFileError, DescriptorError,
    CheckpointError) prints `<binary>: error: <message>` as one line on
    stderr and exits with status USAGE_EXIT (2);
  * a NumericsError (a loss became NaN while training: the input was valid)
    prints the same line and exits with status FAILURE_EXIT (1);
  * Ctrl-C (KeyboardInterrupt) prints `<binary>: interrupted; ...` and exits
    with INTERRUPT_EXIT (130, as a shell reports SIGINT): finished
    checkpoints and outputs stay, and the same command resumes;
  * anything else is a bug and keeps its traceback.
The library's errors name the file or flag, the expected and the found.
"""

import os
import sys

from absl import app, flags

from nhp_jax import errors

USAGE_EXIT = 2
FAILURE_EXIT = 1
INTERRUPT_EXIT = 130


def _name() -> str:
  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  if spec is not None and spec.name:
    return spec.name.rsplit(".", 1)[-1]
  return os.path.basename(sys.argv[0] or "nhp_jax")


def fail(message: str, status: int = USAGE_EXIT) -> None:
  """Prints `<binary>: error: <message>` (one line) to stderr and exits with `status`."""
  line = " ".join(str(message).split())
  sys.stderr.write(f"{_name()}: error: {line}\n")
  sys.stderr.flush()
  sys.exit(status)


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e}; see --helpfull")


def guarded(main):
  """`main` with the library's errors turned into one line and an exit status."""

  def wrapped(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      fail(str(e))
    except errors.NumericsError as e:
      fail(f"{type(e).__name__}: {e}", FAILURE_EXIT)
    except errors.NhpError as e:
      fail(f"{type(e).__name__}: {e}")
    except KeyboardInterrupt:
      sys.stderr.write(f"{_name()}: interrupted; what was finished is kept: run the same "
                       f"command again to resume\n")
      sys.stderr.flush()
      sys.exit(INTERRUPT_EXIT)

  return wrapped


def run(main) -> None:
  """`absl.app.run(main)` with one-line errors (see the module docstring)."""
  app.run(guarded(main), flags_parser=_parse_flags)
