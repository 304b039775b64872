"""The shape of the imports, checked statically: no import circle among the project's modules,
the packages layered (runner/ below everything, webhooks/ below bot/, cli/ on top), and the
GitHub App free of the command line's libraries (click, rich).

Every module of the project's packages is parsed with `ast`, without importing it. Every
import counts, wherever it stands: at module level, inside a function (the lazy imports that
keep start-up fast) or under `if TYPE_CHECKING:`, since each is a dependency a reader must
follow and a circle through any of them is one to untie.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "webhooks", "bot", "pages", "cli")

FORBIDDEN = {
    # package: the packages (project or not) it must never import
    "runner": {"bot", "webhooks", "pages", "cli"},
    "webhooks": {"bot", "cli"},
    "pages": {"cli"},
    "bot": {"cli", "click", "rich"},
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    """The project module it names (the nearest one), or the outside top-level package."""
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The nearest project module `name` is or lies in; else its top-level package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return parts[0]


def _base(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module of `from X import ...`, relative forms included."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".")
    if not is_package:
        package.pop()
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, _resolve(alias.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, module, path.name == "__init__.py")
            for alias in node.names:
                # `from bot import statuses` names the module bot.statuses, not bot itself
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else _resolve(base, modules)
                yield Import(module, target, node.lineno)


def all_imports() -> list[Import]:
    modules = project_modules()
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (itself excluded)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for found in all_imports():
        if found.imported in modules and found.imported != found.importer:
            graph[found.importer].add(found.imported)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (`a, b, ..., a`) through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(graph, group) for group in groups]


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest way from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no circle through {start} in {sorted(group)}")  # pragma: no cover


def test_every_package_is_found() -> None:
    modules = project_modules()
    for package in PACKAGES:
        assert package in modules, f"{package}/__init__.py is missing"
    assert "runner.store.base" in modules and "cli.main" in modules


def test_no_import_circle() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers(package: str) -> None:
    """runner/ needs none of the others; webhooks/ not the bot; only cli/ uses click and rich
    from the bot's side, and nothing imports cli/ (it is the top)."""
    wrong = [
        f"{found.importer} (line {found.line}) imports {found.imported}"
        for found in all_imports()
        if found.importer.split(".")[0] == package
        and found.imported.split(".")[0] in FORBIDDEN[package]
    ]
    assert not wrong, "\n".join(wrong)


# --- the checker itself, on small graphs and sources -------------------------------------------


def test_circles_are_found_and_printed_in_order() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert sorted(circles(graph)) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_imports_anywhere_count(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "import p.x\n"
        "from p import y\n"
        "from . import z\n"
        "if TYPE_CHECKING:\n"
        "    from p.x import Thing\n"
        "def f() -> None:\n"
        "    import click\n"
        "    from p.y import helper\n",
        encoding="utf-8",
    )
    modules = {name: path for name in ("p", "p.m", "p.x", "p.y", "p.z")}
    found = [(i.imported, i.line) for i in imports_of("p.m", path, modules)]
    assert found == [
        ("typing", 1),
        ("p.x", 2),
        ("p.y", 3),
        ("p.z", 4),
        ("p.x", 6),
        ("click", 8),
        ("p.y", 9),
    ]
