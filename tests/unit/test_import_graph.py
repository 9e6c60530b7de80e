"""The import graph of gridspawner/ has no cycle.

The graph is read from the source (ast), not from what happens to be imported: an edge for
every import of a gridspawner module anywhere in a file — at the top, inside a function, or
named as a "gridspawner.x:Class" string that `importlib` loads (the backend kind registry) —
so an import moved into a function to dodge a cycle still counts, and the cycle is
reported. Importing ``a.b.c`` also runs the ``a.b`` package, so that is an edge too (but
not a module's own packages, which are being initialised when it runs). Only imports
under ``if TYPE_CHECKING:`` are left out: they never run.

The shared vocabulary (errors, patterns, small validators) lives in gridspawner/vocabulary.py,
which imports nothing from the package: a module that needs an error type imports it from
there, never from the module that happens to raise it most.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gridspawner"
GUIDE = PACKAGE.parent / "docs" / "development.md"
_DYNAMIC = re.compile(r"(gridspawner(?:\.\w+)+)(?::\w+)?")


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _skip_type_checking(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                todo.extend(child.orelse)
            else:
                todo.append(child)
    return nodes


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names ``module`` imports (a module, or a name inside one)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in _skip_type_checking(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            names.update(f"{source}.{a.name}" for a in node.names)
            names.add(source)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if m := _DYNAMIC.fullmatch(node.value):
                names.add(m.group(1))
    return names


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        edges = set()
        for name in imported_names(module, path):
            while name and name not in modules:  # "pkg.mod.Class" → "pkg.mod"
                name = name.rpartition(".")[0]
            if not name or name == module:
                continue
            parts = name.split(".")
            # the module, and the packages that importing it runs first (not the root package)
            chain = (".".join(parts[:i]) for i in range(2, len(parts) + 1))
            edges.update(p for p in chain if p not in own_packages and p != module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a cycle path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_path_through(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle inside ``component``, as a readable path a → b → … → a."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return component


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles in gridspawner/:\n" + "\n".join(" → ".join(c) for c in found)


def test_the_vocabulary_imports_nothing_from_the_package():
    assert import_graph()["gridspawner.vocabulary"] == set()


def test_no_module_imports_another_ones_private_names():
    """A name with a leading underscore is its file's own: another file that needs it needs
    a public name (or the vocabulary). ``x as _x`` aliases of public names are fine."""
    found = []
    for module, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("gridspawner")):
                found += [f"{module}: {a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "private names imported across files:\n" + "\n".join(found)


def documented_layers() -> list[list[str]]:
    """The import layers of the development guide, top first: each a list of module names or
    ``pkg/*`` prefixes (the first column of its "Import layers" block; a line that starts
    with more than one space continues the layer above)."""
    text = GUIDE.read_text(encoding="utf-8")
    block = re.search(r"### Import layers.*?```text\n(.*?)```", text, re.S).group(1)
    layers: list[list[str]] = []
    for line in block.splitlines():
        names = [n.strip() for n in re.split(r"[,→]", line[:35]) if n.strip()]
        if line.startswith("   ") and layers:
            layers[-1] += names
        elif names:
            layers.append(names)
    return layers


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The index of the layer ``module`` belongs to (0: the top), or None."""
    name = module.removeprefix("gridspawner.")
    for i, layer in enumerate(layers):
        for entry in layer:
            if entry.endswith("/*"):
                package = entry[:-2].replace("/", ".")
                if name == package or name.startswith(package + "."):
                    return i
            elif name == entry:
                return i
    return None


def test_every_import_goes_down_the_documented_layers():
    layers = documented_layers()
    graph = import_graph()
    unplaced = sorted(m for m in graph if m != "gridspawner" and layer_of(m, layers) is None)
    assert not unplaced, f"modules in no layer of docs/development.md's 'Import layers': {unplaced}"
    upward = [
        f"{m} (layer {layer_of(m, layers)}) imports {d} (layer {layer_of(d, layers)})"
        for m in sorted(graph) if m != "gridspawner"
        for d in sorted(graph[m]) if layer_of(d, layers) < layer_of(m, layers)
    ]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_the_layers_block_is_read_as_written():
    layers = documented_layers()
    assert layers[0][:3] == ["spawner", "startup", "activation"] and "traits" in layers[0]
    assert layers[-1] == ["vocabulary"]
    assert layer_of("gridspawner.form.render", layers) == layer_of("gridspawner.preparation", layers)
    assert layer_of("gridspawner.backends.host.ssh_pool", layers) < layer_of("gridspawner.mounts.specs", layers)


# the checker itself: a cycle hidden in a function, or behind importlib, is still a cycle


@pytest.mark.parametrize(
    "b_source",
    [
        "from .a import X\n",
        "def f():\n    from . import a\n",
        "import importlib\nM = 'gridspawner.a:X'\n",
        "from gridspawner import a\n",
    ],
    ids=["top-level", "in-a-function", "importlib-string", "absolute"],
)
def test_the_checker_finds_a_cycle_however_it_is_written(tmp_path, monkeypatch, b_source):
    pkg = tmp_path / "gridspawner"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import Y\nX = 1\n")
    (pkg / "b.py").write_text(b_source + "Y = 2\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n")
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    assert cycles(import_graph()) == [["gridspawner.a", "gridspawner.b", "gridspawner.a"]]


def test_the_checker_ignores_type_checking_imports_and_own_packages(tmp_path, monkeypatch):
    pkg = tmp_path / "gridspawner"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .m import Z\n")
    (pkg / "sub" / "m.py").write_text("from ..a import X\nfrom . import n\nZ = 3\n")
    (pkg / "sub" / "n.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.m import Z\nX = 1\n")
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    graph = import_graph()
    assert graph["gridspawner.sub.m"] == {"gridspawner.a", "gridspawner.sub.n"}
    assert graph["gridspawner.a"] == set()
    assert cycles(graph) == []
