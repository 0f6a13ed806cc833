"""Builds the QGraphicsScene of a laid-out view: shared by the window and the ``graph`` command."""

from __future__ import annotations

from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsScene

from explorer.layout.graphviz import Layout
from explorer.layout.view_graph import ViewGraph
from explorer.model.graph import LayerGraph
from explorer.model.summary import format_shape, output_shape_text
from explorer.ui.canvas.items import EdgeItem, FrameItem, LayerItem, box_size
from explorer.ui.theme import canvas_colours

MARGIN = 20.0


def box_lines(graph: LayerGraph, path: str) -> list[str]:
    node = graph.node(path)
    shape = output_shape_text(graph, path)
    if shape == "?" and node.weights:  # e.g. a subclassed model's sublayer: no shape stored, weights are
        shape = f"{graph.params(path)[0]:,} params"
    lines = [node.name, node.class_name, shape]
    if node.is_group:
        lines.append(f"{graph.params(path)[0]:,} params  ·  double-click to expand")
    return lines


def box_sizes(view: ViewGraph) -> dict[str, tuple[float, float]]:
    return {path: box_size(box_lines(view.graph, path)) for path in view.nodes}


def populate_scene(scene: QGraphicsScene, view: ViewGraph, layout: Layout) -> dict[str, LayerItem]:
    """Fill ``scene`` with the view's frames, edges and boxes; returns the boxes by layer path."""
    scene.clear()
    graph = view.graph
    for path in view.frames:  # outer frames first so inner ones stack above them
        if path in layout.frames:
            frame = FrameItem(path, layout.frames[path], f"{graph.node(path).name}  ({graph.node(path).class_name})")
            frame.setZValue(frame.zValue() + graph.node(path).depth * 0.01)
            scene.addItem(frame)
    shapes = {(e.source, e.target): e.shape for e in view.edges}
    background, edge_colour, _ = canvas_colours()  # once: the theme lookup costs as much as an edge item
    for route in layout.edges:
        shape = shapes.get((route.source, route.target))
        scene.addItem(EdgeItem(route, format_shape(shape) if shape is not None else "", edge_colour))
    items: dict[str, LayerItem] = {}
    problems: dict[str, list[str]] = {}
    for problem in graph.problems:
        if problem.layer is not None:
            problems.setdefault(problem.layer, []).append(problem.what)
    for path in view.nodes:
        if path not in layout.nodes:
            continue
        node = graph.node(path)
        params = graph.params(path)[0]
        tooltip = f"{node.path}\n{node.class_name} · {params:,} params"
        if node.calls > 1:
            tooltip += f"\nshared: called {node.calls} times"
        badge = f"\u00d7{node.calls}" if node.calls > 1 else ""
        # A collapsed nested model shows the problems of the layers inside it.
        wrong = [what for layer, whats in problems.items() if layer == path or layer.startswith(path + "/")
                 for what in whats]
        if wrong:
            tooltip += "\nKeras would refuse this: " + "; ".join(wrong)
        item = LayerItem(path, layout.nodes[path], box_lines(graph, path), node.category, badge, tooltip,
                         problem=bool(wrong))
        scene.addItem(item)
        items[path] = item
    scene.setSceneRect(QRectF(-MARGIN, -MARGIN, layout.width + 2 * MARGIN, layout.height + 2 * MARGIN))
    scene.setBackgroundBrush(background)
    return items
