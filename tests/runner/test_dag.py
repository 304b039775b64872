"""runner/dag.py: order, targets, edges, cycles and the printed graph (pure)."""

from __future__ import annotations

import itertools
import re

import pytest

from runner import dag
from runner.errors import CycleError, UsageError

# build <- test, lint <- package; docs alone
DEPS: dict[str, set[str]] = {
    "build": set(),
    "test": {"build"},
    "lint": set(),
    "package": {"test", "lint"},
    "docs": set(),
}


def _assert_deps_first(order: list[str], deps: dict[str, set[str]]) -> None:
    assert sorted(order) == sorted(deps)
    position = {name: i for i, name in enumerate(order)}
    for name, needs in deps.items():
        for need in needs:
            assert position[need] < position[name], f"{need} must come before {name}"


def test_order_puts_dependencies_first() -> None:
    _assert_deps_first(dag.order(DEPS), DEPS)


def test_order_is_deterministic() -> None:
    shuffled = dict(reversed(list(DEPS.items())))
    assert dag.order(DEPS) == dag.order(shuffled) == dag.order(DEPS)


def test_order_of_a_long_chain() -> None:
    deps = {f"s{i}": {f"s{i - 1}"} if i else set() for i in range(50)}
    assert dag.order(deps) == [f"s{i}" for i in range(50)]


def test_order_of_nothing() -> None:
    assert dag.order({}) == []


@pytest.mark.parametrize(
    ("deps", "members"),
    [
        ({"a": {"a"}}, {"a"}),
        ({"a": {"b"}, "b": {"a"}, "c": set()}, {"a", "b"}),
        ({"a": {"c"}, "b": {"a"}, "c": {"b"}, "d": {"a"}}, {"a", "b", "c"}),
    ],
)
def test_cycle_error_carries_the_cycle(deps: dict[str, set[str]], members: set[str]) -> None:
    with pytest.raises(CycleError) as caught:
        dag.order(deps)
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == members
    for before, after in itertools.pairwise(cycle):
        assert before in deps[after]  # printed in the order stages would run
    assert str(caught.value) == "dependency cycle: " + " -> ".join(cycle)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([], set(DEPS)),
        (["build"], {"build"}),
        (["test"], {"test", "build"}),
        (["package"], {"package", "test", "build", "lint"}),
        (["docs", "test"], {"docs", "test", "build"}),
        (["test", "test"], {"test", "build"}),
    ],
)
def test_select_targets_and_everything_they_need(targets: list[str], expected: set[str]) -> None:
    assert dag.select(DEPS, targets) == expected


def test_select_does_not_change_the_graph() -> None:
    before = {k: set(v) for k, v in DEPS.items()}
    dag.select(DEPS, ["package"])
    assert before == DEPS


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["tset"], "unknown target stage 'tset' (did you mean 'test'?)"),
        (["zzz"], "unknown target stage 'zzz'"),
        (
            ["build", "packgae", "lnit"],
            "unknown target stage 'packgae' (did you mean 'package'?), 'lnit' (did"
            " you mean 'lint'?)",
        ),
    ],
)
def test_select_unknown_target(targets: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        dag.select(DEPS, targets)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_edges_are_dependency_then_dependent_sorted() -> None:
    assert dag.edges(DEPS) == [
        ("build", "test"),
        ("lint", "package"),
        ("test", "package"),
    ]
    assert dag.edges({"a": set()}) == []


def test_format_text_one_stage_a_line_in_run_order() -> None:
    text = dag.format_graph(DEPS)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines] == dag.order(DEPS)
    by_name = {line.split()[0]: line for line in lines}
    assert by_name["package"].split("<-")[1].strip() == "lint, test"
    assert by_name["test"].split("<-")[1].strip() == "build"
    assert "<-" not in by_name["build"]
    assert "<-" not in by_name["docs"]
    assert dag.format_graph(DEPS, "text") == text


ODD = {'a"b': set(), "☃": {'a"b'}, "back\\slash": {"☃"}, "with space": {"☃"}}


def test_format_dot() -> None:
    dot = dag.format_graph(ODD, "dot")
    lines = dot.splitlines()
    assert lines[0] == "digraph pipeline {"
    assert lines[-1] == "}"
    assert '  "a\\"b";' in lines
    assert '  "☃";' in lines
    assert '  "back\\\\slash";' in lines
    assert '  "with space";' in lines
    assert '  "a\\"b" -> "☃";' in lines
    assert '  "☃" -> "back\\\\slash";' in lines
    assert '  "☃" -> "with space";' in lines
    # every quoted string is closed: quotes not preceded by a backslash come in pairs
    for line in lines[1:-1]:
        assert len(re.findall(r'(?<!\\)"', line.replace("\\\\", ""))) % 2 == 0, line
    assert sum("->" in line for line in lines) == len(dag.edges(ODD))


def test_format_mermaid() -> None:
    text = dag.format_graph(ODD, "mermaid")
    lines = text.splitlines()
    assert lines[0] == "graph LR"
    nodes = dict(re.findall(r'^  (s\d+)\["([^"]*)"\]$', text, re.MULTILINE))
    assert sorted(nodes.values()) == sorted(["a#quot;b", "☃", "back\\slash", "with space"])
    ids = {label: node_id for node_id, label in nodes.items()}
    arrows = set(re.findall(r"^  (s\d+) --> (s\d+)$", text, re.MULTILINE))
    assert arrows == {
        (ids["a#quot;b"], ids["☃"]),
        (ids["☃"], ids["back\\slash"]),
        (ids["☃"], ids["with space"]),
    }
    assert len(lines) == 1 + len(ODD) + len(arrows)


@pytest.mark.parametrize("fmt", ["text", "dot", "mermaid"])
def test_format_refuses_a_cycle(fmt: str) -> None:
    with pytest.raises(CycleError):
        dag.format_graph({"a": {"b"}, "b": {"a"}}, fmt)
