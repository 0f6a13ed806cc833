"""What Keras itself says about a model, read from the live Keras objects - never written by hand.

``reference_of`` reads the layers, their inbound nodes, output tensors and weights, so that the tests compare
what the explorer read from a file against Keras. ``model_ref`` is the short form the window tests compare
against: the layer paths, the nested models, the parameter counts and calls of the top-level layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Shape = tuple[int | None, ...]


@dataclass
class LayerRef:
    path: str
    name: str
    class_name: str
    parent: str | None
    params: int
    trainable_params: int
    # Per call (only the calls that belong to the enclosing model's graph):
    inbound: list[list[str]] = field(default_factory=list)  # layer names of the input tensors, in order
    inbound_calls: list[list[int]] = field(default_factory=list)  # call index of the producing layer
    outputs: list[list[Shape]] = field(default_factory=list)
    is_model: bool = False


@dataclass
class PortRef:
    layer: str
    shape: Shape


@dataclass
class Reference:
    name: str
    kind: str
    layers: dict[str, LayerRef]  # path -> layer, in Keras order (parents before children)
    inputs: list[PortRef]
    outputs: list[PortRef]
    output_names: list[str] | None  # the keys of a dict of outputs
    total: int
    trainable: int
    non_trainable: int


@dataclass(frozen=True)
class ModelRef:
    """A saved model and what Keras says about it, in the terms the window shows."""

    path: Path
    name: str
    total_params: int
    trainable_params: int
    top_level: tuple[str, ...]  # names of the top-level layers (InputLayers included)
    layer_paths: tuple[str, ...]  # every layer, nested ones as "outer/inner", parents before children
    groups: tuple[str, ...]  # paths of the nested models
    calls: dict[str, int]  # number of times each top-level layer is called by the model
    params: dict[str, int]  # parameters of each top-level layer (nested models: everything inside)


def _size(variable: Any) -> int:
    return math.prod(int(d) for d in variable.shape)


def _shape(tensor: Any) -> Shape:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _graph_layers(model: Any) -> list[Any]:
    """The layers the explorer shows for ``model``: Sequential models include their InputLayer."""
    import keras

    if isinstance(model, keras.Sequential):
        return list(model._layers)
    return list(model.layers)


def _own_node_keys(model: Any) -> set[str]:
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        return set(functional._nodes) if functional is not None else set()
    return set(model._nodes)


def _is_model(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _collect(model: Any, prefix: str, parent: str | None, out: dict[str, LayerRef]) -> None:
    from keras.src.ops.function import make_node_key

    keys = _own_node_keys(model)
    own = {}  # layer -> list of its inbound-node indices that belong to this model, in order
    for layer in _graph_layers(model):
        own[id(layer)] = [i for i in range(len(layer._inbound_nodes)) if make_node_key(layer, i) in keys]
    for layer in _graph_layers(model):
        path = f"{prefix}{layer.name}"
        ref = LayerRef(
            path=path, name=layer.name, class_name=layer.__class__.__name__, parent=parent,
            params=layer.count_params(), trainable_params=sum(_size(w) for w in layer.trainable_weights),
            is_model=_is_model(layer),
        )
        for node_index in own[id(layer)]:
            node = layer._inbound_nodes[node_index]
            names, calls = [], []
            for tensor in node.input_tensors:
                history = tensor._keras_history
                names.append(history.operation.name)
                producer_calls = own.get(id(history.operation), [])
                calls.append(producer_calls.index(history.node_index) if history.node_index in producer_calls else -1)
            ref.inbound.append(names)
            ref.inbound_calls.append(calls)
            ref.outputs.append([_shape(t) for t in node.output_tensors])
        out[path] = ref
        if ref.is_model:
            _collect(layer, f"{path}/", path, out)


def _relative(variable_path: str, layer_name: str) -> str:
    marker = f"{layer_name}/"
    return variable_path[variable_path.rindex(marker) + len(marker):] if marker in variable_path else variable_path


def keras_weights(layer: Any) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name relative to the layer, shape, trainable) of each of a layer's variables, sorted.

    Names follow the variable paths: ``kernel``, ``query/kernel`` (MultiHeadAttention), ``lstm_cell/bias``.
    """
    trainable = {id(w) for w in layer.trainable_weights}
    return sorted((_relative(w.path, layer.name), tuple(w.shape), id(w) in trainable) for w in layer.weights)


def node_weights(node: Any) -> list[tuple[str, tuple[int, ...], bool]]:
    """The same triples for a LayerNode, as the explorer read them from the weights file."""
    return sorted((w.name, w.shape, w.trainable) for w in node.weights)


def reference_of(model: Any) -> Reference:
    import keras

    layers: dict[str, LayerRef] = {}
    _collect(model, "", None, layers)
    outputs_struct = getattr(model, "_outputs_struct", None)
    if isinstance(model, keras.Sequential):
        kind = "sequential"
    elif isinstance(model, keras.Model) and hasattr(model, "_nodes"):
        kind = "functional"
    else:
        kind = "subclassed"
    return Reference(
        name=model.name,
        kind=kind,
        layers=layers,
        inputs=[PortRef(t._keras_history.operation.name, _shape(t)) for t in model.inputs],
        outputs=[PortRef(t._keras_history.operation.name, _shape(t)) for t in model.outputs],
        output_names=list(outputs_struct) if isinstance(outputs_struct, dict) else None,
        total=model.count_params(),
        trainable=sum(_size(w) for w in model.trainable_weights),
        non_trainable=sum(_size(w) for w in model.non_trainable_weights),
    )


def model_ref(model: Any, path: Path) -> ModelRef:
    """``reference_of`` in the window's terms, for the model saved at ``path``."""
    ref = reference_of(model)
    return ModelRef(
        path=path,
        name=ref.name,
        total_params=ref.total,
        trainable_params=ref.trainable,
        top_level=tuple(layer.name for layer in model.layers),
        layer_paths=tuple(ref.layers),
        groups=tuple(p for p, layer in ref.layers.items() if layer.is_model),
        calls={layer.name: len(ref.layers[layer.name].inbound) for layer in model.layers},
        params={layer.name: ref.layers[layer.name].params for layer in model.layers},
    )
