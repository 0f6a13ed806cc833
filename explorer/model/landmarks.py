"""Layers worth showing first: what a newcomer should see computed before clicking anything."""

from __future__ import annotations

from explorer.model.graph import LayerGraph


def telling_layer(graph: LayerGraph) -> str | None:
    """The deepest layer (graph order, nested models included) whose feature maps are still at least half the
    input's side: deep enough to show learned features, large enough to read. None without image inputs."""
    sides = [port.shape[1] for port in graph.inputs if port.shape and len(port.shape) == 4 and port.shape[1]]
    if not sides:
        return None
    least = max(sides) // 2
    chosen = None
    for node in graph.nodes:
        shapes = [shape for call in node.output_shapes for shape in call if shape is not None]
        if node.is_group or node.class_name == "InputLayer" or len(shapes) != 1 or len(shapes[0]) != 4:
            continue
        side, channels = shapes[0][1], shapes[0][3]
        if side is not None and side >= least and channels is not None and channels > 3:
            chosen = node.path
    return chosen
