"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader never sees a half-written file: either the old file (or none) or the
complete new one. Every file nhp_jax writes goes through here.
"""

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` on success.

  Args:
    path: final destination.
    suffix: suffix for the temporary name (some writers, e.g. np.save or
      matplotlib, pick the format from the extension: pass ".npy" / ".png").

  On an exception the temporary file is removed and `path` is left untouched.
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp" + suffix, dir=folder)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_text(path: str | os.PathLike, text: str) -> None:
  """Atomically writes `text` (UTF-8) to `path`."""
  with atomic_path(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """Atomically writes `obj` as indented JSON to `path`."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
