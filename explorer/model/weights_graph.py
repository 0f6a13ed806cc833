"""A weights-only file (``save_weights``) as a graph without connections: one node per stored layer, nested
groups as groups, each with its variables. The architecture lives in code or in a JSON beside it."""

from __future__ import annotations

import re

from explorer.model.categories import (
    classes_with_known_weights,
    is_trainable_weight,
    sublayer_weight_name,
    weight_names,
)
from explorer.model.graph import Finding, LayerGraph, LayerNode, Weight
from explorer.model.weight_groups import to_snake_case
from explorer.model.weights import WeightTree

WEIGHTS_KIND = "weights"


def graph_of_weights(tree: WeightTree, name: str, keras_version: str | None, source: str,
                     findings: tuple[Finding, ...] = ()) -> LayerGraph:
    # Named layers (Keras 2, Keras >= 3.6) by their names; unnamed Keras 3 groups, and a subclassed model's
    # attributes (blocks/dense), by their place in the file.
    stored = dict(tree.by_layer) or {
        tuple(attribute.split("/")[1::2] if attribute.startswith("layers/") else attribute.split("/")): raw
        for attribute, (_name, raw) in tree.by_attribute.items()}
    paths: dict[str, list[str]] = {}  # path -> children, parents first
    for key in sorted(stored):
        for depth in range(1, len(key) + 1):
            path = "/".join(key[:depth])
            if path not in paths:
                paths[path] = []
                if depth > 1:
                    paths["/".join(key[:depth - 1])].append(path)
    unnamed = not tree.by_layer
    nodes = []
    for path, children in paths.items():
        key = tuple(path.split("/"))
        raw = stored.get(key, ())
        # Unnamed Keras 3 groups are named after their layer's class (conv2d_1: Conv2D): that gives the variables
        # their names and trainability; Keras 2 groups carry layer names and weight names instead.
        class_name = _class_of_group(key[-1]) if unnamed else None
        labels = iter(weight_names(class_name, {}, sum(w.key.isdigit() for w in raw)) if class_name else ())
        weights = []
        for w in raw:
            label = (next(labels, None) or sublayer_weight_name("", int(w.key))) if w.key.isdigit() else w.key
            weights.append(Weight(label, w.shape, w.dtype, is_trainable_weight(label, class_name or "")))
        parent = "/".join(key[:-1]) or None
        nodes.append(LayerNode(path=path, name=key[-1], class_name=class_name or "weights", category="other",
                               parent=parent, weights=tuple(weights), children=tuple(children)))
    return LayerGraph(name, WEIGHTS_KIND, tuple(nodes), (), (), (), keras_version, source, findings=findings)


_CLASS_OF_GROUP = {to_snake_case(name): name for name in classes_with_known_weights()}


def _class_of_group(group: str) -> str | None:
    """``batch_normalization_2`` -> BatchNormalization, for the classes whose variables are known."""
    return _CLASS_OF_GROUP.get(re.sub(r"_\d+$", "", group))
