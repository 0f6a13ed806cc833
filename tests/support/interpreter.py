"""What every layer of a model computes, at every call site, by running the original model node by node.

``run_model`` walks each Functional graph in depth order, calls the leaf layers on real arrays and records
every layer's outputs under ``(path, call_site)``; a nested model is entered with the values its call
receives, a Sequential model applies its layers one after the other. It is checked against Keras itself
(``model(x)`` and Keras sub-models) in tests/runtime/test_runtime.py, so a disagreement with the explorer
points at the explorer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Site = tuple[int, ...]  # one call index per path component, outermost model first
Key = tuple[str, Site]  # (layer path, call site)


def own_calls(layer: Any, graph_nodes: set[int]) -> list[Any]:
    """The calls (nodes) of ``layer`` that belong to a graph, in the order Keras created them."""
    return [node for node in layer._inbound_nodes if id(node) in graph_nodes]


def _substitute(structure: Any, values: dict[int, Any]) -> Any:
    import keras

    def fill(item: Any) -> Any:
        return values[id(item)] if isinstance(item, keras.KerasTensor) else item

    return keras.tree.map_structure(fill, structure)


def run_model(model: Any, flat_inputs: list[Any], prefix: str, site: Site, record: dict[Key, list]) -> list[Any]:
    """Run ``model`` eagerly on real values, recording every layer's outputs; returns the flat outputs."""
    import keras

    if isinstance(model, keras.Sequential):
        (value,) = flat_inputs
        for layer in model._layers:
            if not isinstance(layer, keras.layers.InputLayer):
                value = (run_model(layer, [value], f"{prefix}{layer.name}/", (*site, 0), record)[0]
                         if isinstance(layer, keras.Model) else layer(value))
            record[(prefix + layer.name, (*site, 0))] = [np.asarray(value)]
        return [value]

    graph_nodes = {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}
    values = {id(tensor): value for tensor, value in zip(model.inputs, flat_inputs, strict=True)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.operation
            call = next(i for i, own in enumerate(own_calls(layer, graph_nodes)) if own is node)
            path, call_site = prefix + layer.name, (*site, call)
            if node.is_input:
                results = [values[id(node.outputs[0])]]
            else:
                args = _substitute(node.arguments.args, values)
                kwargs = _substitute(node.arguments.kwargs, values)
                if isinstance(layer, keras.Model):
                    results = run_model(layer, keras.tree.flatten(args), f"{path}/", call_site, record)
                else:
                    results = keras.tree.flatten(layer(*args, **kwargs))
                assert len(results) == len(node.outputs)
                for tensor, value in zip(node.outputs, results, strict=True):
                    values[id(tensor)] = value
            record[(path, call_site)] = [np.asarray(value) for value in results]
    return [values[id(tensor)] for tensor in model.outputs]
