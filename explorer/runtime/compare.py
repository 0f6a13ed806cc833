"""Two checkpoints of one architecture: how far each layer's weights moved (explorer.runtime.layer_stats has
the activations side)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def leaf_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) of every layer that is not itself a model, nested models walked into."""
    import keras

    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer, f"{path}/")
        else:
            yield path, layer


def weight_change(model_a: Any, model_b: Any) -> dict[str, float]:
    """Per layer with weights: ||B - A|| / ||A|| over all its variables (layers matched by path)."""
    layers_b = dict(leaf_layers(model_b))
    result = {}
    for path, layer in leaf_layers(model_a):
        other = layers_b.get(path)
        if other is None or not layer.weights:
            continue
        a = np.concatenate([np.asarray(w, np.float64).ravel() for w in layer.weights])
        b = np.concatenate([np.asarray(w, np.float64).ravel() for w in other.weights])
        scale = float(np.linalg.norm(a))
        result[path] = float(np.linalg.norm(b - a)) / scale if scale > 0 else float(np.linalg.norm(b))
    return result
