"""The documented uses run: the Model docstring's example (doctest), the README's Python
snippet on a tiny model and the embedded smoke set, and a cheap `import nhp_jax`."""

import doctest
import os
import re
import subprocess
import sys

import pytest

import nhp_jax
from nhp_jax import api

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.parametrize("kind", ["pair", "joint"])
def test_model_docstring_example(model_files, workdir_paths, kind):
  """The `>>>` example of `nhp_jax.Model`, on an exported file and on a workdir."""
  for path in (model_files[kind], workdir_paths[kind]):
    (test,) = doctest.DocTestFinder(recurse=False).find(api.Model, "Model",
                                                         globs={"model_path": path})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False) == doctest.TestResults(failed=0, attempted=9)


def _readme_snippet() -> str:
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    text = f.read()
  section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
  (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
  return code


def test_readme_snippet_runs(model_files, capsys):
  code = _readme_snippet()
  assert len(code.strip().splitlines()) <= 10
  # The snippet on this test's descriptor-only model, the smoke set and fewer pairs.
  for old, new in (('"workdirs/main/model"', repr(str(model_files["descriptor"]))),
                   ('size="small"', 'size="smoke"'), ("n_pairs=100_000", "n_pairs=500")):
    assert code.count(old) == 1, old
    code = code.replace(old, new)
  scope = {}
  exec(compile(code, "README.md", "exec"), scope)   # pylint: disable=exec-used
  printed = capsys.readouterr().out.strip().splitlines()[-1]
  scores = {k: round(scope["doc"][k], 3) for k in ("verification", "matching", "retrieval")}
  assert printed == str(scores)
  assert all(0 <= v <= 1 for v in scores.values())
  assert scope["descs"].shape == (scope["test"].num_labels * 16, 128)


def test_import_is_cheap_and_exports_are_lazy():
  code = ("import sys, nhp_jax; heavy = [m for m in ('jax', 'flax', 'numpy', 'nhp_jax.api') "
          "if m in sys.modules]; assert not heavy, heavy; "
          "assert {'load', 'evaluate', 'Model', 'ModelFileError'} <= set(dir(nhp_jax)); "
          "assert nhp_jax.load.__module__ == 'nhp_jax.api' and 'jax' in sys.modules; "
          "print(nhp_jax.__version__)")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == nhp_jax.__version__
  with pytest.raises(AttributeError, match="no attribute 'lod'"):
    nhp_jax.lod   # pylint: disable=pointless-statement
