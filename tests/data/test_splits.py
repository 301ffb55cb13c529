"""splits.py: the vendored official file, split lookups and validation errors."""

import json
import os

import pytest

from nhp_jax.data import splits
from nhp_jax.errors import TaskFileError

SHARED_SPLITS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                             "hpatches-tasks", "splits.json")


def test_vendored_file_is_the_official_one():
  if not os.path.isfile(SHARED_SPLITS):
    pytest.skip("shared task files not present")
  with open(SHARED_SPLITS, "rb") as a, open(splits.VENDORED_SPLITS, "rb") as b:
    assert a.read() == b.read()


def test_vendored_structure():
  s = splits.load_splits()
  assert sorted(s) == ["a", "b", "c", "full", "illum", "view"]
  for name in "abc":
    test = splits.split_sequences(name, "test", s)
    train = splits.split_sequences(name, "train", s)
    assert (len(test), len(train)) == (40, 76)
    assert sum(t.startswith("i_") for t in test) == 20
    assert not set(test) & set(train)
  full = splits.split_sequences("full", "test", s)
  assert len(full) == 116 == len(set(full))
  assert len(splits.split_sequences("illum", "test", s)) == 57
  assert len(splits.split_sequences("view", "test", s)) == 59
  a_all = splits.split_sequences("a", "train", s) + splits.split_sequences("a", "test", s)
  assert set(a_all) == set(full)


def test_unknown_split_lists_known():
  with pytest.raises(TaskFileError, match=r"unknown split 'z'.*a, b, c, full, illum, view"):
    splits.split_sequences("z", "test", splits.load_splits())


@pytest.mark.parametrize("subset", ["train", "val", "name"])
def test_missing_subset_lists_present(subset):
  with pytest.raises(TaskFileError, match=f"no subset '{subset}'.*it has: test"):
    splits.split_sequences("full", subset, splits.load_splits())


def test_empty_subset(tmp_path):
  path = tmp_path / "splits.json"
  path.write_text(json.dumps({"a": {"name": "a", "test": [], "train": ["x"]}}))
  with pytest.raises(TaskFileError, match="lists no sequences"):
    splits.split_sequences("a", "test", splits.load_splits(path))


def test_directory_and_root_lookup(tmp_path):
  own = {"a": {"name": "a", "test": ["i_x"], "train": ["v_y"]}}
  (tmp_path / "splits.json").write_text(json.dumps(own))
  assert splits.load_splits(tmp_path) == own
  assert splits.splits_for_root(tmp_path) == own
  assert splits.splits_for_root(tmp_path / "elsewhere") == splits.load_splits()


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ("[]", "non-empty JSON object"),
    ('{"a": []}', "split 'a': expected an object"),
    ('{"a": {"train": ["x"]}}', "expected a 'test' list"),
    ('{"a": {"test": "i_x"}}', "'test' should be a list of sequence names"),
    ('{"a": {"test": ["i_x", 3]}}', "'test' should be a list of sequence names"),
    ('{"a": {"test": ["i_x", "i_x"]}}', "lists sequences twice"),
    ('{"a": {"test": ["i_x"], "train": ["i_x"]}}', "in both train and test"),
    ('{"a": {"name": "b", "test": ["i_x"]}}', "'name' field should be 'a'"),
    ('{"a": {"test": ["i_x"], "val": ["i_y"]}}', "found also \\['val'\\]"),
])
def test_malformed_files_name_the_file(tmp_path, content, message):
  path = tmp_path / "splits.json"
  path.write_text(content)
  with pytest.raises(TaskFileError, match=message) as e:
    splits.load_splits(path)
  assert str(path) in str(e.value)


def test_missing_file(tmp_path):
  with pytest.raises(TaskFileError, match="splits file not found"):
    splits.load_splits(tmp_path / "nope.json")
