"""pages.graph: layers, placement and the SVG, without a browser."""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET

import pytest

from pages import graph

SVG = "{http://www.w3.org/2000/svg}"

GRAPHS: dict[str, tuple[list[str], list[tuple[str, str]]]] = {
    "single": (["a"], []),
    "chain": (["a", "b", "c"], [("a", "b"), ("b", "c")]),
    "diamond": (["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
    "long edge": (["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]),
    "islands": (["x", "y", "z", "w"], [("x", "y")]),
}


def _random_dag(seed: int, size: int = 25) -> tuple[list[str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    names = [f"stage-{i}" for i in range(size)]
    edges = [(names[i], names[j]) for j in range(size) for i in range(j) if rng.random() < 0.12]
    return names, edges


for seed in range(3):
    GRAPHS[f"random {seed}"] = _random_dag(seed)


def test_layers_are_longest_paths_from_the_roots() -> None:
    names, edges = GRAPHS["long edge"]
    assert graph.layers(names, edges) == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert graph.layers(*GRAPHS["diamond"]) == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert graph.layers(*GRAPHS["islands"]) == {"x": 0, "y": 1, "z": 0, "w": 0}


def test_layers_survive_cycles_unknown_nodes_and_long_chains() -> None:
    cyclic = graph.layers(["a", "b"], [("a", "b"), ("b", "a"), ("a", "ghost")])
    assert set(cyclic) == {"a", "b"}
    chain = [f"s{i}" for i in range(5000)]
    deep = graph.layers(chain, list(itertools.pairwise(chain)))
    assert deep["s4999"] == 4999


@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_nodes_do_not_overlap_and_fit_the_drawing(case: str) -> None:
    names, edges = GRAPHS[case]
    drawn = graph.layout(names, edges, {})
    assert [n.name for n in drawn.nodes] == names
    boxes = [(n.x, n.y, n.x + n.width, n.y + n.height) for n in drawn.nodes]
    for i, a in enumerate(boxes):
        assert min(a[0], a[1]) >= 0 and a[2] <= drawn.width and a[3] <= drawn.height
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_every_edge_is_drawn_left_to_right_and_around_nodes(case: str) -> None:
    names, edges = GRAPHS[case]
    drawn = graph.layout(names, edges, {})
    assert {(e.source, e.target) for e in drawn.edges} == set(edges)
    placed = {n.name: n for n in drawn.nodes}
    for edge in drawn.edges:
        src, dst = placed[edge.source], placed[edge.target]
        assert src.layer < dst.layer
        assert edge.points[0] == (src.x + src.width, src.centre_y)
        assert edge.points[-1] == (dst.x, dst.centre_y)
        for x, y in edge.points[1:-1]:  # the dummy points of a long edge touch no node
            assert not any(
                n.x < x < n.x + n.width and n.y <= y <= n.y + n.height for n in drawn.nodes
            )
    rendered = graph.render_svg(drawn)
    assert len(re.findall(r'<path class="edge"', rendered)) == len(edges)
    assert len(re.findall(r'<g class="node"', rendered)) == len(names)


def test_barycentre_ordering_removes_a_needless_crossing() -> None:
    drawn = graph.layout(["a", "b", "c", "d"], [("a", "d"), ("b", "c")], {})
    y = {n.name: n.y for n in drawn.nodes}
    assert (y["a"] < y["b"]) == (y["d"] < y["c"])


@pytest.mark.parametrize("status", sorted(graph.COLOURS))
def test_nodes_are_coloured_by_status(status: str) -> None:
    root = ET.fromstring(graph.svg(["one", "two"], [("one", "two")], {"one": status}))
    fill = {
        g.get("data-stage"): g.find(f"{SVG}rect").get("fill")  # type: ignore[union-attr]
        for g in root.iter(f"{SVG}g")
    }
    assert fill == {"one": graph.COLOURS[status][0], "two": graph.COLOURS["waiting"][0]}


def test_an_unknown_status_is_drawn_as_waiting() -> None:
    drawn = graph.svg(["x"], [], {"x": "exploded"})
    assert f'fill="{graph.COLOURS["waiting"][0]}"' in drawn


def test_odd_stage_names_are_escaped_everywhere() -> None:
    names = ["<script>alert(1)</script>", "☃", 'q"uote&amp', "x" * 80]
    edges = [(names[0], names[1]), (names[2], names[1]), (names[1], names[3])]
    rendered = graph.svg(names, edges, {}, href=lambda n: f"#{n}", title="<title>")
    assert "<script>" not in rendered and "<title>:" not in rendered
    root = ET.fromstring(rendered)  # well-formed: nothing unescaped broke the markup
    assert [g.get("data-stage") for g in root.iter(f"{SVG}g")] == names
    assert [p.get("data-from") for p in root.iter(f"{SVG}path") if p.get("class")] == [
        names[0],
        names[2],
        names[1],
    ]
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert labels[1] == "○ ☃"
    assert labels[3] is not None and labels[3].endswith("…") and len(labels[3]) < 40
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles[3] == f"{names[3]}: waiting"  # the full name stays in the tooltip
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert links[0] == "#<script>alert(1)</script>"


def test_an_empty_graph_is_a_small_empty_drawing() -> None:
    drawn = graph.layout([], [], {})
    assert drawn.nodes == () and drawn.edges == () and drawn.width > 0
    ET.fromstring(graph.render_svg(drawn))


def test_matrix_expansions_are_drawn_each_with_its_values() -> None:
    """`test` with `matrix: {python: [...], database: [...]}` and a stage after it."""
    expansions = [
        f"integration[python={p},database={d}]"
        for p, d in itertools.product(["3.11", "3.12"], ["postgres", "mysql%2C8"])
    ]
    names = ["build", *expansions, "report"]
    edges = [("build", e) for e in expansions] + [(e, "report") for e in expansions]
    rendered = graph.svg(names, edges, {expansions[1]: "failure"}, href=lambda n: f"#{n}")
    root = ET.fromstring(rendered)
    assert [g.get("data-stage") for g in root.iter(f"{SVG}g")] == names
    labels = [t.text or "" for t in root.iter(f"{SVG}text")][1:-1]
    assert len(set(labels)) == len(expansions)  # cut in the middle: the values stay apart
    assert all(len(label) <= graph.MAX_LABEL + 2 for label in labels)
    assert labels[:2] == ["○ integration[3.11,postgres]", "✗ integration[3.11,mysql%2C8]"]
    long = graph.svg(["a-much-longer-stage-name-here[v=1,w=x]", f"s[v={'x' * 40}]"], [], {})
    cut = [t.text for t in ET.fromstring(long).iter(f"{SVG}text")]
    assert cut == ["○ a-much-longer-stage-name…[1,x]", "○ s…[" + "x" * 26 + "…"]
    drawn = graph.layout(names, edges, {})
    layer = {n.name: n.layer for n in drawn.nodes}
    assert {layer[e] for e in expansions} == {1} and layer["report"] == 2
