"""Inline SVG drawn in Python for the HTML report: learning curves and SALT trajectory graphs.

No JavaScript library and no network: every figure is a string of SVG markup, all text escaped.
Colours of credit: green for positive, red for negative, grey near zero; the stronger the
colour, the larger the value relative to the largest magnitude in the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import networkx as nx

from agentgym.data import TERMINAL_FAILURE, TERMINAL_SUCCESS, TERMINAL_TRUNCATED

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2")
_GREY, _GREEN, _RED = (156, 163, 175), (21, 128, 61), (185, 28, 28)
TERMINAL_NAMES = {TERMINAL_SUCCESS: "won", TERMINAL_FAILURE: "lost", TERMINAL_TRUNCATED: "cut"}


def _a(value: object) -> str:
    """An attribute value, escaped."""
    return escape(str(value), quote=True)


def credit_colour(value: float, scale: float) -> str:
    """``rgb(...)`` from grey (0) to green (+scale) or red (-scale); grey for NaN."""
    if math.isnan(value) or scale <= 0:
        return "rgb({},{},{})".format(*_GREY)
    t = min(1.0, abs(value) / scale)
    end = _GREEN if value > 0 else _RED
    r, g, b = (round(a + (e - a) * t) for a, e in zip(_GREY, end, strict=True))
    return f"rgb({r},{g},{b})"


# -- learning curves ---------------------------------------------------------------------------


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    width: int = 300,
    height: int = 170,
) -> str:
    """A small line chart of ``series`` (name -> [(x, y), ...]) with axes and a legend."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    left, right, top, bottom = 44, 10, 22, 30
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float, y: float) -> tuple[float, float]:
        fx = left + (x - x0) / (x1 - x0) * (width - left - right)
        fy = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return round(fx, 1), round(fy, 1)

    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_a(title)}">',
        f'<text x="{left}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" class="axis"/>',
    ]
    for y in (y0, y1):
        out.append(
            f'<text x="{left - 4}" y="{px(x0, y)[1] + 4}" class="tick" '
            f'text-anchor="end">{y:.3g}</text>'
        )
    for x in (x0, x1):
        out.append(
            f'<text x="{px(x, y0)[0]}" y="{height - bottom + 14}" class="tick" '
            f'text-anchor="middle">{x:g}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{a},{b}" for a, b in (px(x, y) for x, y in pts))
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            cx, cy = px(x, y)
            out.append(
                f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} @ {x:g}: {y:.4g}</title></circle>"
            )
        out.append(
            f'<text x="{left + 8 + 90 * i}" y="{height - 4}" class="legend" '
            f'fill="{colour}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# -- SALT graph --------------------------------------------------------------------------------


def _layers(graph: nx.MultiDiGraph, start: str | None) -> dict[str, int]:
    """Column of each node: BFS depth from ``start``; terminal sentinels in the last column."""
    depth = nx.single_source_shortest_path_length(graph, start) if start in graph else {}
    inner = [n for n in graph if not graph.nodes[n].get("terminal")]
    deepest = max((depth.get(n, 0) for n in inner), default=0)
    layers = {}
    for n in graph:
        if graph.nodes[n].get("terminal"):
            layers[n] = deepest + 1
        else:
            layers[n] = depth.get(n, deepest + 1)
    return layers


def _positions(graph: nx.MultiDiGraph, start: str | None) -> tuple[dict, int, int]:
    """Pixel position of each node (layered left to right), and the canvas size."""
    layers = _layers(graph, start)
    simple = nx.Graph()
    simple.add_nodes_from((n, {"layer": layers[n]}) for n in graph)
    raw = nx.multipartite_layout(simple, subset_key="layer", align="vertical")
    n_layers = max(layers.values(), default=0) + 1
    tallest = max((list(layers.values()).count(k) for k in set(layers.values())), default=1)
    width, height = max(160 * n_layers, 240), max(90 * tallest + 40, 160)
    xs = [p[0] for p in raw.values()] or [0.0]
    ys = [p[1] for p in raw.values()] or [0.0]

    def scale(v: float, lo: float, hi: float, size: int) -> float:
        return size / 2 if hi - lo < 1e-9 else 50 + (v - lo) / (hi - lo) * (size - 100)

    pos = {
        n: (scale(x, min(xs), max(xs), width), scale(y, min(ys), max(ys), height))
        for n, (x, y) in raw.items()
    }
    return pos, width, height


def _edge_path(p: tuple, q: tuple, offset: float, index: int) -> tuple[str, tuple, tuple, tuple]:
    """SVG path, label point, arrow tip and arrow direction of one edge between p and q."""
    r = 18.0
    if p == q:  # a self-loop above the node, larger for each further loop
        h = 46 + 16 * index
        x, y = p
        d = f"M{x - 8:.1f},{y - r + 2:.1f} C{x - 34:.1f},{y - h:.1f} {x + 34:.1f},{y - h:.1f} "
        d += f"{x + 8:.1f},{y - r + 2:.1f}"
        return d, (x, y - h + 10), (x + 8, y - r + 2), (0.3, 1.0)
    dx, dy = q[0] - p[0], q[1] - p[1]
    length = math.hypot(dx, dy) or 1.0
    nx_, ny_ = -dy / length, dx / length  # unit normal
    c = ((p[0] + q[0]) / 2 + nx_ * offset, (p[1] + q[1]) / 2 + ny_ * offset)

    def towards(a: tuple, b: tuple, dist: float) -> tuple:
        ux, uy = b[0] - a[0], b[1] - a[1]
        n = math.hypot(ux, uy) or 1.0
        return a[0] + ux / n * dist, a[1] + uy / n * dist

    s, e = towards(p, c, r), towards(q, c, r + 2)
    d = f"M{s[0]:.1f},{s[1]:.1f} Q{c[0]:.1f},{c[1]:.1f} {e[0]:.1f},{e[1]:.1f}"
    mid = (0.25 * s[0] + 0.5 * c[0] + 0.25 * e[0], 0.25 * s[1] + 0.5 * c[1] + 0.25 * e[1])
    return d, mid, e, (e[0] - c[0], e[1] - c[1])


def _arrow(tip: tuple, direction: tuple, colour: str) -> str:
    n = math.hypot(*direction) or 1.0
    ux, uy = direction[0] / n, direction[1] / n
    bx, by = tip[0] - 9 * ux, tip[1] - 9 * uy
    left = (bx - 4.5 * uy, by + 4.5 * ux)
    right = (bx + 4.5 * uy, by - 4.5 * ux)
    pts = f"{tip[0]:.1f},{tip[1]:.1f} {left[0]:.1f},{left[1]:.1f} {right[0]:.1f},{right[1]:.1f}"
    return f'<polygon points="{pts}" fill="{colour}"/>'


def _offsets(graph: nx.MultiDiGraph) -> dict[tuple, tuple[float, int]]:
    """Curve offset and index of every edge, so parallel and opposite edges stay apart."""
    out: dict[tuple, tuple[float, int]] = {}
    for u, v in {(u, v) for u, v in graph.edges()}:
        keys = sorted(graph[u][v], key=str)
        reverse = u != v and graph.has_edge(v, u)
        for i, k in enumerate(keys):
            off = 16 + 24 * i if reverse else (i - (len(keys) - 1) / 2) * 24
            out[(u, v, k)] = (off, i)
    return out


def salt_graph_svg(
    graph: nx.MultiDiGraph, node_labels: Mapping[str, str], start: str | None = None
) -> str:
    """The SALT graph of one group: states as circles (terminals as boxes), actions as arrows.

    ``node_labels`` maps each state key to a short label (``S0``...). Edges are coloured by their
    ``credit`` attribute and thicker the more turns used them; each carries ``data-edge`` (its
    ``label``) and ``data-tidx`` (indices of the group's trajectories that took it), and a
    tooltip with the action, counts and credit.
    """
    pos, width, height = _positions(graph, start)
    credits = [d["credit"] for _, _, d in graph.edges(data=True) if not math.isnan(d["credit"])]
    scale = max((abs(c) for c in credits), default=0.0)
    offsets = _offsets(graph)
    out = [
        f'<svg class="salt-graph" width="{width}" height="{height}" viewBox="0 0 {width} '
        f'{height}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="SALT graph">'
    ]
    for u, v, k, data in graph.edges(keys=True, data=True):
        colour = credit_colour(data["credit"], scale)
        off, index = offsets[(u, v, k)]
        d, mid, tip, direction = _edge_path(pos[u], pos[v], off, index)
        w = 1.5 + 1.5 * math.log2(max(data["count"], 1))
        dash = ' stroke-dasharray="5,4"' if data["action"] is None else ""
        tidx = " ".join(str(i) for i in data["trajectories"])
        tip_text = (
            f"{data.get('label') or 'end'}: {data['action']} "
            f"({data['count']} turns, {len(data['trajectories'])} trajectories), "
            f"credit {data['credit']:+.4f}\n{u} -> {v}"
        )
        out.append(
            f'<g class="edge" data-edge="{_a(data.get("label", ""))}" data-tidx="{tidx}">'
            f"<title>{escape(tip_text)}</title>"
            f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{w:.1f}"{dash}/>'
            f"{_arrow(tip, direction, colour)}"
            f'<text x="{mid[0]:.1f}" y="{mid[1]:.1f}" class="edge-label">'
            f"{escape(str(data.get('label', '')))}</text></g>"
        )
    for n in graph:
        x, y = pos[n]
        title = f"<title>{escape(str(n))}</title>"
        if graph.nodes[n].get("terminal"):
            name = TERMINAL_NAMES.get(n, "end")
            out.append(
                f'<g class="node terminal {name}" data-node="{_a(n)}">{title}'
                f'<rect x="{x - 22:.1f}" y="{y - 14:.1f}" width="44" height="28" rx="6"/>'
                f'<text x="{x:.1f}" y="{y + 4:.1f}">{name}</text></g>'
            )
        else:
            label = node_labels.get(n, "?")
            start_cls = " start" if n == start else ""
            out.append(
                f'<g class="node{start_cls}" data-node="{_a(n)}">{title}'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="18"/>'
                f'<text x="{x:.1f}" y="{y + 4:.1f}">{escape(label)}</text></g>'
            )
    out.append("</svg>")
    return "".join(out)


__all__ = ["credit_colour", "line_chart", "salt_graph_svg"]
