"""The package's shape: no import cycles, no reads of another object's private attributes.

These read the source (AST), so they hold for every import, the type-only
ones under ``TYPE_CHECKING`` and those inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flask_cocart_jwt"
#: Underscore names that are public API by convention (Werkzeug's proxies).
IDIOMS = frozenset({"_get_current_object"})


def _modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.glob("*.py"))
    }


def _imports(tree: ast.Module, names: set[str]) -> set[str]:
    """The package modules ``tree`` imports, however and wherever it does."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("flask_cocart_jwt."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flask_cocart_jwt."):
                    found.add(alias.name.split(".")[1])
    return found & names


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path, or ``None``."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            cycle = visit(target, [*path, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_no_import_cycles() -> None:
    modules = _modules()
    names = set(modules) - {"__init__"}
    graph = {name: _imports(modules[name], names) - {name} for name in names}
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_reads_private_attributes_of_other_objects() -> None:
    reads = [
        f"{name}.py:{node.lineno} .{node.attr}"
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in IDIOMS
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert reads == []


@pytest.mark.parametrize("name", ["service", "extension", "rotation", "store"])
def test_modules_stay_small(name: str) -> None:
    lines = (PACKAGE / f"{name}.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 420, f"{name}.py has {lines} lines; split it by responsibility"


def test_the_service_has_no_untyped_fields() -> None:
    tree = _modules()["service"]
    service = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Service"
    )
    init = next(
        node
        for node in service.body
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    annotations = [ast.unparse(arg.annotation) for arg in init.args.args[1:] if arg.annotation]
    assert len(annotations) == len(init.args.args) - 1
    assert not any("Any" in annotation for annotation in annotations)
