"""Subclassed models: recover what ``call`` does by a symbolic call, else by recording one eager pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.model.traced import Trace
from explorer.runtime.errors import RuntimeFailure
from explorer.text import one_line


def is_graph_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")

def trace_subclassed(model: Any, input_shape: tuple[int | None, ...]) -> tuple[Any | None, Trace]:
    """Recover what a subclassed model's ``call`` does, without guessing.

    First ``model.call`` on symbolic inputs: in Keras 3 this often yields the real graph (sublayers and
    keras.ops), returned as a Functional model sharing the weights. It fails on Python branching over
    tensors and raw TensorFlow ops; then one eager forward pass records each sublayer call (order and
    shapes) and no connection is claimed.
    """
    import json

    import keras

    shape = tuple(input_shape)
    try:
        symbolic = keras.Input(batch_shape=(None, *shape[1:]), name="input")
        traced = keras.Model(symbolic, model.call(symbolic), name=f"{model.name}_traced")
        config = {"module": "keras.src.models.functional", "class_name": "Functional", "config": traced.get_config()}
        note = ("connections observed by calling model.call on symbolic inputs; Python branches not taken for "
                "these inputs are not shown")
        return traced, Trace("symbolic call", json.dumps(config, default=str), note)
    except Exception as error:  # any failure of symbolic tracing falls back to recording
        reason = one_line(f"{type(error).__name__}: {error}", 160)
    calls = record_layer_calls(model, np.zeros((1, *(1 if d is None else d for d in shape[1:])), np.float32))
    note = (f"symbolic tracing failed ({reason}); the sublayer calls of one forward pass on zeros are listed in "
            "order with their output shapes, without connections")
    return None, Trace("eager recording", json.dumps(calls), note)

def record_layer_calls(model: Any, batch: np.ndarray, capture: str | None = None) -> Any:
    """Run ``model`` once eagerly, recording each sublayer call (name, class, output shapes) in order; with
    ``capture``, return that layer's first output value instead."""
    import keras

    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if not isinstance(layer, keras.Model)]
    calls: list[dict[str, Any]] = []
    captured: list[Any] = []
    originals = {id(layer): layer.call for layer in layers}

    def wrap(layer: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = originals[id(layer)](*args, **kwargs)
            flat = result if isinstance(result, list | tuple) else [result]
            calls.append({"name": layer.name, "class_name": type(layer).__name__,
                          "output_shapes": [list(getattr(t, "shape", ())) for t in flat]})
            if layer.name == capture and not captured:
                captured.append(np.asarray(flat[0]))
            return result
        return recorded

    try:
        for layer in layers:
            layer.call = wrap(layer)
        model(batch, training=False)
    finally:
        for layer in layers:
            layer.call = originals[id(layer)]
    if capture is not None:
        if not captured:
            raise RuntimeFailure(f"layer '{capture}' did not run in the forward pass")
        return captured[0]
    return calls
