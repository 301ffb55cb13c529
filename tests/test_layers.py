"""The package's imports point down its layers, and no module imports itself back.

Every `import` and `from ... import` of the project's own modules (module
level and inside functions alike) is read from the source with `ast`; the
layers are those of docs/architecture.md, lowest first.
"""

import ast
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PACKAGES = ("nhp_jax", "experiments", "benchmarks")

# Lowest first: a module may import its own layer and the layers below it.
LAYERS = (
    # The package file itself: __version__ and lazy exports, no imports.
    ("core", ("nhp_jax", "nhp_jax.errors", "nhp_jax.atomic", "nhp_jax.progress",
              "nhp_jax.resources", "nhp_jax.host_devices", "nhp_jax.platform")),
    ("data", ("nhp_jax.data",)),
    ("models", ("nhp_jax.models", "nhp_jax.losses", "nhp_jax.model_file")),
    ("inference", ("nhp_jax.inference",)),
    ("train", ("nhp_jax.train",)),
    ("evaluation", ("nhp_jax.evaluation",)),
    ("api", ("nhp_jax.api",)),
    ("workflows", ("nhp_jax.workflows",)),
    ("binaries", ("experiments", "benchmarks")),
)
# The binaries' shared helpers: the only project modules outside nhp_jax a binary imports.
BINARY_HELPERS = ("experiments.cli", "experiments.training_binary", "experiments.configs",
                  "benchmarks.common")


def _modules() -> dict[str, str]:
  out = {}
  for pkg in PACKAGES:
    for folder, _, files in os.walk(os.path.join(ROOT, pkg)):
      for f in files:
        if f.endswith(".py"):
          path = os.path.join(folder, f)
          name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
          out[name.removesuffix(".__init__")] = path
  return out


MODULES = _modules()


def _imports(name: str, path: str) -> set[str]:
  """The project modules `name` imports (`from pkg import sub` counts as importing pkg.sub)."""
  package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
      for a in node.names:
        sub = f"{base}.{a.name}"
        found.add(sub if sub in MODULES else base)
  return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(name: str) -> int:
  """Index in LAYERS of the longest prefix naming `name`'s layer ("nhp_jax": only itself)."""
  best, where = -1, None
  for i, (_, prefixes) in enumerate(LAYERS):
    for p in prefixes:
      if (name == p or (p != "nhp_jax" and name.startswith(p + "."))) and len(p) > best:
        best, where = len(p), i
  if where is None:
    raise AssertionError(f"{name}: in no layer of {[n for n, _ in LAYERS]}")
  return where


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan's algorithm)."""
  index, low, stack, on, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_the_graph_sees_the_package():
  assert {"nhp_jax.evaluation.score", "nhp_jax.train.loop", "experiments.main"} <= set(GRAPH)
  assert "nhp_jax.evaluation.score" in GRAPH["nhp_jax.evaluation.runner"]


def test_no_import_cycles():
  assert cycles(GRAPH) == []


def test_cycles_are_found():
  """The checker itself: a two-module loop and a three-module loop are reported."""
  graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
  assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]


def test_every_module_has_a_layer():
  for name in GRAPH:
    layer_of(name)


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if layer_of(n) < len(LAYERS) - 1))
def test_library_imports_point_down(name):
  up = sorted(m for m in GRAPH[name] if layer_of(m) > layer_of(name))
  assert not up, (f"{name} ({LAYERS[layer_of(name)][0]}) imports from higher layers: "
                  + ", ".join(f"{m} ({LAYERS[layer_of(m)][0]})" for m in up))


def test_binaries_import_only_the_library_and_their_helpers():
  for name in sorted(n for n in GRAPH if layer_of(n) == len(LAYERS) - 1):
    others = sorted(m for m in GRAPH[name] if layer_of(m) == len(LAYERS) - 1
                    and not any(m == h or m.startswith(h + ".") for h in BINARY_HELPERS)
                    and not any(name == h or name.startswith(h + ".") for h in BINARY_HELPERS))
    assert not others, f"{name} imports other binaries: {', '.join(others)}"
