"""Model files for the structure tests: each model built once, saved (``.keras`` or legacy ``.h5``) and read
back with ``explorer.model.files.load_graph``, beside the reference data read from the live Keras model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.models import (
    application,
    build_attention,
    build_frozen,
    build_functional_list_outputs,
    build_functional_multi_io,
    build_lstm_state,
    build_nested,
    build_nested_output,
    build_nested_output_deep,
    build_nested_sequential_outputs,
    build_sequential_built,
    build_sequential_cnn,
    build_sequential_dense,
    build_shared_layers,
)
from tests.support.reference import Reference, reference_of

# name -> (builder, file suffix)
BUILDERS: dict[str, tuple[Callable[[], Any], str]] = {
    "sequential_dense": (build_sequential_dense, ".keras"),
    "sequential_cnn": (build_sequential_cnn, ".keras"),
    "sequential_built": (build_sequential_built, ".keras"),
    "functional_multi_io": (build_functional_multi_io, ".keras"),
    "functional_list_outputs": (build_functional_list_outputs, ".keras"),
    "shared_layers": (build_shared_layers, ".keras"),
    "nested": (build_nested, ".keras"),
    "nested_output": (build_nested_output, ".keras"),
    "nested_output_deep": (build_nested_output_deep, ".keras"),
    "nested_sequential_outputs": (build_nested_sequential_outputs, ".keras"),
    "frozen": (build_frozen, ".keras"),
    "lstm_state": (build_lstm_state, ".keras"),
    "attention": (build_attention, ".keras"),
    "legacy_sequential_h5": (build_sequential_cnn, ".h5"),
    "legacy_functional_h5": (build_functional_multi_io, ".h5"),
    "legacy_shared_h5": (build_shared_layers, ".h5"),
    "legacy_nested_h5": (build_nested, ".h5"),
    "ResNet50": (application("ResNet50"), ".keras"),
    "MobileNetV2": (application("MobileNetV2"), ".keras"),
    "EfficientNetB0": (application("EfficientNetB0"), ".keras"),
    "DenseNet121": (application("DenseNet121"), ".keras"),
    "MobileNetV2_h5": (application("MobileNetV2"), ".h5"),
}
SMALL_MODELS = [name for name in BUILDERS if name[0].islower()]
APPLICATIONS = [name for name in BUILDERS if name[0].isupper()]
ALL_MODELS = list(BUILDERS)


@dataclass
class Case:
    name: str
    path: Path
    model: Any
    reference: Reference
    graph: Any


class ModelZoo:
    """Builds, saves and loads each model at most once per session."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._cases: dict[str, Case] = {}
        self._built: dict[Callable[[], Any], tuple[Any, Reference]] = {}

    def model(self, builder: Callable[[], Any]) -> tuple[Any, Reference]:
        """The model a builder makes and its reference data, built once however many files it is saved to."""
        if builder not in self._built:
            model = builder()
            self._built[builder] = (model, reference_of(model))
        return self._built[builder]

    def __call__(self, name: str) -> Case:
        if name not in self._cases:
            from explorer.model.files import load_graph

            builder, suffix = BUILDERS[name]
            model, reference = self.model(builder)
            path = self._folder / f"{name}{suffix}"
            model.save(path)
            self._cases[name] = Case(name, path, model, reference, load_graph(path))
        return self._cases[name]
