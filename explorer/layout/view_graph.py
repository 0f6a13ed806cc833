"""What is drawn for a given set of expanded nested models: visible layers, frames and edges."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.model.graph import Edge, LayerGraph, Shape


@dataclass(frozen=True)
class VisibleEdge:
    source: str
    target: str
    shape: Shape | None
    feedback: bool = False  # a nested model's output fed back into it (it is called again): not a rank constraint


@dataclass(frozen=True)
class ViewGraph:
    graph: LayerGraph
    expanded: frozenset[str]
    nodes: tuple[str, ...]  # drawn as boxes (collapsed groups included)
    frames: tuple[str, ...]  # expanded groups, drawn as labelled frames around their children
    edges: tuple[VisibleEdge, ...]


def build_view(graph: LayerGraph, expanded: frozenset[str] | set[str] = frozenset()) -> ViewGraph:
    expanded = frozenset(p for p in expanded if p in graph and graph.node(p).is_group)
    frames = tuple(p for p in (n.path for n in graph.nodes) if p in expanded and _visible(graph, p, expanded))
    nodes = tuple(
        n.path for n in graph.nodes
        if n.path not in expanded and _visible(graph, n.path, expanded)
    )
    edges: dict[VisibleEdge, None] = {}
    visible = set(nodes)
    for edge in graph.edges:
        if not _visible(graph, edge.target, expanded):
            continue  # inside a collapsed group: represented by the group box
        source = _exit_point(graph, edge, expanded)
        target = _entry_point(graph, edge.target, edge.argument, expanded)
        if source in visible and target in visible:
            edges[VisibleEdge(source, target, edge.shape, edge.source == edge.target)] = None
    return ViewGraph(graph, expanded, nodes, frames, tuple(edges))


def _visible(graph: LayerGraph, path: str, expanded: frozenset[str]) -> bool:
    parent = graph.node(path).parent
    while parent is not None:
        if parent not in expanded:
            return False
        parent = graph.node(parent).parent
    return True


def _entry_point(graph: LayerGraph, path: str, argument: int, expanded: frozenset[str]) -> str:
    """Where a tensor entering ``path`` lands: inside an expanded group, on the matching input layer."""
    while path in expanded:
        inputs = graph.node(path).input_layers
        if not inputs:
            break
        path = inputs[min(argument, len(inputs) - 1)]
        argument = 0
    return path


def _exit_point(graph: LayerGraph, edge: Edge, expanded: frozenset[str]) -> str:
    """Where a tensor leaving ``edge.source`` comes from: in an expanded group, the inner output layer."""
    path, index = edge.source, edge.source_index
    while path in expanded:
        outputs = graph.node(path).output_layers
        if not outputs:
            break
        path, index = outputs[min(index, len(outputs) - 1)]
    return path
