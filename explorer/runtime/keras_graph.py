"""The Keras graph of a loaded model: its Functional graph, a layer's own calls, its inputs.

Keras is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

from explorer.model.graph import InputSpec
from explorer.runtime.errors import RuntimeFailure


def input_specs(model: Any) -> list[InputSpec]:
    graph = graph_of(model)
    names = input_names(graph)
    return [InputSpec(name, tuple(t.shape[1:]), str(t.dtype)) for name, t in zip(names, flat_inputs(graph),
                                                                                   strict=True)]

def graph_of(model: Any) -> Any:
    """The Functional graph of a model: itself, or the one a Sequential builds from its input."""
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise RuntimeFailure(f"Sequential model '{model.name}' has no known input shape, so it has no graph")
        return functional
    if not hasattr(model, "_nodes_by_depth"):
        raise RuntimeFailure(f"'{model.name}' is a subclassed model: its connections are Python code")
    return model

def own_nodes(graph: Any, layer: Any) -> list[Any]:
    """The layer's calls inside this graph, in the order the saved config numbers them."""
    from keras.src.ops.function import make_node_key

    return [node for index, node in enumerate(layer._inbound_nodes) if make_node_key(layer, index) in graph._nodes]

def flat_inputs(graph: Any) -> list[Any]:
    value = graph.input
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list | tuple) else [value]

def input_names(graph: Any) -> list[str]:
    value = graph.input
    if isinstance(value, dict):
        return list(value.keys())
    return [t.name for t in flat_inputs(graph)]
