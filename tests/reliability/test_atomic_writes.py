"""Every file the package and the binaries write goes through nhp_jax.atomic: a scan of the
source for direct writes outside `with atomic.atomic_path(...)` / `atomic_dir(...)` blocks.
A new direct write fails this test until it is made atomic or justified in ALLOWED."""

import ast
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCANNED = ("nhp_jax", "experiments")
EXEMPT = ("nhp_jax/atomic.py",)  # the atomic writers themselves
ATOMIC_CONTEXTS = {"atomic_path", "atomic_dir"}
# Methods and functions that create or fill a file whatever their arguments.
WRITERS = {"save", "savez", "savez_compressed", "savetxt", "savefig", "dump", "tofile",
           "write_bytes", "write_text", "imsave", "imwrite", "open_memmap", "write_file",
           "to_csv"}
SHUTIL_WRITERS = {"copy", "copyfile", "copy2", "copytree", "move"}
_WRITE_MODES = set("wax+")

# (file, enclosing function, called name) -> why this direct write is safe.
ALLOWED = {
    ("nhp_jax/data/generator.py", "write_png", "save"):
        "only called by write_sequence, which write_dataset runs inside atomic_dir",
    ("nhp_jax/data/embedded.py", "_locked", "open"):
        "opens a lock file in append mode for flock; nothing is written",
    ("nhp_jax/train/checkpointing.py", "save", "save"):
        "orbax writes each step into a temporary folder and renames it when complete",
    ("nhp_jax/train/loop.py", "train_and_evaluate", "save"):
        "Checkpointer.save (orbax, atomic by rename)",
}


def _called_name(call: ast.Call) -> str | None:
  f = call.func
  return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _mode(call: ast.Call) -> str | None:
  args = call.args[1:2] + [k.value for k in call.keywords if k.arg == "mode"]
  for a in args:
    if isinstance(a, ast.Constant) and isinstance(a.value, str):
      return a.value
    return "?"   # a computed mode: treated as a write
  return None


def _module_of(call: ast.Call) -> str | None:
  f = call.func
  return f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None


def _is_write(call: ast.Call) -> bool:
  name = _called_name(call)
  if _module_of(call) == "atomic":
    return False
  if _module_of(call) == "shutil":
    return name in SHUTIL_WRITERS
  if name == "open":
    mode = _mode(call)
    return mode is not None and (mode == "?" or bool(_WRITE_MODES & set(mode)))
  if name == "memmap":
    mode = _mode(call)
    return mode not in (None, "r", "c")
  return name in WRITERS


class _Scanner(ast.NodeVisitor):
  """Collects (function, called name, line) of writes not lexically inside an atomic block."""

  def __init__(self):
    self.functions: list[str] = []
    self.atomic_depth = 0
    self.found: list[tuple[str, str, int]] = []

  def _visit_function(self, node):
    self.functions.append(node.name)
    self.generic_visit(node)
    self.functions.pop()

  visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

  def visit_With(self, node):
    atomic = any(isinstance(item.context_expr, ast.Call) and
                 _called_name(item.context_expr) in ATOMIC_CONTEXTS for item in node.items)
    for item in node.items:
      self.visit(item)
    self.atomic_depth += atomic
    for stmt in node.body:
      self.visit(stmt)
    self.atomic_depth -= atomic

  def visit_Call(self, node):
    if not self.atomic_depth and _is_write(node):
      self.found.append((self.functions[-1] if self.functions else "<module>",
                         _called_name(node), node.lineno))
    self.generic_visit(node)


def scan_source(text: str) -> list[tuple[str, str, int]]:
  scanner = _Scanner()
  scanner.visit(ast.parse(text))
  return scanner.found


def _direct_writes() -> dict[tuple[str, str, str], list[int]]:
  out: dict[tuple[str, str, str], list[int]] = {}
  for top in SCANNED:
    for folder, _, files in os.walk(os.path.join(ROOT, top)):
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(folder, name)
          rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
          if rel in EXEMPT:
            continue
          with open(path, encoding="utf-8") as f:
            for function, called, line in scan_source(f.read()):
              out.setdefault((rel, function, called), []).append(line)
  return out


def test_no_direct_writes_outside_the_allow_list():
  unexplained = {k: v for k, v in _direct_writes().items() if k not in ALLOWED}
  assert not unexplained, (
      "direct file writes (file, function, call): lines; write through nhp_jax.atomic or add "
      f"the case to ALLOWED with the reason it is safe: {unexplained}")


def test_allow_list_has_no_stale_entries():
  assert set(ALLOWED) <= set(_direct_writes())


@pytest.mark.parametrize("source, expected", [
    ("def f(p):\n  with open(p, 'w') as f:\n    f.write('x')\n", [("f", "open", 2)]),
    ("def f(p):\n  open(p, mode='ab').close()\n", [("f", "open", 2)]),
    ("def f(p, m):\n  open(p, m)\n", [("f", "open", 2)]),
    ("import numpy as np\ndef f(p, a):\n  np.save(p, a)\n", [("f", "save", 3)]),
    ("def f(fig, p):\n  fig.savefig(p)\n", [("f", "savefig", 2)]),
    ("import json\ndef f(o, fh):\n  json.dump(o, fh)\n", [("f", "dump", 3)]),
    ("import numpy as np\nnp.memmap('x', mode='w+', shape=(2,))\n", [("<module>", "memmap", 2)]),
    ("import shutil\ndef f(a, b):\n  shutil.copy(a, b)\n  return b.copy()\n", [("f", "copy", 3)]),
    ("from nhp_jax import atomic\ndef f(p):\n  atomic.write_text(p, 'x')\n  p.write_text('x')\n",
     [("f", "write_text", 4)]),
    ("def f(p):\n  with open(p) as f, open(p, 'rb') as g:\n    return f.read()\n", []),
    ("from nhp_jax import atomic\ndef f(p, a):\n  with atomic.atomic_path(p) as t:\n"
     "    with open(t, 'w') as f:\n      f.write(a)\n", []),
    ("from nhp_jax import atomic\ndef f(p, a):\n  with atomic.atomic_dir(p) as t:\n"
     "    a.save(t + '/x.png')\n  a.save(p)\n", [("f", "save", 5)]),
])
def test_scanner_finds_writes_and_trusts_atomic_blocks(source, expected):
  assert scan_source(source) == expected
