"""Atomic output: write to a temporary name in the same folder, then rename.

A reader never sees a half-written file or folder: either the old one (or
none) or the complete new one. Every file and folder nhp_jax writes goes
through here.
"""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

from absl import logging


def _umask() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` on success.

  Args:
    path: final destination.
    suffix: suffix for the temporary name (some writers, e.g. np.save or
      matplotlib, pick the format from the extension: pass ".npy" / ".png").

  The file gets the permissions of one made with the current umask (not
  mkstemp's 0600, which would hide results from other users). On an
  exception the temporary file is removed and `path` is left untouched.
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp" + suffix, dir=folder)
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, 0o666 & ~_umask())
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


def read_record(path: str | os.PathLike) -> dict | None:
  """A JSON record written by `write_json`, or None when absent or unreadable (then logged).

  For resumable work: an unreadable record means "not done", and the work is checked again.
  """
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, json.JSONDecodeError) as e:
    logging.warning("%s: unreadable (%s); the work it records is checked again", path, e)
    return None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = True) -> Iterator[str]:
  """Yields an empty temporary folder beside `path`; on success it becomes `path`.

  The temporary folder is named `.<name>.tmp-*` (so stale ones can be found)
  and gets the permissions of a folder made with the current umask.

  Args:
    path: final destination folder.
    replace: True: an existing `path` is swapped out and removed after the
      new folder is in place. False: `path` is a cache entry that another
      process may finish first; if it exists when ours is complete, theirs is
      kept and ours discarded (remove an untrusted leftover yourself before
      leaving the block).

  On an exception the temporary folder is removed and `path` is untouched.
  """
  path = os.path.abspath(os.fspath(path))
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
  os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from other users
  try:
    yield tmp
    if replace and os.path.exists(path):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
      os.replace(path, os.path.join(old, "d"))
      os.replace(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      try:
        os.rename(tmp, path)
      except OSError:
        if replace or not os.path.isdir(path):  # else another process finished it first
          raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
