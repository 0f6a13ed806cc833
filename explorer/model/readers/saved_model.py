"""A Keras 2 SavedModel folder (``model.save("dir")``, the TF 2.0-2.12 default): ``saved_model.pb``,
``keras_metadata.pb`` and ``variables/``.

The layer graph comes from the Keras metadata the folder carries: its root object holds the same
``model_config`` a legacy ``.h5`` file holds (tf-keras ``saving/legacy/saved_model``). tf-keras does not load the
model from that config: it revives each layer from the ``class_name`` and ``config`` of the layer's own object,
so every object's metadata is checked too (where it says what the model config says, only once). Weight shapes
come from the SavedModel's object graph: each Keras layer's object lists its variables (``kernel``, ``bias``) as
children. The values in ``variables/`` are not read, and no TensorFlow function in the folder is interpreted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from explorer.model.model_file import SAVEDMODEL_FORMAT, ModelFile, ModelFileError
from explorer.model.readers.saved_model_protos import DTYPES, KerasMetadata, SavedModel
from explorer.model.safety import MAX_CONFIG_BYTES
from explorer.model.weights import RawWeight, WeightTree

SAVED_MODEL_PB = "saved_model.pb"
KERAS_METADATA_PB = "keras_metadata.pb"
MAX_SAVED_MODEL_BYTES = 1 << 30  # the functions' graphs; the weights are in variables/, not here
ROOT = "root"


def saved_model_folder(path: Path) -> Path | None:
    """The SavedModel folder that ``path`` is or names (the folder, its saved_model.pb or keras_metadata.pb)."""
    folder = path if path.is_dir() else path.parent if path.name in (SAVED_MODEL_PB, KERAS_METADATA_PB) else None
    if folder is not None and ((folder / SAVED_MODEL_PB).is_file() or (folder / KERAS_METADATA_PB).is_file()):
        return folder
    return None


def read_saved_model(folder: Path) -> ModelFile:
    metadata_file = folder / KERAS_METADATA_PB
    if not metadata_file.is_file():
        raise ModelFileError(folder, "a TensorFlow SavedModel without Keras metadata (written by "
                                     "tf.saved_model.save or Keras 3's model.export): it holds TensorFlow "
                                     "functions, not Keras layers")
    objects = _parse(metadata_file, KerasMetadata, MAX_CONFIG_BYTES).nodes
    layers = {item.node_path: (item.node_id, _decode(item.metadata, metadata_file)) for item in objects}
    if ROOT not in layers or not isinstance(layers[ROOT][1].get("model_config"), dict):
        raise ModelFileError(folder, "the Keras metadata holds no model config (a layer saved on its own?)")
    root = layers[ROOT][1]
    config = root["model_config"]
    weights = _weights(folder, layers) if (folder / SAVED_MODEL_PB).is_file() else WeightTree.empty()
    metadata = {"keras_version": root.get("keras_version"), "backend": root.get("backend")}
    return ModelFile(folder, config, metadata, weights, file_format=SAVEDMODEL_FORMAT,
                     other_configs=_revived_from(layers, config))


def _revived_from(layers: dict[str, tuple[int, dict[str, Any]]], config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What tf-keras deserializes from each object's metadata, for the safety check; an object's class_name and
    config are left out where they are a layer (or model) of ``config`` word for word, already checked there."""
    stated = {_canonical(item) for item in _entries(config)} - {None}
    revived = []
    for path, (_, facts) in layers.items():
        rest = {key: value for key, value in facts.items() if key != "model_config"}
        if _canonical(rest) in stated:
            rest = {key: value for key, value in rest.items() if key not in ("class_name", "config")}
        revived.append((f"{KERAS_METADATA_PB} {path}", rest))
    return tuple(revived)


def _entries(tree: Any) -> list[dict[str, Any]]:
    """Every dict with a class_name and a config in ``tree``."""
    found, stack = [], [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item and "config" in item:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _canonical(item: dict[str, Any]) -> str | None:
    """class_name and config, without the shared_object_id numbers the metadata and the model config differ by
    (None, matching nothing, for metadata nested too deep to compare: it is all checked)."""
    try:
        return json.dumps([item.get("class_name"), _without_ids(item.get("config"))], sort_keys=True)
    except RecursionError:
        return None


def _without_ids(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _without_ids(value) for key, value in tree.items() if key != "shared_object_id"}
    if isinstance(tree, list):
        return [_without_ids(value) for value in tree]
    return tree


def _parse(path: Path, message: type, limit: int) -> Any:
    size = path.stat().st_size
    if size > limit:
        raise ModelFileError(path, f"{size} bytes, more than the {limit} allowed")
    try:
        return message.FromString(path.read_bytes())
    except (DecodeError, RuntimeError, OSError) as error:
        raise ModelFileError(path, f"damaged or truncated ({error})") from error


def _decode(text: str, where: Path) -> dict[str, Any]:
    """tf-keras ``json_utils.decode``: tuples are stored as ``{"class_name": "__tuple__", "items": [...]}``."""
    try:
        value = json.loads(text, object_hook=_untuple)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(where, f"a layer's metadata is not valid JSON ({error})") from error
    return value if isinstance(value, dict) else {}


def _untuple(item: dict[str, Any]) -> Any:
    return item["items"] if item.get("class_name") == "__tuple__" and isinstance(item.get("items"), list) else item


def _weights(folder: Path, layers: dict[str, tuple[int, dict[str, Any]]]) -> WeightTree:
    """Each layer's own variables: the children of its object in the object graph that are variables."""
    graph = _parse(folder / SAVED_MODEL_PB, SavedModel, MAX_SAVED_MODEL_BYTES)
    if not graph.meta_graphs:
        raise ModelFileError(folder, "saved_model.pb holds no graph")
    objects = graph.meta_graphs[0].object_graph_def.nodes
    names = {path: str(facts.get("name", path.rsplit(".", 1)[-1])) for path, (_, facts) in layers.items()}
    owned: set[int] = set()
    by_layer: dict[tuple[str, ...], tuple[RawWeight, ...]] = {}
    for path, (node_id, _) in sorted(layers.items(), key=lambda item: -item[0].count(".")):  # deepest first
        if path == ROOT or not 0 <= node_id < len(objects):
            continue
        found = []
        for child in objects[node_id].children:
            if 0 <= child.node_id < len(objects) and objects[child.node_id].HasField("variable") \
                    and child.node_id not in owned:
                owned.add(child.node_id)
                variable = objects[child.node_id].variable
                shape = tuple(max(int(dim.size), 0) for dim in variable.shape.dim)
                found.append(RawWeight(child.local_name, shape, DTYPES.get(variable.dtype, f"dtype {variable.dtype}")))
        if found:
            parts = path.split(".")[1:]
            key = tuple(names.get(".".join([ROOT, *parts[:i]]), parts[i - 1]) for i in range(1, len(parts) + 1))
            by_layer[key] = tuple(found)
    return WeightTree(by_layer)
