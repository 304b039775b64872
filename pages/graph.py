"""A run's DAG laid out and drawn as SVG, in Python, so the page needs no JavaScript.

Pure: names, edges and statuses in, a `Layout` or an SVG string out.  The
layout is a small Sugiyama: layers by longest path from the roots, a dummy
point in every layer that a long edge crosses (so no edge runs through a
node), then barycentre sweeps to order each layer.  Stages are columns, left
to right, in run order.
"""

from __future__ import annotations

import html
import itertools
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from runner.outcome import Status

__all__ = ["COLOURS", "Edge", "Layout", "Node", "layers", "layout", "render_svg", "svg"]

COLOURS: dict[str, tuple[str, str, str]] = {
    # status: (fill, text, border)
    Status.SUCCESS: ("#1a7f37", "#ffffff", "#116329"),
    Status.FAILURE: ("#cf222e", "#ffffff", "#a40e26"),
    Status.ERROR: ("#bc4c00", "#ffffff", "#953800"),
    Status.CANCELLED: ("#6e7781", "#ffffff", "#57606a"),
    Status.SKIPPED: ("#eaeef2", "#57606a", "#afb8c1"),
    Status.RUNNING: ("#0969da", "#ffffff", "#0550ae"),
    Status.WAITING: ("#ffffff", "#57606a", "#afb8c1"),
}
"""Fill, text and border colour of a node by stage status; anything else is drawn as waiting."""

GLYPHS: dict[str, str] = {
    Status.SUCCESS: "✓",
    Status.FAILURE: "✗",
    Status.ERROR: "!",
    Status.CANCELLED: "⊘",
    Status.SKIPPED: "↷",
    Status.RUNNING: "●",
    Status.WAITING: "○",
}
"""A mark before the name, so status does not rest on colour alone."""

NODE_HEIGHT = 32.0
ROW_GAP = 18.0
COLUMN_GAP = 56.0
MARGIN = 12.0
FONT_SIZE = 13
MIN_WIDTH = 64.0
MAX_LABEL = 30
"""Longer names are cut with '…' in the drawing (the full name is in the node's tooltip)."""


@dataclass(frozen=True)
class Node:
    name: str
    status: str
    layer: int
    x: float
    y: float
    width: float
    height: float
    label: str

    @property
    def centre_y(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    """Start, the dummy points of long edges (two per crossed layer), end."""


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float


def layers(names: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the length of the longest path to it from a root.

    Edges naming unknown nodes are ignored.  A cycle (never in a valid run,
    but a page must not hang on a bad file) is broken where it is met.  The
    walk is iterative, so a chain of 10,000 stages needs no deep recursion.
    """
    known = set(names)
    preds: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        if a in known and b in known and a != b:
            preds[b].append(a)
    layer: dict[str, int] = {}
    on_path: set[str] = set()
    for root in names:
        if root in layer:
            continue
        stack = [(root, iter(preds[root]))]
        on_path.add(root)
        while stack:
            node, todo = stack[-1]
            for p in todo:
                if p not in layer and p not in on_path:
                    on_path.add(p)
                    stack.append((p, iter(preds[p])))
                    break
            else:
                stack.pop()
                on_path.discard(node)
                done = [layer[p] for p in preds[node] if p in layer]
                layer[node] = 1 + max(done, default=-1)
    return {n: layer[n] for n in names}


def _text_width(text: str) -> float:
    """An estimate of the label's width in pixels (no font metrics on the server)."""
    wide = sum(1 for c in text if unicodedata.east_asian_width(c) in "WF")
    return (len(text) - wide) * FONT_SIZE * 0.6 + wide * FONT_SIZE * 1.1


def _expansion_label(name: str) -> str:
    """`integration[python=3.12,db=pg]` as `integration[3.12,pg]`, its stage name cut first:
    the values are what tells a matrix expansion from its siblings."""
    base, _, inner = name[:-1].partition("[")
    values = "[" + ",".join(part.partition("=")[2] for part in inner.split(",")) + "]"
    room = MAX_LABEL - len(values)
    if len(base) <= room:
        return base + values
    if room >= 2:
        return base[: room - 1] + "…" + values
    return (base[:1] + "…" + values)[: MAX_LABEL - 1] + "…"


def _label(name: str, status: str) -> str:
    if len(name) <= MAX_LABEL:
        short = name
    elif name.endswith("]") and "[" in name:
        short = _expansion_label(name)
    else:
        short = name[: MAX_LABEL - 1] + "…"
    return f"{GLYPHS.get(status, GLYPHS[Status.WAITING])} {short}"


def layout(
    names: Sequence[str], edges: Iterable[tuple[str, str]], statuses: Mapping[str, str]
) -> Layout:
    """Place every node and route every edge between known nodes."""
    known = set(names)
    edge_list = [(a, b) for a, b in dict.fromkeys(edges) if a in known and b in known and a != b]
    layer_of = layers(names, edge_list)
    index = {n: i for i, n in enumerate(names)}
    count = max(layer_of.values(), default=-1) + 1
    # Slots: real nodes are 0..n-1, dummies n.. ; each edge becomes a chain of slots.
    slot_layer = [layer_of[n] for n in names]
    chains: list[list[int]] = []
    for a, b in edge_list:
        chain = [index[a]]
        for lay in range(layer_of[a] + 1, layer_of[b]):
            slot_layer.append(lay)
            chain.append(len(slot_layer) - 1)
        chain.append(index[b])
        chains.append(chain)
    order = _order(count, slot_layer, chains)

    status = {n: statuses.get(n, Status.WAITING) for n in names}
    labels = {n: _label(n, status[n]) for n in names}
    widths = {n: max(MIN_WIDTH, _text_width(labels[n]) + 24) for n in names}
    column_width = [MIN_WIDTH / 2] * count
    for n in names:
        column_width[layer_of[n]] = max(column_width[layer_of[n]], widths[n])
    column_x = [MARGIN]
    for w in column_width[:-1]:
        column_x.append(column_x[-1] + w + COLUMN_GAP)
    tallest = max((len(o) for o in order), default=0)
    row = NODE_HEIGHT + ROW_GAP
    slot_y: dict[int, float] = {}
    for slots in order:
        top = MARGIN + (tallest - len(slots)) * row / 2
        for i, slot in enumerate(slots):
            slot_y[slot] = top + i * row

    nodes = tuple(
        Node(
            name=n,
            status=status[n],
            layer=layer_of[n],
            x=column_x[layer_of[n]] + (column_width[layer_of[n]] - widths[n]) / 2,
            y=slot_y[index[n]],
            width=widths[n],
            height=NODE_HEIGHT,
            label=labels[n],
        )
        for n in names
    )
    placed = {node.name: node for node in nodes}
    routed = []
    for (a, b), chain in zip(edge_list, chains, strict=True):
        src, dst = placed[a], placed[b]
        points = [(src.x + src.width, src.centre_y)]
        for slot in chain[1:-1]:
            lay, y = slot_layer[slot], slot_y[slot] + NODE_HEIGHT / 2
            points += [(column_x[lay], y), (column_x[lay] + column_width[lay], y)]
        points.append((dst.x, dst.centre_y))
        routed.append(Edge(a, b, tuple(points)))
    width = column_x[-1] + column_width[-1] + MARGIN if count else 2 * MARGIN
    height = 2 * MARGIN + max(tallest * row - ROW_GAP, 0)
    return Layout(nodes, tuple(routed), width, height)


def _order(count: int, slot_layer: list[int], chains: list[list[int]]) -> list[list[int]]:
    """Slots of each layer, ordered by barycentre sweeps down, up and down again."""
    order: list[list[int]] = [[] for _ in range(count)]
    for slot, lay in enumerate(slot_layer):
        order[lay].append(slot)
    up: dict[int, list[int]] = {}
    down: dict[int, list[int]] = {}
    for chain in chains:
        for u, v in itertools.pairwise(chain):
            if slot_layer[v] == slot_layer[u] + 1:
                down.setdefault(u, []).append(v)
                up.setdefault(v, []).append(u)

    def sweep(layer_range: range, neighbours: dict[int, list[int]], ref: int) -> None:
        for lay in layer_range:
            position = {s: i for i, s in enumerate(order[lay + ref])}
            weight = {}
            for i, slot in enumerate(order[lay]):
                near = [position[s] for s in neighbours.get(slot, ()) if s in position]
                weight[slot] = sum(near) / len(near) if near else float(i)
            order[lay].sort(key=weight.__getitem__)

    for _ in range(2):
        sweep(range(1, count), up, -1)
        sweep(range(count - 2, -1, -1), down, +1)
    sweep(range(1, count), up, -1)
    return order


def _path(points: Sequence[tuple[float, float]]) -> str:
    """Curves across the gaps between columns, straight lines through crossed layers."""
    (x, y), *rest = points
    parts = [f"M{x:.1f},{y:.1f}"]
    for i, (nx, ny) in enumerate(rest):
        if i % 2 == 0:  # a gap between columns
            mid = (x + nx) / 2
            parts.append(f"C{mid:.1f},{y:.1f} {mid:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        else:  # through a dummy point's column
            parts.append(f"L{nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def render_svg(drawn: Layout, href: Callable[[str], str] | None = None, title: str = "") -> str:
    """The layout as an SVG element to inline in a page; every name is escaped.

    `href(name)` makes each node a link (to the stage's log on the page).
    """
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img"'
        f' width="{drawn.width:.0f}" height="{drawn.height:.0f}"'
        f' viewBox="0 0 {drawn.width:.0f} {drawn.height:.0f}" aria-label="{_attr(title)}">',
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="10" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#6e7781"/></marker></defs>',
    ]
    for edge in drawn.edges:
        out.append(
            f'<path class="edge" data-from="{_attr(edge.source)}" data-to="{_attr(edge.target)}"'
            f' d="{_path(edge.points)}" fill="none" stroke="#8c959f" stroke-width="1.5"'
            ' marker-end="url(#dag-arrow)"/>'
        )
    for node in drawn.nodes:
        fill, ink, border = COLOURS.get(node.status, COLOURS[Status.WAITING])
        dash = ' stroke-dasharray="4 3"' if node.status in (Status.SKIPPED, Status.WAITING) else ""
        shape = (
            f"<title>{_attr(node.name)}: {_attr(node.status)}</title>"
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}"'
            f' height="{node.height:.1f}" rx="6" fill="{fill}" stroke="{border}"{dash}/>'
            f'<text x="{node.x + node.width / 2:.1f}" y="{node.centre_y:.1f}"'
            f' text-anchor="middle" dominant-baseline="central" fill="{ink}"'
            f' font-family="system-ui, sans-serif" font-size="{FONT_SIZE}">'
            f"{_attr(node.label)}</text>"
        )
        if href is not None:
            shape = f'<a href="{_attr(href(node.name))}">{shape}</a>'
        out.append(
            f'<g class="node" data-stage="{_attr(node.name)}"'
            f' data-status="{_attr(node.status)}">{shape}</g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def svg(
    names: Sequence[str],
    edges: Iterable[tuple[str, str]],
    statuses: Mapping[str, str],
    href: Callable[[str], str] | None = None,
    title: str = "",
) -> str:
    """`layout` then `render_svg`: what the run page inlines."""
    return render_svg(layout(names, edges, statuses), href, title)
