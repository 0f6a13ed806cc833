"""Keras 3 legacy ``.h5`` files Keras itself cannot load back: ``x / 127.5 - 1`` in a functional model is saved as
``TrueDivide`` / ``Subtract`` entries without the module of their keras.ops operation, and Keras' legacy loader
then looks for layers of those names (``Unknown layer: 'TrueDivide'``). Named as the operations they are, Keras
loads the file as written."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from explorer.model.known_classes import keras_classes, keras_operations

OPERATION_MODULES = ("numpy", "nn", "math", "core", "image", "linalg")  # of keras.src.ops


def operation_objects(config: dict[str, Any]) -> dict[str, Any]:
    """``custom_objects`` naming each keras.ops operation the config holds without its module, for Keras' loader.
    A name that is also a layer (Subtract) is mapped only when every entry of it was called as an operation
    (a tensor and a constant), not as a merge layer (one list of tensors)."""
    called: dict[str, set[bool]] = {}
    for entry in _entries(config):
        name = entry.get("class_name")
        if isinstance(name, str) and "module" not in entry and name in keras_operations():
            called.setdefault(name, set()).update(_as_operation(node) for node in entry.get("inbound_nodes") or [])
    wanted = [name for name, ways in called.items() if ways == {True} or name not in keras_classes()]
    found = {}
    for name in wanted:
        for module in OPERATION_MODULES:
            operation = getattr(importlib.import_module(f"keras.src.ops.{module}"), name, None)
            if operation is not None:
                found[name] = operation
                break
    return found


def _entries(config: Any) -> Iterator[dict[str, Any]]:
    layers = config.get("config", {}).get("layers") if isinstance(config, dict) else None
    for entry in layers if isinstance(layers, list) else []:
        if isinstance(entry, dict):
            yield entry
            yield from _entries(entry)


def _as_operation(node: Any) -> bool:
    args = node.get("args") if isinstance(node, dict) else None
    return isinstance(args, list) and not (len(args) == 1 and isinstance(args[0], list))
