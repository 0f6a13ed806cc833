"""The structure of a subclassed model as recovered by the live tier, labelled with how it was obtained."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from explorer.model.categories import category_of
from explorer.model.config_graph import graph_from_config
from explorer.model.graph import LayerGraph, LayerNode
from explorer.model.weights import WeightTree


@dataclass(frozen=True)
class Trace:
    """What the live tier observed of a subclassed model's forward pass."""

    method: str  # "symbolic call", "eager recording" or "loaded model"
    config_json: str  # a Functional config (symbolic call) or the recorded layer calls (eager recording)
    note: str


def traced_graph(trace: Trace, file_graph: LayerGraph) -> LayerGraph:
    """A LayerGraph from a trace; the weights come from the file's tracked sublayers (matched by name)."""
    if trace.method in ("symbolic call", "loaded model"):
        graph = graph_from_config(json.loads(trace.config_json), WeightTree.empty(), file_graph.keras_version,
                                  file_graph.source)
        nodes, edges, inputs, outputs = graph.nodes, graph.edges, graph.inputs, graph.outputs
    else:
        nodes, edges, inputs, outputs = _recorded_nodes(json.loads(trace.config_json)), (), (), ()
    stored = {node.name: node.weights for node in file_graph.nodes}
    nodes = tuple(dataclasses.replace(node, weights=stored.get(node.name, node.weights)) for node in nodes)
    return dataclasses.replace(
        file_graph, nodes=nodes, edges=tuple(edges), inputs=inputs, outputs=outputs,
        trace=f"traced ({trace.method}): {trace.note}")


def _recorded_nodes(calls: list[dict]) -> tuple[LayerNode, ...]:
    """Layers in the order they ran, each call's output shapes; no edges, since none were observed."""
    order: dict[str, list[dict]] = {}
    for call in calls:
        order.setdefault(str(call["name"]), []).append(call)
    return tuple(
        LayerNode(path=name, name=name, class_name=str(runs[0]["class_name"]),
                  category=category_of(str(runs[0]["class_name"])), parent=None, calls=len(runs),
                  output_shapes=tuple(tuple(tuple(s) for s in run["output_shapes"]) for run in runs))
        for name, runs in order.items())
