"""Compares descriptors from the results cache: the official tables side by side, and a bar figure.

  python -m experiments.compare --results-dir=results --descr=sift,hardnet
  python -m experiments.compare --results-dir=results sift hardnet tfeat
  python -m experiments.compare --results-dir=results --descr-name=sift
      --descr-name=hardnet --task=verification --task=retrieval --split=a

reads `<results-dir>/<descr>_<task>_<split>.json`, written by
`python -m experiments.evaluate --descr-name=<descr> --results-dir=...`, and
prints, per task in the order given (default verification, matching,
retrieval), the tables of the official `hpatches_results.py` for every
descriptor: its layout, row and column order and digits
(`--layout=official`: one descriptor below the other, exactly as it
prints several `--descr-name`; default `side_by_side`: the same blocks
next to each other). Then draws the benchmark's bar figure (per task, one
bar per descriptor, Easy/Hard/Tough markers, legend below the axes) to
`--plot_out` (default `<results-dir>/compare_<a>+<b>_<split>.png`; empty:
none); `--json_out` gets the printed numbers. Missing or malformed cache entries end with one line naming the
file, and exit status 2.
"""

from absl import flags

from experiments import cli
from nhp_jax import errors
from nhp_jax.evaluation import report
from nhp_jax.evaluation import results_cache
from nhp_jax.evaluation import runner
from nhp_jax.evaluation import types


_RESULTS_DIR = flags.DEFINE_string("results_dir", None, "the results cache of "
                                   "experiments.evaluate --results_dir", required=True)
_DESCR = flags.DEFINE_list("descr", [], "descriptor names, comma separated (or positional "
                           "arguments, or --descr_name repeated)")
_DESCR_NAME = flags.DEFINE_multi_string("descr_name", None, "official form: one descriptor "
                                        "per flag, repeated")
_TASK = flags.DEFINE_multi_string("task", None, "task, repeated (default: all three)")
_SPLIT = flags.DEFINE_string("split", "a", "split the results were computed on")
_LAYOUT = flags.DEFINE_string("layout", "side_by_side", "official (one descriptor below the "
                              "other, as hpatches_results.py) or side_by_side")
_WIDTH = flags.DEFINE_integer("width", 160, "side_by_side: line width the blocks wrap at")
_PLOT_OUT = flags.DEFINE_string("plot_out", None, "bar figure PNG (default "
                                "<results_dir>/compare_<names>_<split>.png; empty: none)")
_JSON_OUT = flags.DEFINE_string("json_out", None, "also write the printed numbers here: "
                                "{split, tasks: {task: {descriptor: table values}}}")
_PCAPL = flags.DEFINE_string("pcapl", "no", "official flag; only 'no'")

for _dashed, _name in (("descr-name", "descr_name"), ("results-dir", "results_dir")):
  flags.DEFINE_alias(_dashed, _name)


def _names(argv) -> list[str]:
  names = list(argv[1:]) + list(_DESCR.value) + list(_DESCR_NAME.value or [])
  names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
  if not names:
    raise errors.ConfigError("--descr: expected at least one descriptor name (--descr=a,b, "
                             "positional names or --descr-name repeated), found none")
  for name in names:
    results_cache.check_name(name, "--descr")
  return names


def _tasks() -> list[str]:
  tasks = [t.strip().lower() for value in (_TASK.value or types.BENCHMARKS)
           for t in value.split(",")]
  bad = [t for t in tasks if t not in types.BENCHMARKS]
  if bad or not tasks:
    raise errors.ConfigError(f"--task: expected {', '.join(types.BENCHMARKS)}, found "
                             f"{', '.join(repr(t) for t in bad) or 'none'}")
  return list(dict.fromkeys(tasks))


def main(argv):
  try:
    names, tasks = _names(argv), _tasks()
    if _WIDTH.value < 20:
      raise errors.ConfigError(f"--width: expected at least 20 characters, found {_WIDTH.value}")
    if _PCAPL.value != "no":
      raise errors.ConfigError(f"--pcapl: expected 'no' (PCA/power-law results are not "
                               f"computed), found {_PCAPL.value!r}")
    if _LAYOUT.value not in report.LAYOUTS:
      raise errors.ConfigError(f"--layout: expected one of {', '.join(report.LAYOUTS)}, "
                               f"found {_LAYOUT.value!r}")
    text = runner.compare(_RESULTS_DIR.value, names, tasks, _SPLIT.value, layout=_LAYOUT.value,
                          width=_WIDTH.value, plot_out=_PLOT_OUT.value, json_out=_JSON_OUT.value)
  except errors.NhpError as e:
    cli.fail(f"{type(e).__name__}: {e}")
  print(text, end="", flush=True)

if __name__ == "__main__":
  cli.run(main)
