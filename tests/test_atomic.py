"""Atomic files and folders: complete or absent, never partial."""

import os

import pytest

from nhp_jax import atomic


def test_atomic_path_renames_on_success_and_cleans_on_error(tmp_path):
  target = tmp_path / "out.json"
  atomic.write_json(target, {"a": 1})
  assert target.read_text() == '{\n  "a": 1\n}\n'
  with pytest.raises(RuntimeError):
    with atomic.atomic_path(target) as tmp:
      open(tmp, "w").write("partial")
      raise RuntimeError("killed")
  assert target.read_text() == '{\n  "a": 1\n}\n'
  assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_dir_replaces_or_keeps_and_never_leaves_partial_folders(tmp_path):
  dest = tmp_path / "d"
  with atomic.atomic_dir(dest) as tmp:
    open(os.path.join(tmp, "x"), "w").write("1")
  assert (dest / "x").read_text() == "1"
  with atomic.atomic_dir(dest) as tmp:   # replace=True swaps the old folder out
    open(os.path.join(tmp, "y"), "w").write("2")
  assert sorted(os.listdir(dest)) == ["y"]
  with atomic.atomic_dir(dest, replace=False) as tmp:   # a finished entry wins
    open(os.path.join(tmp, "z"), "w").write("3")
  assert sorted(os.listdir(dest)) == ["y"]
  with pytest.raises(RuntimeError):
    with atomic.atomic_dir(tmp_path / "e") as tmp:
      open(os.path.join(tmp, "x"), "w").write("partial")
      raise RuntimeError("killed")
  assert sorted(os.listdir(tmp_path)) == ["d"]


def test_read_record_is_none_when_absent_or_unreadable(tmp_path):
  path = tmp_path / "run.json"
  assert atomic.read_record(path) is None
  atomic.write_json(path, {"step": 3})
  assert atomic.read_record(path) == {"step": 3}
  path.write_text('{"step": 3')   # cut short: the work it records is done again
  assert atomic.read_record(path) is None


def test_files_and_folders_get_the_umask_permissions(tmp_path):
  """Not mkstemp's 0600 / mkdtemp's 0700: results are readable by whoever may read the folder."""
  old = os.umask(0o022)
  try:
    atomic.write_json(tmp_path / "r.json", {"a": 1})
    with atomic.atomic_path(tmp_path / "p.png", suffix=".png") as tmp:
      with open(tmp, "wb") as f:
        f.write(b"x")
    with atomic.atomic_dir(tmp_path / "d") as tmp:
      pass
    os.umask(0o077)
    atomic.write_text(tmp_path / "private.txt", "x")
  finally:
    os.umask(old)
  assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
  assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644
  assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
  assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600
