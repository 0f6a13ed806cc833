"""Graph layout by Graphviz: a ViewGraph becomes DOT, ``dot -Tjson0`` returns positions and splines.

Coordinates returned are in points with y pointing down (Qt's convention); Graphviz's y points up.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import graphviz

from explorer.layout.view_graph import ViewGraph

POINTS_PER_INCH = 72.0
LAYOUT_TIMEOUT_S = 60.0
GRAPH_SUFFIXES = (".svg", ".png")  # the files a drawn graph is exported to (explorer.ui.canvas.export)
Rect = tuple[float, float, float, float]  # x, y (top-left), width, height
Point = tuple[float, float]


class LayoutError(Exception):
    """Graphviz is missing, failed, timed out or was cancelled; the message is meant for the user."""


@dataclass(frozen=True)
class EdgeRoute:
    source: str
    target: str
    points: tuple[Point, ...]  # cubic Bezier: start, then (control, control, end) triples
    arrow_tip: Point | None


@dataclass(frozen=True)
class Layout:
    nodes: Mapping[str, Rect]
    frames: Mapping[str, Rect]
    edges: tuple[EdgeRoute, ...]
    width: float
    height: float


def dot_source(view: ViewGraph, sizes: Mapping[str, tuple[float, float]]) -> str:
    """DOT for the view; ``sizes`` gives each box's (width, height) in points, as the view will draw it."""
    dot = graphviz.Digraph(graph_attr={"rankdir": "TB", "nodesep": "0.3", "ranksep": "0.45", "splines": "spline"},
                           node_attr={"shape": "box", "fixedsize": "true", "label": ""})
    children: dict[str | None, list[str]] = {}
    for frame in view.frames:
        children.setdefault(view.graph.node(frame).parent, []).append(frame)

    def add_frame(frame: str, into: graphviz.Digraph) -> None:
        with into.subgraph(name=f"cluster_{frame}") as cluster:
            node = view.graph.node(frame)
            # Label text as the view draws it, so Graphviz reserves room for it.
            cluster.attr(label=f"> {node.name}  ({node.class_name})", fontname="Helvetica-Bold", fontsize="13",
                         margin="14")
            for child in children.get(frame, []):
                add_frame(child, cluster)
            for path in view.nodes:
                if view.graph.node(path).parent == frame:
                    _add_node(cluster, path, sizes[path])

    for frame in children.get(None, []):
        add_frame(frame, dot)
    for path in view.nodes:
        if view.graph.node(path).parent is None:
            _add_node(dot, path, sizes[path])
    for edge in view.edges:
        dot.edge(edge.source, edge.target, constraint="false" if edge.feedback else "true")
    return dot.source


def _add_node(into: graphviz.Digraph, path: str, size: tuple[float, float]) -> None:
    into.node(path, width=f"{size[0] / POINTS_PER_INCH:.3f}", height=f"{size[1] / POINTS_PER_INCH:.3f}")


def run_dot(source: str, cancelled: threading.Event | None = None, timeout: float = LAYOUT_TIMEOUT_S) -> dict:
    executable = shutil.which("dot")
    if executable is None:
        raise LayoutError("Graphviz is not installed: the 'dot' program was not found (Debian: apt install graphviz)")
    process = subprocess.Popen([executable, "-Tjson0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    finished = threading.Event()
    if cancelled is not None:  # a watcher kills dot as soon as the caller cancels
        def watch() -> None:
            while not finished.is_set():
                if cancelled.wait(0.05):
                    process.kill()
                    return
        threading.Thread(target=watch, daemon=True).start()
    try:
        out, err = process.communicate(source, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        process.kill()
        process.communicate()
        raise LayoutError(f"Graphviz took more than {timeout:.0f} s") from error
    finally:
        finished.set()
    if cancelled is not None and cancelled.is_set():
        raise LayoutError("layout cancelled")
    if process.returncode != 0:
        raise LayoutError(f"Graphviz failed: {err.strip()[:300]}")
    return json.loads(out)


def compute_layout(view: ViewGraph, sizes: Mapping[str, tuple[float, float]],
                   cancelled: threading.Event | None = None) -> Layout:
    return parse_layout(run_dot(dot_source(view, sizes), cancelled))


def parse_layout(data: dict) -> Layout:
    _, _, _, top = (float(v) for v in data["bb"].split(","))
    width = float(data["bb"].split(",")[2])
    flip: Callable[[float, float], Point] = lambda x, y: (x, top - y)  # noqa: E731
    nodes: dict[str, Rect] = {}
    frames: dict[str, Rect] = {}
    names: dict[int, str] = {}
    for index, item in enumerate(data.get("objects", [])):
        names[item.get("_gvid", index)] = item["name"]
        if "bb" in item and item["name"].startswith("cluster_"):
            x0, y0, x1, y1 = (float(v) for v in item["bb"].split(","))
            frames[item["name"].removeprefix("cluster_")] = (x0, top - y1, x1 - x0, y1 - y0)
        elif "pos" in item:
            cx, cy = flip(*(float(v) for v in item["pos"].split(",")))
            w, h = float(item["width"]) * POINTS_PER_INCH, float(item["height"]) * POINTS_PER_INCH
            nodes[item["name"]] = (cx - w / 2, cy - h / 2, w, h)
    edges = []
    for item in data.get("edges", []):
        points, tip = _parse_spline(item.get("pos", ""), flip)
        edges.append(EdgeRoute(names[item["tail"]], names[item["head"]], points, tip))
    return Layout(nodes, frames, tuple(edges), width, top)


def _parse_spline(pos: str, flip: Callable[[float, float], Point]) -> tuple[tuple[Point, ...], Point | None]:
    points: list[Point] = []
    tip = None
    for token in pos.split(" ") if pos else []:
        parts = token.split(",")
        if parts[0] == "e":
            tip = flip(float(parts[1]), float(parts[2]))
        elif parts[0] != "s":
            points.append(flip(float(parts[0]), float(parts[1])))
    return tuple(points), tip
