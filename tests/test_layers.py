"""One way through the house: the package's import graph, lazy imports included, has no cycle,
and every module is placed in a layer of pyproject.toml's import-linter contracts.

The graph is read from the installed package's source with `ast`: every `import` and
`from ... import` anywhere in a module (inside functions too: a command imports them when it
runs), except those under `if TYPE_CHECKING:`, which never run. import-linter checks the
layers themselves (scripts/test runs it); this test makes sure that no module escapes them and
that no cycle hides in a lazy import, which layers alone would not say plainly.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import procore_setup

PACKAGE = Path(procore_setup.__file__).parent
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, whether it is a package's __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """The package's modules that `name` imports when it runs, at any depth of its code."""
    path, is_package = modules[name]
    here = name.split(".") if is_package else name.split(".")[:-1]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for stmt in child.orelse:
                    visit_one(stmt)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
            out.update(submodules)
            if len(submodules) < len(node.names):  # names defined in `target` itself: it runs
                out.add(target)
        visit(node)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in out if m in modules and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (as a path that comes back to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = walk(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = walk(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle_lazy_imports_included() -> None:
    modules = _modules()
    graph = {name: _imports(name, modules) for name in modules}
    assert sum(len(v) for v in graph.values()) > 100  # the reader sees the imports (or this proves nothing)
    assert "procore_setup.stores.registry" in graph["procore_setup.stores"]
    assert "procore_setup.passphrase" in graph["procore_setup.transaction"]  # a function-level import
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import() -> None:
    """The check itself: a lazy import back up makes a cycle it reports."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _layered() -> list[tuple[str, list[str]]]:
    """(container, [layer items]) of every layers contract of pyproject.toml."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    out = []
    for contract in config["contracts"]:
        if contract["type"] != "layers":
            continue
        assert contract.get("exhaustive") is True, contract["name"]
        items = [item.strip() for layer in contract["layers"] for item in layer.replace(":", "|").split("|")]
        for container in contract["containers"]:
            out.append((container, items))
    return out


def test_every_module_of_the_package_is_placed_in_a_layer() -> None:
    layered = _layered()
    placed = {f"{container}.{item}" for container, items in layered for item in items}
    containers = {container for container, _ in layered}
    missing = []
    for name in _modules():
        if name in containers and name == "procore_setup":
            continue  # the root: the container of the top layers
        if not any(name == p or name.startswith(p + ".") for p in placed):
            missing.append(name)
    assert missing == [], f"modules in no layer of pyproject.toml's contracts: {missing}"
    # and every container's direct modules are named in its own contract (not only an ancestor's)
    for container, items in layered:
        prefix = container + "."
        direct = {n[len(prefix):].split(".")[0] for n in _modules() if n.startswith(prefix)}
        assert direct <= set(items), f"{container}: {sorted(direct - set(items))} in no layer"
