"""The Colab notebook (experiments/colab_tpu.ipynb) without running it: no network, no Colab.

Checks that it is a valid nbformat 4 notebook with no stored outputs, that every
code cell is Python once IPython's `!` / `%` lines are set aside, that its own
process never imports JAX (libtpu lets one process hold the TPU: the training
subprocesses need it), that every `python -m experiments.X` (or benchmarks.X)
it runs exists, and that every `--flag` it passes is one the binary defines
(read from the binaries' own `--helpfull` / `--help` output). The checker is
also run on mutated copies of the notebook, so a misspelled flag, module or an
in-process `import jax` is known to fail it.
"""

import ast
import concurrent.futures
import copy
import functools
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(ROOT, "experiments", "colab_tpu.ipynb")

# The binaries the notebook is for: it must run each of them.
REQUIRED_MODULES = ("experiments.main", "experiments.evaluate", "experiments.export_descriptors",
                    "experiments.reproduce")
MODULE_RE = re.compile(r"\bpython3?\s+-m\s+((?:experiments|benchmarks)\.\w+)")
FLAG_RE = re.compile(r"(?<![\w-])--([A-Za-z]\w*)")
JAX_IMPORT_RE = re.compile(r"^\s*(import jax|from jax)")
# Top-level packages that import JAX (or hold an accelerator) when imported in the notebook.
HEAVY_PACKAGES = {"jax", "jaxlib", "flax", "optax", "orbax", "nhp_jax", "experiments",
                  "benchmarks", "tensorflow", "tensorflow_datasets"}
# absl: "  --name: help", "  --[no]name: help", "  -?,--[no]help: help".
ABSL_FLAG_LINE = re.compile(r"^\s+(?:-\S,)?--(\[no\])?(\w+):", re.M)
# argparse: "  --name NAME   help", "  -h, --help   help".
ARGPARSE_FLAG_LINE = re.compile(r"^\s+(?:-\w+,\s+)?--(\w+)", re.M)


def load(path=NOTEBOOK) -> dict:
  with open(path) as f:
    return json.load(f)


def source(cell) -> str:
  s = cell.get("source", "")
  return "".join(s) if isinstance(s, list) else s


def code_cells(nb) -> list[str]:
  return [source(c) for c in nb["cells"] if c.get("cell_type") == "code"]


def logical_lines(text: str) -> list[tuple[bool, str]]:
  """(is_ipython, line) per logical line: `!` / `%` lines with their `\\` continuations
  joined, and `name = !cmd` captures, are IPython's; the rest is Python."""
  out, pending = [], None
  for line in text.splitlines():
    if pending is not None:
      pending += " " + line.strip()
      if not line.rstrip().endswith("\\"):
        out.append((True, pending))
        pending = None
      continue
    stripped = line.lstrip()
    ipython = stripped[:1] in ("!", "%") or re.match(r"^[\w.]+\s*=\s*[!%]", stripped)
    if ipython and line.rstrip().endswith("\\"):
      pending = line
    else:
      out.append((bool(ipython), line))
  if pending is not None:
    out.append((True, pending))
  return out


def python_of(text: str) -> str | None:
  """The cell's Python: IPython lines become `pass` (or `name = []` for captures) at their
  indentation; None for a cell magic (`%%...`), whose body is not Python."""
  if text.lstrip().startswith("%%"):
    return None
  lines = []
  for ipython, line in logical_lines(text):
    if ipython:
      indent = line[:len(line) - len(line.lstrip())]
      capture = re.match(r"^\s*([\w.]+)\s*=\s*[!%]", line)
      line = indent + (f"{capture.group(1)} = []" if capture else "pass")
    lines.append(line)
  return "\n".join(lines)


# ---- checks: each returns a list of problems (empty: fine) ----


def structure_problems(nb) -> list[str]:
  problems = []
  if nb.get("nbformat") != 4:
    problems.append(f"nbformat is {nb.get('nbformat')!r}, not 4")
  if not isinstance(nb.get("metadata"), dict):
    problems.append("notebook metadata is not a dict")
  if not isinstance(nb.get("cells"), list) or not nb.get("cells"):
    return problems + ["no cells"]
  for i, cell in enumerate(nb["cells"]):
    where = f"cell {i}"
    if cell.get("cell_type") not in ("code", "markdown", "raw"):
      problems.append(f"{where}: cell_type {cell.get('cell_type')!r}")
    s = cell.get("source")
    if not (isinstance(s, str) or (isinstance(s, list) and all(isinstance(x, str) for x in s))):
      problems.append(f"{where}: source is not a string or a list of strings")
    if not isinstance(cell.get("metadata"), dict):
      problems.append(f"{where}: metadata is not a dict")
    if cell.get("cell_type") == "code":
      if cell.get("outputs") != []:
        problems.append(f"{where}: stored outputs")
      if "execution_count" not in cell or cell["execution_count"] is not None:
        problems.append(f"{where}: execution_count is not None")
  return problems


def compile_problems(nb) -> list[str]:
  problems = []
  for i, text in enumerate(code_cells(nb)):
    python = python_of(text)
    if python is None:
      continue
    try:
      compile(python, f"code cell {i}", "exec")
    except SyntaxError as e:
      problems.append(f"code cell {i}: {e}")
  return problems


def import_problems(nb) -> list[str]:
  """JAX (or a package that imports it) imported in the notebook's own process."""
  problems = []
  for i, text in enumerate(code_cells(nb)):
    for ipython, line in logical_lines(text):
      if not ipython and JAX_IMPORT_RE.match(line):
        problems.append(f"code cell {i}: imports JAX in the notebook process: {line.strip()}")
    python = python_of(text)
    if python is None:
      continue
    try:
      tree = ast.parse(python)
    except SyntaxError:
      continue   # compile_problems reports it
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
               else [])
      for name in names:
        if name.split(".")[0] in HEAVY_PACKAGES:
          problems.append(f"code cell {i}: imports {name} in the notebook process "
                          f"(line {node.lineno}); run it in a subprocess")
  return problems


def invocations(nb) -> list[tuple[int, list[str], str, bool]]:
  """(cell index, modules, text, is_ipython) per logical line of the code cells."""
  out = []
  for i, text in enumerate(code_cells(nb)):
    for ipython, line in logical_lines(text):
      out.append((i, MODULE_RE.findall(line), line, ipython))
  return out


def modules_of(nb) -> set[str]:
  return {m for _, mods, _, _ in invocations(nb) for m in mods}


def module_problems(nb) -> list[str]:
  problems = []
  for module in sorted(modules_of(nb)):
    if not os.path.isfile(os.path.join(ROOT, *module.split(".")) + ".py"):
      problems.append(f"python -m {module}: no {module.replace('.', '/')}.py")
  for module in REQUIRED_MODULES:
    if module not in modules_of(nb):
      problems.append(f"the notebook never runs python -m {module}")
  return problems


def flag_problems(nb, flags_by_module: dict[str, set[str]]) -> list[str]:
  """Flags no binary defines. A `!python -m X` line's flags must be X's; in a cell that runs
  binaries, flags in its Python lines (strings spliced into their commands) must be those
  of one of them. Other shell lines (pip, rsync), magics and the Python of cells that run
  no binary (e.g. nvidia-smi's arguments) are not this project's flags and are skipped."""
  problems = []
  lines = invocations(nb)
  for i, mods, line, ipython in lines:
    cell_mods = sorted({m for j, ms, _, _ in lines if j == i for m in ms})
    if (ipython and not mods) or not cell_mods:
      continue
    mods = mods or cell_mods
    allowed = set().union(*(flags_by_module.get(m, set()) for m in mods))
    owner = " / ".join(mods)
    for flag in FLAG_RE.findall(line):
      if flag not in allowed:
        problems.append(f"code cell {i}: --{flag} is not a flag of {owner}: {line.strip()}")
  return problems


# ---- the binaries' flags, from their own help ----


def binary_flags(module: str) -> set[str]:
  """Flags `python -m module` accepts: absl's --helpfull, else argparse's --help."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get(
      "PYTHONPATH")])), JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")

  def run(arg):
    return subprocess.run([sys.executable, "-m", module, arg], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  proc = run("--helpfull")
  absl = ABSL_FLAG_LINE.findall(proc.stdout)
  if absl:
    return {name for _, name in absl} | {"no" + name for no, name in absl if no}
  proc = run("--help")
  if proc.returncode:
    raise AssertionError(f"python -m {module} --help failed:\n{proc.stderr[-2000:]}")
  return set(ARGPARSE_FLAG_LINE.findall(proc.stdout))


@functools.lru_cache(maxsize=None)
def flags_of(modules: tuple[str, ...]) -> dict[str, set[str]]:
  with concurrent.futures.ThreadPoolExecutor(len(modules) or 1) as pool:
    return dict(zip(modules, pool.map(binary_flags, modules)))


@pytest.fixture(scope="module")
def notebook():
  return load()


@pytest.fixture(scope="module")
def flags(notebook):
  known = tuple(sorted(m for m in modules_of(notebook)
                       if os.path.isfile(os.path.join(ROOT, *m.split(".")) + ".py")))
  return flags_of(known)


# ---- tests ----


def test_valid_nbformat4_without_outputs(notebook):
  assert structure_problems(notebook) == []
  try:
    import nbformat  # pylint: disable=g-import-not-at-top
  except ImportError:
    return   # not a dependency: the structural checks above stand in for its schema
  nbformat.validate(nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT))


def test_code_cells_are_python(notebook):
  assert compile_problems(notebook) == []


def test_notebook_process_never_imports_jax(notebook):
  assert import_problems(notebook) == []
  # The device check exists, and runs in a subprocess.
  assert any(re.match(r'\s*!python3? -c "import jax;', line)
             for text in code_cells(notebook) for line in text.splitlines())


def test_modules_exist(notebook):
  assert module_problems(notebook) == []


def test_flags_are_defined(notebook, flags):
  for module in ("experiments.main", "experiments.evaluate"):   # the help was read at all
    assert {"workdir", "data_dir"} <= flags[module], module
  assert "train_labels" in flags["experiments.main"]
  assert flag_problems(notebook, flags) == []


def test_main_gets_every_scale_flag(notebook, flags):
  """The training cell passes every scale flag explicitly (none falls back to the main
  job's shortened defaults)."""
  scale = {"train_labels", "denoiser_epochs", "descriptor_examples_per_epoch", "descriptor_epochs",
           "joint_examples_per_epoch", "joint_epochs", "pretrain_crops", "pretrain_epochs"}
  assert scale <= flags["experiments.main"]
  main_lines = [line for _, mods, line, _ in invocations(notebook) if "experiments.main" in mods]
  assert main_lines
  assert scale | {"pipeline", "workdir", "dtype", "seed", "scale"} <= set(
      FLAG_RE.findall(main_lines[0]))
  assert "--scale=full " in main_lines[0]   # the official pairs, the configs' own sizes


def mutated(nb, old: str, new: str) -> dict:
  nb = copy.deepcopy(nb)
  hits = 0
  for cell in nb["cells"]:
    if cell["cell_type"] == "code" and old in source(cell):
      cell["source"] = source(cell).replace(old, new, 1)
      hits += 1
      break
  assert hits, f"{old!r} is not in the notebook"
  return nb


def test_the_checks_catch_mistakes(notebook, flags):
  """Each check fails on a copy of the notebook with the mistake it is for."""
  bad = mutated(notebook, "--denoiser_epochs=", "--denoiser_epoch=")
  assert any("--denoiser_epoch " in p for p in flag_problems(bad, flags))
  bad = mutated(notebook, "--input=", "--inputs=")   # export_descriptors' flag
  assert any("--inputs " in p for p in flag_problems(bad, flags))
  bad = mutated(notebook, 'f"--data_dir={DATA_ROOT}"', 'f"--datadir={DATA_ROOT}"')
  assert any("--datadir " in p for p in flag_problems(bad, flags))   # a flag in a Python string
  bad = mutated(notebook, "-m experiments.export_descriptors", "-m experiments.export_descriptor")
  assert module_problems(bad)
  bad = mutated(notebook, "import glob,", "import jax\nimport glob,")
  assert import_problems(bad)
  bad = mutated(notebook, "import glob,", "from nhp_jax.data import cache\nimport glob,")
  assert import_problems(bad)
  bad = mutated(notebook, "import glob,", "import glob,,")
  assert compile_problems(bad)
  bad = copy.deepcopy(notebook)
  next(c for c in bad["cells"] if c["cell_type"] == "code")["outputs"] = [
      {"output_type": "stream", "name": "stdout", "text": "x"}]
  assert structure_problems(bad)
