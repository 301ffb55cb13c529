"""HPatches train/test splits: which sequences each split trains and tests on.

The file format is the official `splits.json` of the HPatches benchmark:
`{split: {"name": split, "test": [seq, ...], "train": [seq, ...]}}`, where
splits a, b and c have both lists and full, illum and view only `test`. The
official file is vendored in `resources/splits.json` (BSD-2-Clause, see
`resources/COPYING.hpatches-benchmark`); a data folder may carry its own (the
embedded dataset does, over its generated sequence names).
"""

import json
import os

from nhp_jax.errors import TaskFileError

SPLITS_FILENAME = "splits.json"
VENDORED_SPLITS = os.path.join(os.path.dirname(__file__), "resources", SPLITS_FILENAME)
SUBSETS = ("train", "test")


def load_splits(path: str | os.PathLike | None = None) -> dict[str, dict]:
  """Reads and validates a splits file.

  Args:
    path: a `splits.json` file, or a data folder holding one; None reads the
      vendored official file.

  Returns:
    {split name: {"name": str, "test": [seq], optionally "train": [seq]}}.

  Raises:
    TaskFileError: the file is missing, not JSON, or not of the structure above.
  """
  path = VENDORED_SPLITS if path is None else os.fspath(path)
  if os.path.isdir(path):
    path = os.path.join(path, SPLITS_FILENAME)
  try:
    with open(path, encoding="utf-8") as f:
      splits = json.load(f)
  except FileNotFoundError:
    raise TaskFileError(f"{path}: splits file not found") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise TaskFileError(f"{path}: expected a JSON splits file, found invalid JSON ({e})") from None
  _validate(splits, path)
  return splits


def splits_for_root(data_dir: str | os.PathLike) -> dict[str, dict]:
  """A data folder's own `splits.json` if it has one, else the vendored official file."""
  own = os.path.join(os.fspath(data_dir), SPLITS_FILENAME)
  return load_splits(own if os.path.isfile(own) else None)


def _validate(splits, path: str) -> None:
  if not isinstance(splits, dict) or not splits:
    raise TaskFileError(f"{path}: expected a non-empty JSON object {{split: {{...}}}}, "
                        f"found {type(splits).__name__}")
  for name, entry in splits.items():
    where = f"{path}: split {name!r}"
    if not isinstance(entry, dict):
      raise TaskFileError(f"{where}: expected an object with 'test' (and 'train'), "
                          f"found {type(entry).__name__}")
    unknown = set(entry) - {"name", *SUBSETS}
    if unknown:
      raise TaskFileError(f"{where}: expected keys name/test/train, found also {sorted(unknown)}")
    if "test" not in entry:
      raise TaskFileError(f"{where}: expected a 'test' list, found keys {sorted(entry)}")
    if "name" in entry and entry["name"] != name:
      raise TaskFileError(f"{where}: 'name' field should be {name!r}, found {entry['name']!r}")
    for subset in SUBSETS:
      if subset not in entry:
        continue
      seqs = entry[subset]
      if not isinstance(seqs, list) or not all(isinstance(s, str) and s for s in seqs):
        raise TaskFileError(f"{where}: {subset!r} should be a list of sequence names, "
                            f"found {seqs!r:.80}")
      if len(set(seqs)) != len(seqs):
        dup = sorted({s for s in seqs if seqs.count(s) > 1})
        raise TaskFileError(f"{where}: {subset!r} lists sequences twice: {dup}")
    if "train" in entry and set(entry["train"]) & set(entry["test"]):
      both = sorted(set(entry["train"]) & set(entry["test"]))
      raise TaskFileError(f"{where}: sequences in both train and test: {both[:5]}")


def split_sequences(split: str, subset: str, splits: dict[str, dict]) -> list[str]:
  """The sequence names of one subset of one split, in file order.

  Args:
    split: a split name in `splits`, e.g. "a".
    subset: "train" or "test".
    splits: as returned by `load_splits`.

  Raises:
    TaskFileError: unknown split or subset (naming the known ones), or an
      empty list.
  """
  if split not in splits:
    raise TaskFileError(f"unknown split {split!r}; known splits: {', '.join(sorted(splits))}")
  entry = splits[split]
  if subset not in entry or subset == "name":
    have = [s for s in SUBSETS if s in entry]
    raise TaskFileError(f"split {split!r} has no subset {subset!r}; it has: {', '.join(have)}")
  seqs = list(entry[subset])
  if not seqs:
    raise TaskFileError(f"split {split!r} subset {subset!r} lists no sequences")
  return seqs
