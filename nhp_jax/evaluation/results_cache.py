"""The results cache of `experiments.evaluate --results_dir`: one JSON document per task.

Layout: the official `hpatches_eval.py --results-dir` naming, one file per
(descriptor, task, split), JSON where the official code writes dill
pickles:

  <results_dir>/<descriptor>_<task>_<split>.json

e.g. `results/sift_verification_a.json`. Each document:

  {"format": "nhp_jax.results/1", "descriptor": name, "task": task,
   "split": split,
   "key": {what the numbers depend on: the descriptor files' fingerprint
           (count, bytes and a SHA-256 over each file's path, size and
           modification time), metric, splits file, task sources,
           verification pairs, curve points, pool sizes},
   "result": the task's entry of the results document (mAP, levels,
             wall_time_s and, from the detail scorers, curves / per-query
             APs),
   "info": {split, metric, sequences, patches, dim, pairs/queries},
   "source": {"descriptors_dir": absolute path, "sequences": [names]}}

An entry is reused when its key equals the current one; a rewritten,
touched, added or removed descriptor file changes the fingerprint, so the
task is scored again (as is everything with `overwrite`). The official
cache is only keyed by its file name. Entries are written atomically;
`experiments.compare` reads them by name, and refuses an entry whose
descriptor folder is still there with other files than it was scored from
(a stale number printed as current is worse than none); a folder moved or
deleted since cannot be checked and its entry is read as it is.
"""

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nhp_jax import atomic
from nhp_jax.data import layout
from nhp_jax.errors import ConfigError
from nhp_jax.evaluation import types

FORMAT = "nhp_jax.results/1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def check_name(name: str, what: str = "descriptor name") -> str:
  """Returns `name` if it can name cache files, else raises ConfigError."""
  if not isinstance(name, str) or not _NAME.fullmatch(name):
    raise ConfigError(f"{what}: expected letters, digits and . _ + = - (not starting with "
                      f"a symbol), found {name!r}")
  return name


def entry_path(results_dir: str | os.PathLike, descriptor: str, task: str, split: str) -> str:
  """`<results_dir>/<descriptor>_<task>_<split>.json`."""
  return os.path.join(os.fspath(results_dir), f"{descriptor}_{task}_{split}.json")


def fingerprint(descriptors_dir: str | os.PathLike,
                sequences: Sequence[str]) -> dict[str, Any] | None:
  """What identifies the descriptor files of `sequences`, without reading them.

  Returns:
    {"files", "bytes", "sha256"}: the SHA-256 of one line per file
    "<seq>/<image>.csv <size> <mtime in ns>", or None when a file is missing
    (then reading them reports it).
  """
  digest = hashlib.sha256()
  total = count = 0
  for seq in sequences:
    for image in layout.IMAGE_TYPES:
      rel = f"{seq}/{image}.csv"
      try:
        st = os.stat(os.path.join(os.fspath(descriptors_dir), seq, f"{image}.csv"))
      except OSError:
        return None
      digest.update(f"{rel} {st.st_size} {st.st_mtime_ns}\n".encode())
      total += st.st_size
      count += 1
  return {"files": count, "bytes": total, "sha256": digest.hexdigest()}


def lookup(path: str, key: Mapping[str, Any]) -> tuple[dict | None, str]:
  """(entry, why): the entry at `path` if its key equals `key`, else (None, the reason)."""
  try:
    with open(path, encoding="utf-8") as f:
      entry = json.load(f)
  except FileNotFoundError:
    return None, "not cached"
  except (OSError, ValueError) as e:
    return None, f"unreadable ({e})"
  if not isinstance(entry, dict) or entry.get("format") != FORMAT or "result" not in entry:
    return None, f"not a {FORMAT} document"
  if entry.get("key") != json.loads(json.dumps(key)):
    return None, "stale (descriptor files or settings changed)"
  return entry, "cached"


def store(path: str, *, descriptor: str, task: str, split: str, key: Mapping[str, Any],
          source: Mapping[str, Any] | None = None,
          result: Mapping[str, Any], info: Mapping[str, Any]) -> dict:
  """Writes one entry atomically; returns it."""
  entry = {"format": FORMAT, "descriptor": descriptor, "task": task, "split": split,
           "key": dict(key), "result": dict(result), "info": dict(info),
           "source": dict(source or {})}
  atomic.write_json(path, entry)
  return entry


def load_results(results_dir: str | os.PathLike, descriptors: Sequence[str],
                 tasks: Sequence[str], split: str) -> dict[str, dict[str, dict]]:
  """The cached results of several descriptors, for `experiments.compare`.

  Args:
    results_dir: the cache folder.
    descriptors: descriptor names, in the order wanted.
    tasks: tasks among `types.BENCHMARKS`.
    split: split name.

  Returns:
    {descriptor: {task: result}} (the entries' "result").

  Raises:
    ConfigError: a bad name, an unknown task, a missing or malformed entry,
      or a stale one (its descriptor files changed since it was scored),
      naming the file and how to make it again.
  """
  if not os.path.isdir(results_dir):
    raise ConfigError(f"--results_dir: expected a folder of cached results, found no folder "
                      f"{os.fspath(results_dir)!r}")
  unknown = [t for t in tasks if t not in types.BENCHMARKS]
  if unknown or not tasks:
    raise ConfigError(f"--task: expected some of {', '.join(types.BENCHMARKS)}, "
                      f"found {', '.join(tasks) or 'none'}")
  out = {}
  for name in descriptors:
    check_name(name)
    out[name] = {}
    for task in tasks:
      path = entry_path(results_dir, name, task, split)
      try:
        with open(path, encoding="utf-8") as f:
          entry = json.load(f)
      except FileNotFoundError:
        raise ConfigError(
            f"{path}: expected the cached {task} results of {name!r} on split {split}, found "
            f"no file (python -m experiments.evaluate --descr-name={name} --task={task} "
            f"--split={split} --results-dir={os.fspath(results_dir)} ...)") from None
      except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: expected a JSON results document, found an unreadable "
                          f"file ({e})") from None
      if (not isinstance(entry, dict) or entry.get("format") != FORMAT
          or entry.get("task") != task or not isinstance(entry.get("result"), dict)):
        raise ConfigError(f"{path}: expected a {FORMAT} document of task {task}, found "
                          f"format {entry.get('format') if isinstance(entry, dict) else None!r}")
      _check_fresh(path, entry, name, task, split, results_dir)
      out[name][task] = entry["result"]
  return out


def _check_fresh(path: str, entry: dict, name: str, task: str, split: str,
                 results_dir) -> None:
  """ConfigError if the entry's descriptor folder now holds other files than were scored."""
  source = entry.get("source")
  if not isinstance(source, dict) or not isinstance(source.get("descriptors_dir"), str):
    return   # written before entries named their source
  folder = source["descriptors_dir"]
  now = fingerprint(folder, list(source.get("sequences", ())))
  key = entry.get("key")
  scored = key.get("descriptors") if isinstance(key, dict) else None
  if now is not None and scored is not None and now != scored:
    raise ConfigError(
        f"{path}: stale: the descriptor files in {folder} changed since these {task} results "
        f"were scored; score them again (python -m experiments.evaluate "
        f"--descriptors_dir={folder} --descr-name={name} --task={task} --split={split} "
        f"--results-dir={os.fspath(results_dir)} ...)")
