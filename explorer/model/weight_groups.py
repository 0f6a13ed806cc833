"""Weight groups of ``.keras`` archives written without layer names (tf.keras 2.13+, Keras 3.0–3.5), found the
way Keras finds them when it loads the file: per model, its layers in order, each in a group named after its
class in snake_case with a counter (``saving_lib._save_container_state``: ``conv2d``, ``conv2d_1``, …), and the
layers of a nested model under ``<its group>/layers/``. Keras >= 3.6 writes each layer's name as well."""

from __future__ import annotations

import re
from typing import Any

from explorer.model.config_graph import is_layer_list_model, layer_name
from explorer.model.weights import RawWeight, WeightTree, storage_order

OPERATION_MODULES = ("keras.src.ops",)  # keras.ops calls in a functional graph are operations, not layers


def to_snake_case(name: str) -> str:
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_groups(config: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Group path in the weights file -> the layer's names from the top model down."""
    found: dict[str, tuple[str, ...]] = {}

    def walk(model: dict[str, Any], group: str, names: tuple[str, ...]) -> None:
        used: dict[str, int] = {}
        for position, entry in enumerate(model["config"]["layers"]):
            if not isinstance(entry, dict) or str(entry.get("module") or "").startswith(OPERATION_MODULES):
                continue
            snake = to_snake_case(str(entry.get("class_name", "")))
            used[snake] = used.get(snake, -1) + 1
            path = f"{group}layers/{snake}" + (f"_{used[snake]}" if used[snake] else "")
            found[path] = (*names, layer_name(entry, position))
            if is_layer_list_model(entry):
                walk(entry, path + "/", found[path])

    walk(config, "", ())
    return found


def with_unnamed_groups(config: dict[str, Any], tree: WeightTree) -> WeightTree:
    """``tree`` with its weights assigned to layers by Keras' own group naming, when no group carries a name."""
    if tree.by_layer or not tree.by_attribute or not is_layer_list_model(config):
        return tree
    groups = layer_groups(config)
    by_layer: dict[tuple[str, ...], list[RawWeight]] = {}
    for owner, (_name, weights) in tree.by_attribute.items():
        prefix = max((g for g in groups if owner == g or owner.startswith(g + "/")), key=len, default=None)
        if prefix is None:
            continue
        rest = [part for part in owner[len(prefix):].split("/") if part]  # a sublayer's attribute path
        for weight in weights:
            by_layer.setdefault(groups[prefix], []).append(
                RawWeight("/".join([*rest, weight.key]), weight.shape, weight.dtype))
    return WeightTree({layer: tuple(sorted(w, key=storage_order)) for layer, w in by_layer.items()},
                      datasets=tree.datasets, by_attribute=tree.by_attribute)
