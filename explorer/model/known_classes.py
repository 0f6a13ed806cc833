"""Layer classes that some Keras release loads by name (keras_classes.json, written by
tools/list_keras_classes.py from Keras 3 and tf-keras themselves): a config naming any other class as Keras'
own is a file Keras refuses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources

from explorer.model.graph import LayerNode, Problem

KERAS_MODULES = ("keras", "tf_keras")
OPERATION_MODULES = ("keras.src.ops",)


@cache
def _known() -> tuple[frozenset[str], frozenset[str]]:
    data = json.loads(resources.files("explorer.model").joinpath("keras_classes.json").read_text("utf-8"))
    return frozenset(data["classes"]), frozenset(data["operations"])


def keras_classes() -> frozenset[str]:
    """Layer and model classes some Keras release loads by name."""
    return _known()[0]


def keras_operations() -> frozenset[str]:
    """Keras 3's keras.ops operation classes."""
    return _known()[1]


def check_classes(nodes: Iterable[LayerNode]) -> Iterator[Problem]:
    """Layers whose class no Keras version has. Classes from other modules are custom code: the safety check
    reports those."""
    classes, operations = keras_classes(), keras_operations()
    for node in nodes:
        module = node.module or ""
        if node.class_name in classes or module.startswith(OPERATION_MODULES) \
                or (module and not module.startswith(KERAS_MODULES)):
            continue
        if node.class_name in operations:
            yield Problem(node.path, f"'{node.class_name}' is a keras.ops operation saved without its module "
                                     "(Keras 3 writes them so into legacy .h5 files): Keras cannot load it back "
                                     "(the live tier names the operation for it)",
                          blocking=False)
        else:
            yield Problem(node.path, f"its class '{node.class_name}' exists in no Keras version (misspelled, or a "
                                     "custom layer whose code Keras would need)", blocking=False)
