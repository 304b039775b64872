"""The stage graph: which stages a run needs, in what order, and the cycle check (pure)."""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Iterable, Mapping

from runner.errors import CycleError, UsageError

__all__ = ["edges", "format_graph", "has_cycle", "order", "select"]


def has_cycle(deps: Mapping[str, Iterable[str]]) -> bool:
    """Whether the stages depend on each other in a circle (Kahn's algorithm).

    A few times cheaper than `order`, so that loading 100,000 stages pays only
    this; `order` then words the cycle when there is one.  Edges to names that
    are not stages are ignored.
    """
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for name, needs in deps.items():
        count = 0
        for need in needs:
            if need in deps:
                count += 1
                dependents.setdefault(need, []).append(name)
        waiting[name] = count
    ready = [name for name, count in waiting.items() if not count]
    done = 0
    while ready:
        done += 1
        for later in dependents.get(ready.pop(), ()):
            waiting[later] -= 1
            if not waiting[later]:
                ready.append(later)
    return done < len(waiting)


def order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """A topological order of the stages (dependencies first).

    CycleError lists the cycle in the direction stages would run (`a -> b`: a before b).
    """
    sorter = graphlib.TopologicalSorter({name: sorted(d) for name, d in sorted(deps.items())})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as e:
        cycle: list[str] = list(e.args[1])
        raise CycleError(cycle) from None


def select(deps: Mapping[str, Iterable[str]], targets: Iterable[str]) -> set[str]:
    """The targets and everything they need; every stage when there is no target."""
    wanted = list(targets)
    if not wanted:
        return set(deps)
    unknown = [t for t in wanted if t not in deps]
    if unknown:
        hints = []
        for t in unknown:
            close = difflib.get_close_matches(t, list(deps), n=1)
            hints.append(f"'{t}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise UsageError("unknown target stage " + ", ".join(hints))
    needed: set[str] = set()
    todo = wanted
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(deps[name])
    return needed


def edges(deps: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """Every edge as (dependency, dependent), sorted: the shape stored in run.json."""
    return sorted((d, name) for name, ds in deps.items() for d in ds)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_graph(deps: Mapping[str, Iterable[str]], fmt: str = "text") -> str:
    """The graph as text (one stage a line, in run order, with what it needs), dot or mermaid."""
    names = order(deps)
    if fmt == "dot":
        lines = ["digraph pipeline {", "  rankdir=LR;"]
        lines += [f"  {_quote(n)};" for n in names]
        lines += [f"  {_quote(a)} -> {_quote(b)};" for a, b in edges(deps)]
        return "\n".join([*lines, "}"])
    if fmt == "mermaid":
        ids = {n: f"s{i}" for i, n in enumerate(names)}
        lines = ["graph LR"]
        lines += [f'  {ids[n]}["{n.replace(chr(34), "#quot;")}"]' for n in names]
        lines += [f"  {ids[a]} --> {ids[b]}" for a, b in edges(deps)]
        return "\n".join(lines)
    width = max((len(n) for n in names), default=0)
    return "\n".join(
        f"{n.ljust(width)}  <- {', '.join(sorted(deps[n]))}" if deps[n] else n for n in names
    )
