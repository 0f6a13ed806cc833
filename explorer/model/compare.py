"""Whether two files hold one architecture (two checkpoints of it): layers matched by path, their classes and
weight shapes compared, from the files alone (no Keras, no code from either file)."""

from __future__ import annotations

from explorer.model.graph import LayerGraph

SHOWN = 5  # mismatches named in a refusal


def architecture_mismatches(first: LayerGraph, second: LayerGraph) -> list[str]:
    """Every difference that makes the two not one architecture, in graph order (empty when they match)."""
    a, b = {n.path: n for n in first.nodes}, {n.path: n for n in second.nodes}
    found = [f"{path}: only in {first.name if path in a else second.name}"
             for path in [*a, *(p for p in b if p not in a)] if (path in a) != (path in b)]
    for path, node in a.items():
        other = b.get(path)
        if other is None:
            continue
        if node.class_name != other.class_name:
            found.append(f"{path}: {node.class_name} vs {other.class_name}")
            continue
        shapes = [w.shape for w in node.weights], [w.shape for w in other.weights]
        if shapes[0] != shapes[1]:
            found.append(f"{path}: weights {shapes[0]} vs {shapes[1]}")
    return found


def refusal(first: LayerGraph, second: LayerGraph, mismatches: list[str]) -> str:
    shown = "; ".join(mismatches[:SHOWN]) + (f"; and {len(mismatches) - SHOWN} more" if len(mismatches) > SHOWN
                                              else "")
    return f"{first.name} and {second.name} are not one architecture: {shown}"
