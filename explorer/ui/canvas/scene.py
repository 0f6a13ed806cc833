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
    for route in layout.edges:
        shape = shapes.get((route.source, route.target))
        scene.addItem(EdgeItem(route, format_shape(shape) if shape is not None else ""))
    items: dict[str, LayerItem] = {}
    for path in view.nodes:
        if path not in layout.nodes:
            continue
        node = graph.node(path)
        params = graph.params(path)[0]
        tooltip = f"{node.path}\n{node.class_name} · {params:,} params"
        if node.calls > 1:
            tooltip += f"\nshared: called {node.calls} times"
        badge = f"\u00d7{node.calls}" if node.calls > 1 else ""
        item = LayerItem(path, layout.nodes[path], box_lines(graph, path), node.category, badge, tooltip)
        scene.addItem(item)
        items[path] = item
    scene.setSceneRect(QRectF(-MARGIN, -MARGIN, layout.width + 2 * MARGIN, layout.height + 2 * MARGIN))
    scene.setBackgroundBrush(canvas_colours()[0])
    return items
