"""Keras 2 (tf-keras) models rebuilt in Keras 3: the same layers under the same names, the same connections and
the same weights. The live tier then has one code path (cutting extractors at any layer and call site, export)
for every generation, and "Save as Keras 3" writes the rebuilt model.

Names keep to Keras 3's rule (no "/", explorer.model.graph.path_part), so layer paths address both models. The
rebuild walks the loaded tf-keras model's own graph (its nodes, their call arguments), calls a Keras 3 twin
of each layer on the twins of its inputs, and copies each layer's weights. TFOpLambda / SlicingOpLambda layers
(TensorFlow functions called on Keras tensors) become the keras.ops operation computing the same thing, under
the layer's name; a TensorFlow function with no such operation is refused by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from explorer.model.graph import path_part
from explorer.runtime.errors import RuntimeFailure

TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


def upgrade_model(model: Any) -> Any:
    """The Keras 3 twin of a tf-keras Functional or Sequential model, with its weights."""
    twins: dict[int, tuple[Any, Any]] = {}  # id(tf-keras layer) -> (the layer, its twin)
    rebuilt = _rebuild(model, twins)
    for source, twin in twins.values():
        if not hasattr(source, "_nodes_by_depth") and type(source).__name__ not in TF_OP_LAYERS:
            _copy_weights(source, twin)
    return rebuilt


def _rebuild(model: Any, twins: dict[int, tuple[Any, Any]]) -> Any:
    import keras
    import tensorflow as tf

    if not getattr(model, "_is_graph_network", False):
        raise RuntimeFailure(f"'{model.name}' is a subclassed Keras 2 model: it has no graph to rebuild")
    tensors: dict[int, Any] = {}
    inputs = []
    for layer, tensor in zip(model._input_layers, model.inputs, strict=True):
        twin = keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype.name, name=path_part(layer.name))
        tensors[id(tensor)] = twin
        inputs.append(twin)

    def twin_of(value: Any) -> Any:
        return tensors.get(id(value), value)

    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.layer
            if id(layer) not in twins:
                twins[id(layer)] = (layer, _twin_layer(layer, twins))
            args = tf.nest.map_structure(twin_of, node.call_args)
            kwargs = tf.nest.map_structure(twin_of, dict(node.call_kwargs))
            outputs = twins[id(layer)][1](*args, **kwargs)
            for old, new in zip(tf.nest.flatten(node.outputs), keras.tree.flatten(outputs), strict=True):
                tensors[id(old)] = new
    outputs = tf.nest.map_structure(twin_of, model._nested_outputs)
    if type(model).__name__ == "Sequential":
        layers = [twins[id(layer)][1] for layer in model.layers]
        return keras.Sequential([inputs[0], *layers], name=path_part(model.name))
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=path_part(model.name))


def _twin_layer(layer: Any, twins: dict[int, tuple[Any, Any]]) -> Any:
    """A Keras 3 layer (or operation) computing what ``layer`` computes, with its weights."""
    import keras

    class_name = type(layer).__name__
    if class_name in TF_OP_LAYERS:
        return _twin_operation(layer)
    if hasattr(layer, "_nodes_by_depth"):  # a nested model
        return _rebuild(layer, twins)
    if class_name == "Lambda":  # its Python function, already loaded (only ever with the user's trust)
        return keras.layers.Lambda(layer.function, arguments=layer.arguments, name=path_part(layer.name))
    if not hasattr(keras.layers, class_name):
        raise RuntimeFailure(f"layer '{layer.name}' is a {class_name}, which Keras 3 does not have")
    twin_class = getattr(keras.layers, class_name)
    accepted = _accepted_arguments(twin_class)
    # Keys Keras 3 does not take are ones its layer has no use for (a SeparableConv2D's kernel_initializer, the
    # batch_input_shape of a first layer): the rebuilt model is checked against tf-keras' numbers anyway.
    config = {key: value for key, value in _plain(layer.get_config()).items() if key in accepted}
    config["name"] = path_part(layer.name)  # Keras 3 forbids the "/" Keras 2 allowed; the paths say "_" too
    if class_name == "BatchNormalization" and isinstance(config.get("axis"), list) and len(config["axis"]) == 1:
        config["axis"] = config["axis"][0]  # Keras 2 stores [3]; Keras 3 takes one axis
    try:
        return twin_class.from_config(config)
    except Exception as error:  # Keras raises many types for configs it does not take
        raise RuntimeFailure(f"layer '{layer.name}' ({class_name}) cannot be rebuilt in Keras 3: {error}") from error


def _accepted_arguments(layer_class: type) -> set[str]:
    """The constructor arguments a Keras 3 layer class takes, its base classes' included."""
    names = set()
    for cls in layer_class.__mro__:
        if "__init__" in vars(cls):
            names |= {p.name for p in inspect.signature(vars(cls)["__init__"]).parameters.values()
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names - {"self"}


def _plain(value: Any) -> Any:
    """A config as plain dicts and lists (tf-keras hands out its tracking wrappers of them)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ListWrapper":
        return [_plain(item) for item in value]
    return value


def _copy_weights(source: Any, twin: Any) -> None:
    """The twin (built by now: set_weights needs its variables) takes the tf-keras layer's weights."""
    values = source.get_weights()
    if len(values) != len(twin.weights):
        raise RuntimeFailure(f"layer '{source.name}': {len(values)} weights in Keras 2, {len(twin.weights)} in its "
                             "Keras 3 rebuild")
    twin.set_weights(values)
    if hasattr(twin, "finalize_state"):  # Normalization derives its mean and variance from the weights
        twin.finalize_state()


# -- TensorFlow functions -> keras.ops operations


def _twin_operation(layer: Any) -> Callable[..., Any]:
    symbol = layer.symbol or getattr(layer.function, "__name__", "?")
    make = TF_OPERATIONS.get(symbol)
    if make is None:
        raise RuntimeFailure(f"layer '{layer.name}' calls tf.{symbol}, which has no Keras 3 equivalent")
    signature = inspect.signature(layer.function)

    def call(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs)
        arguments.apply_defaults()
        named = dict(arguments.arguments)
        named.pop("name", None)
        return make(path_part(layer.name), named)

    return call


def _binary(op_name: str, first: str = "x", second: str = "y") -> Callable[[str, dict], Any]:
    def make(name: str, args: dict) -> Any:
        from keras.src.ops import numpy as knp

        return getattr(knp, op_name)(name=name)(args[first], args[second])
    return make


def _unary(module: str, op_name: str, argument: str = "x", **fixed: str) -> Callable[[str, dict], Any]:
    def make(name: str, args: dict) -> Any:
        import importlib

        operation = getattr(importlib.import_module(f"keras.src.ops.{module}"), op_name)
        options = {key: args[value] for key, value in fixed.items()}
        return operation(name=name, **options)(args[argument])
    return make


def _getitem(name: str, args: dict) -> Any:
    from keras.src.ops.numpy import GetItem

    return GetItem(name=name)(args["tensor"], args["slice_spec"])


def _reduce(op_name: str) -> Callable[[str, dict], Any]:
    def make(name: str, args: dict) -> Any:
        from keras.src.ops import numpy as knp

        return getattr(knp, op_name)(axis=args.get("axis"), keepdims=bool(args.get("keepdims")), name=name)(
            args["input_tensor"])
    return make


def _concat(name: str, args: dict) -> Any:
    from keras.src.ops.numpy import Concatenate

    return Concatenate(axis=args.get("axis", 0), name=name)(args["values"])


TF_OPERATIONS: dict[str, Callable[[str, dict], Any]] = {
    "math.truediv": _binary("TrueDivide"), "__operators__.truediv": _binary("TrueDivide"),
    "math.divide": _binary("TrueDivide"),
    "math.subtract": _binary("Subtract"), "__operators__.sub": _binary("Subtract"),
    "math.add": _binary("Add"), "__operators__.add": _binary("Add"), "nn.bias_add": _binary("Add", "value", "bias"),
    "math.multiply": _binary("Multiply"), "__operators__.mul": _binary("Multiply"),
    "math.maximum": _binary("Maximum"), "math.minimum": _binary("Minimum"), "math.pow": _binary("Power"),
    "linalg.matmul": _binary("Matmul", "a", "b"),
    "nn.relu": _unary("nn", "Relu", "features"), "nn.relu6": _unary("nn", "Relu6", "features"),
    "math.sigmoid": _unary("nn", "Sigmoid"), "nn.silu": _unary("nn", "Silu", "features"),
    "math.tanh": _unary("numpy", "Tanh"), "math.exp": _unary("numpy", "Exp"), "math.log": _unary("numpy", "Log"),
    "math.sqrt": _unary("numpy", "Sqrt"), "math.square": _unary("numpy", "Square"),
    "math.abs": _unary("numpy", "Absolute"), "math.negative": _unary("numpy", "Negative"),
    "nn.softmax": _unary("nn", "Softmax", "logits", axis="axis"),
    "reshape": _unary("numpy", "Reshape", "tensor", newshape="shape"),
    "expand_dims": _unary("numpy", "ExpandDims", "input", axis="axis"),
    "compat.v1.transpose": _unary("numpy", "Transpose", "a", axes="perm"),
    "transpose": _unary("numpy", "Transpose", "a", axes="perm"),
    "cast": _unary("core", "Cast", "x", dtype="dtype"),
    "__operators__.getitem": _getitem,
    "math.reduce_mean": _reduce("Mean"), "math.reduce_sum": _reduce("Sum"), "math.reduce_max": _reduce("Max"),
    "concat": _concat,
}
