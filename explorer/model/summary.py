"""The model summary as plain data (for ``summary --json``) and as text (like ``model.summary()``)."""

from __future__ import annotations

from typing import Any

from explorer.model.graph import LayerGraph, Shape
from explorer.model.origin import origin_text


def summary_dict(graph: LayerGraph) -> dict[str, Any]:
    total, trainable, non_trainable = graph.totals
    return {
        "model": {
            "name": graph.name,
            "kind": graph.kind,
            "format": graph.file_format,
            "keras_version": graph.keras_version,
            "writer": graph.writer,
            "origin": origin_text(graph),
            "inputs": [{"name": p.name, "shape": _list(p.shape)} for p in graph.inputs],
            "outputs": [{"name": p.name, "shape": _list(p.shape)} for p in graph.outputs],
            "total_params": total,
            "trainable_params": trainable,
            "non_trainable_params": non_trainable,
            "problems": [str(problem) for problem in graph.problems],  # what Keras would refuse
        },
        "layers": [
            {
                "name": node.name,
                "class_name": node.class_name,
                "parent": graph.node(node.parent).name if node.parent else None,
                "output_shapes": [_list(shape) for call in node.output_shapes for shape in call],
                "params": graph.params(node.path)[0],
                "calls": node.calls,
                "inbound": [graph.node(path).name for path in graph.inbound(node.path)],
            }
            for node in graph.nodes
        ],
    }


def format_shape(shape: Shape | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def output_shape_text(graph: LayerGraph, path: str) -> str:
    """The layer's output shapes as one short string; calls with different shapes are separated by ' | '."""
    node = graph.node(path)
    per_call = [", ".join(format_shape(s) for s in call) for call in node.output_shapes]
    return " | ".join(dict.fromkeys(per_call)) or "?"


def summary_text(graph: LayerGraph) -> str:
    rows = [("Layer (type)", "Output shape", "Params", "Connected to")]
    for node in graph.nodes:
        indent = "  " * node.depth
        calls = f" x{node.calls}" if node.calls > 1 else ""
        rows.append((
            f"{indent}{node.name} ({node.class_name}){calls}",
            output_shape_text(graph, node.path),
            f"{graph.params(node.path)[0]:,}",
            ", ".join(graph.node(p).name for p in graph.inbound(node.path)),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f'Model: "{graph.name}" ({graph.kind})']
    if graph.file_format:
        origin = origin_text(graph)
        lines.append(origin[0].upper() + origin[1:])
    rule = "-" * (sum(widths) + 6)
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append(rule)
    total, trainable, non_trainable = graph.totals
    lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {non_trainable:,}"]
    return "\n".join(lines)


def _list(shape: Shape | None) -> list[int | None] | None:
    return None if shape is None else list(shape)
