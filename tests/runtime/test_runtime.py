"""Values computed by ``explorer.runtime.extraction`` against values computed directly with Keras.

Every model is built once per session, its BatchNormalization statistics are randomised (so that inference
mode matters), it is saved to a ``.keras`` file and loaded back with ``load_model``. The explorer
side cuts an extractor out of the *loaded* model; the reference side runs the *original* in-memory model:

* top-level layers of Functional models: ``keras.Model(model.input, layer._inbound_nodes[k].output_tensors)``;
* everything (nested models, shared layers, every call site): the eager interpreter of
  ``tests/support/interpreter.py``, which walks each Functional graph node by node, calls the leaf layers on
  real arrays and records every layer's outputs under ``(path, call_site)`` - a nested model is entered with
  the values its call receives;
* Sequential models: the layers applied one after the other.

The interpreter is checked against Keras here (its final outputs against ``model(x)``, its top-level
values against Keras sub-models), so a disagreement with the explorer points at the explorer.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.model.graph import InputSpec
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.extraction import build_extractor, run_extractor
from explorer.runtime.keras_graph import input_specs
from explorer.runtime.loading import load_model
from tests.support.interpreter import Key, Site, own_calls, run_model
from tests.support.models import (
    application,
    build_functional_cnn,
    build_functional_list_outputs,
    build_functional_multi_io,
    build_multi_output_layers,
    build_nested,
    build_nested_shared,
    build_sequential_built,
    build_sequential_dense,
    build_shared_layers,
    randomise_statistics,
)

ATOL = 1e-5

BUILDERS: dict[str, Callable[[], Any]] = {
    "sequential_input": build_sequential_dense,
    "sequential_built": build_sequential_built,
    "functional_cnn": build_functional_cnn,
    "multi_io_dict": build_functional_multi_io,
    "multi_io_list": build_functional_list_outputs,
    "shared": build_shared_layers,
    "nested": build_nested,
    "nested_shared": build_nested_shared,
    "multi_output_layers": build_multi_output_layers,
    "ResNet50": application("ResNet50"),
    "MobileNetV2": application("MobileNetV2"),
}
SMALL = [name for name in BUILDERS if name[0].islower()]
STRUCTURED = ["shared", "nested", "nested_shared", "multi_output_layers", "multi_io_dict", "sequential_built"]
APPLICATION_LAYERS = {
    "ResNet50": ["conv1_conv", "pool1_pool", "conv2_block1_add", "conv3_block2_out", "conv4_block3_2_bn",
                 "conv5_block3_out", "avg_pool", "predictions"],
    "MobileNetV2": ["Conv1", "bn_Conv1", "expanded_conv_project", "block_3_expand_relu", "block_8_add",
                    "block_13_depthwise", "out_relu", "predictions"],
}


# --------------------------------------------------------------------------- the session store


def _example(shape: tuple[int | None, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    assert None not in shape, f"the test models have fixed input shapes, got {shape}"
    if "int" in dtype:
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.normal(0.0, 1.0, size=shape).astype(dtype)


@dataclass
class Case:
    name: str
    path: Path
    original: Any  # the model as built (reference side)
    loaded: Any  # the model loaded back with load_model (explorer side)
    inputs: dict[str, np.ndarray]  # one example per input layer name, without batch axis
    _extractors: dict[tuple[str, Site | None], Any] = field(default_factory=dict)

    @cached_property
    def specs(self) -> list[InputSpec]:
        return input_specs(self.loaded)

    @cached_property
    def graph(self) -> Any:
        from explorer.model.files import load_graph

        return load_graph(self.path)

    def batch(self, name: str) -> np.ndarray:
        return self.inputs[name][None, ...]

    @cached_property
    def input_names(self) -> list[str]:
        """Names of the original model's inputs, in ``model.inputs`` order."""
        return [tensor._keras_history.operation.name for tensor in self.original.inputs]

    @cached_property
    def recorded(self) -> dict[Key, list[np.ndarray]]:
        record: dict[Key, list[np.ndarray]] = {}
        flat = [self.batch(name) for name in self.input_names]
        outputs = run_model(self.original, flat, "", (), record)
        self._final = [np.asarray(value) for value in outputs]
        return record

    @cached_property
    def final(self) -> list[np.ndarray]:
        _ = self.recorded
        return self._final

    def feed(self) -> Any:
        """The batched example in the structure the original model takes (dict, list or single array)."""
        import keras

        if isinstance(self.original, keras.Sequential):  # never called, so ``.input`` is undefined
            return self.batch(self.input_names[0])
        structure = self.original.input
        if isinstance(structure, dict):
            return {key: self.batch(tensor._keras_history.operation.name) for key, tensor in structure.items()}
        flat = [self.batch(name) for name in self.input_names]
        return flat if isinstance(structure, list | tuple) else flat[0]

    def reload(self) -> None:
        """A fresh copy of the loaded model, for tests that must not be affected by earlier extractors."""
        self.loaded = load_model(self.path)
        self._extractors.clear()

    def explorer(self, path: str, site: Site | None = None) -> list[np.ndarray]:
        """What the explorer computes for a layer (without batch axis)."""
        key = (path, site)
        if key not in self._extractors:
            self._extractors[key] = build_extractor(self.loaded, path, site)
        return run_extractor(self._extractors[key], self.inputs, self.specs)

    def reference(self, path: str, site: Site) -> list[np.ndarray]:
        return [value[0] for value in self.recorded[(path, site)]]


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cases: dict[str, Case] = {}

    def __call__(self, name: str) -> Case:
        if name not in self.cases:
            rng = np.random.default_rng(sum(map(ord, name)))
            model = BUILDERS[name]()
            randomise_statistics(model, rng)
            path = self.folder / f"{name}.keras"
            model.save(path)
            inputs = {}
            for tensor in model.inputs:
                inputs[tensor._keras_history.operation.name] = _example(tuple(tensor.shape[1:]), str(tensor.dtype),
                                                                        rng)
            self.cases[name] = Case(name, path, model, load_model(path), inputs)
        return self.cases[name]


@pytest.fixture(scope="session")
def store(keras_module, tmp_path_factory: pytest.TempPathFactory) -> Store:
    keras_module.utils.set_random_seed(1)
    return Store(tmp_path_factory.mktemp("runtime_models"))


def _assert_close(actual: list[np.ndarray], expected: list[np.ndarray], what: str) -> None:
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, expected {len(expected)}"
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got.shape == want.shape, f"{what} output {index}: shape {got.shape}, expected {want.shape}"
        assert np.allclose(got, want, atol=ATOL), (
            f"{what} output {index}: max difference {np.max(np.abs(got - want))}")


def _keras_submodel_values(case: Case, layer_name: str, call: int) -> list[np.ndarray]:
    """Keras' own answer for a top-level layer call: a Model from the inputs to that node's output tensors."""
    import keras

    model = case.original
    graph_nodes = {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}
    layer = model.get_layer(layer_name)
    node = own_calls(layer, graph_nodes)[call]
    submodel = keras.Model(model.input, list(node.output_tensors))
    result = submodel(case.feed(), training=False)
    result = result if isinstance(result, list | tuple) else [result]
    return [np.asarray(value)[0] for value in result]


# --------------------------------------------------------------------------- the reference checks itself


@pytest.mark.parametrize("name", SMALL)
def test_reference_interpreter_matches_keras(store: Store, name: str) -> None:
    """The recorded values end in the model's own outputs, and top-level layers match Keras sub-models."""
    import keras

    case = store(name)
    direct = case.original(case.feed(), training=False)
    _assert_close(case.final, [np.asarray(v) for v in keras.tree.flatten(direct)], f"{name} model outputs")
    if isinstance(case.original, keras.Sequential):
        return
    for path, site in case.recorded:
        if "/" not in path:
            _assert_close(case.reference(path, site), _keras_submodel_values(case, path, site[0]),
                          f"{name}: {path} {site} (interpreter vs Keras sub-model)")


# --------------------------------------------------------------------------- values


def test_input_specs_name_every_input(store: Store) -> None:
    for name in SMALL:
        case = store(name)
        specs = case.specs
        assert sorted(spec.name for spec in specs) == sorted(case.inputs), name
        for spec in specs:
            assert spec.shape == case.inputs[spec.name].shape, (name, spec)
            assert spec.dtype == str(case.inputs[spec.name].dtype), (name, spec)


@pytest.mark.parametrize("name", SMALL)
def test_every_layer_and_call_site_matches_reference(store: Store, name: str) -> None:
    case = store(name)
    failures = []
    for path, site in case.recorded:
        try:
            _assert_close(case.explorer(path, site), case.reference(path, site), f"{path} {site}")
        except Exception as error:  # collect them all; a failed extractor may leave the model damaged
            failures.append(f"{type(error).__name__}: {error}")
            case.reload()
    assert not failures, f"{name}: {len(failures)} of {len(case.recorded)} fail:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    ("name", "path"),
    [("sequential_built", "first"), ("sequential_built", "bn"), ("sequential_built", "second"),
     ("sequential_input", "norm"), ("sequential_input", "probs")],
)
def test_sequential_layers_without_call_site(store: Store, name: str, path: str) -> None:
    """The default call site is the first call; a Sequential chain applied by hand is the reference."""
    case = store(name)
    value = case.batch(case.input_names[0])
    for layer in case.original.layers:
        value = layer(value, training=False)
        if layer.name == path:
            break
    _assert_close(case.explorer(path), [np.asarray(value)[0]], f"{name}/{path}")


def test_sequential_built_has_no_output_yet_explorer_computes(store: Store) -> None:
    case = store("sequential_built")
    with pytest.raises((AttributeError, ValueError)):
        _ = case.loaded.output
    assert case.explorer("second")[0].shape == (3,)


@pytest.mark.parametrize(
    ("path", "sites"),
    [
        ("block/middle/mid_dense", [(0, 0, 0), (0, 1, 0)]),
        ("block/middle/innermost/seq_bn", [(0, 0, 0, 0), (0, 1, 0, 0)]),
        ("block/middle", [(0, 0), (0, 1)]),
    ],
)
def test_nested_model_called_twice_gives_both_calls(store: Store, path: str, sites: list[Site]) -> None:
    case = store("nested")
    results = [case.explorer(path, site) for site in sites]
    for site, result in zip(sites, results, strict=True):
        _assert_close(result, case.reference(path, site), f"{path} {site}")
    assert not np.allclose(results[0][0], results[1][0]), "both call sites returned the same values"


@pytest.mark.parametrize(("path", "site"), [("pair/pa", (0, 0)), ("pair/pb", (1, 0)),
                                           ("pair/inner/inner_in", (0, 1, 0))])
def test_input_layer_of_nested_model_called_with_more_specific_shape(store: Store, path: str, site: Site) -> None:
    """``pair`` takes sequences of any length and is called on fixed-length ones; its inputs are its arguments.

    Selecting such an input layer must give the values fed to it, and must not damage the loaded model:
    the tensors of the enclosing graph still lead to the layers computed afterwards.
    """
    case = store("nested_shared")
    model = load_model(case.path)  # private copy: this test may damage it
    values = run_extractor(build_extractor(model, path, site), case.inputs, case.specs)
    _assert_close(values, case.reference(path, site), f"{path} {site}")
    after = run_extractor(build_extractor(model, "joined"), case.inputs, case.specs)
    _assert_close(after, case.reference("joined", (0,)), "joined, computed afterwards")


def test_nested_default_call_site_is_first_call(store: Store) -> None:
    case = store("nested")
    _assert_close(case.explorer("block/middle/mid_dense"), case.reference("block/middle/mid_dense", (0, 0, 0)),
                  "default call site")


@pytest.mark.parametrize("call", [0, 1, 2])
def test_shared_layer_each_call_site(store: Store, call: int) -> None:
    case = store("shared")
    expected = _keras_submodel_values(case, "shared_dense", call)
    _assert_close(case.explorer("shared_dense", (call,)), expected, f"shared_dense call {call}")


def test_layer_applied_to_its_own_output(store: Store) -> None:
    case = store("shared")
    first, second = case.explorer("twice", (0,)), case.explorer("twice", (1,))
    _assert_close(first, _keras_submodel_values(case, "twice", 0), "twice call 0")
    _assert_close(second, _keras_submodel_values(case, "twice", 1), "twice call 1")
    layer = case.original.get_layer("twice")
    _assert_close(second, [np.asarray(layer(first[0][None]))[0]], "twice call 1 = twice(call 0)")


def test_layers_with_several_outputs(store: Store) -> None:
    case = store("multi_output_layers")
    lstm = case.explorer("lstm")
    assert [a.shape for a in lstm] == [(9, 6), (6,), (6,)]
    _assert_close(lstm, _keras_submodel_values(case, "lstm", 0), "lstm")
    attention = case.explorer("attn")
    assert [a.shape for a in attention] == [(9, 6), (2, 9, 9)]
    _assert_close(attention, _keras_submodel_values(case, "attn", 0), "attention with scores")
    assert np.allclose(attention[1].sum(axis=-1), 1.0, atol=1e-5)


def test_dict_inputs_and_outputs(store: Store) -> None:
    case = store("multi_io_dict")
    assert isinstance(case.loaded.input, dict)
    for path in ["image", "meta", "conv", "joined", "label_head", "score_head"]:
        _assert_close(case.explorer(path), _keras_submodel_values(case, path, 0), path)


@pytest.mark.parametrize(("name", "layer"), [(name, layer) for name, names in APPLICATION_LAYERS.items()
                                             for layer in names])
def test_application_layers(store: Store, name: str, layer: str) -> None:
    case = store(name)
    _assert_close(case.explorer(layer), _keras_submodel_values(case, layer, 0), f"{name}/{layer}")


# --------------------------------------------------------------------------- what the structure view lists


def _sites_of(graph: Any) -> set[Key]:
    return {(node.path, site) for node in graph.nodes for site in graph.call_sites(node.path)}


@pytest.mark.parametrize("name", STRUCTURED)
def test_structure_view_call_sites_are_the_real_ones(store: Store, name: str) -> None:
    """Every (path, call site) the structure view offers is one Keras runs, and the other way round."""
    case = store(name)
    listed, real = _sites_of(case.graph), set(case.recorded)
    assert listed == real, f"only listed: {sorted(listed - real)}; only run: {sorted(real - listed)}"


@pytest.mark.parametrize("name", STRUCTURED)
def test_every_listed_call_site_builds_with_the_listed_shapes(store: Store, name: str) -> None:
    case = store(name)
    failures = []
    for node in case.graph.nodes:
        for site in case.graph.call_sites(node.path):
            try:
                outputs = case.explorer(node.path, site)
            except Exception as error:  # collect them all; a failed extractor may leave the model damaged
                failures.append(f"{node.path} {site}: {type(error).__name__}: {error}")
                case.reload()
                continue
            shapes = node.output_shapes[site[-1]]
            if len(outputs) != len(shapes):
                failures.append(f"{node.path} {site}: {len(outputs)} outputs, the view lists {len(shapes)}")
                continue
            for array, shape in zip(outputs, shapes, strict=True):
                if shape is None:
                    continue
                expected = shape[1:]  # without the batch axis
                same = len(array.shape) == len(expected) and all(
                    want is None or got == want for got, want in zip(array.shape, expected, strict=True))
                if not same:
                    failures.append(f"{node.path} {site}: shape {array.shape}, the view lists {shape}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- errors


def test_unknown_layer_name(store: Store) -> None:
    case = store("nested")
    with pytest.raises(RuntimeFailure, match="no layer named 'nope'"):
        build_extractor(case.loaded, "nope")
    with pytest.raises(RuntimeFailure, match="no layer named 'nope' in middle"):
        build_extractor(case.loaded, "block/middle/nope")


def test_call_index_out_of_range(store: Store) -> None:
    with pytest.raises(RuntimeFailure, match=r"called 3 time\(s\); call 3 does not exist"):
        build_extractor(store("shared").loaded, "shared_dense", (3,))
    with pytest.raises(RuntimeFailure, match=r"'middle' is called 2 time\(s\); call 2 does not exist"):
        build_extractor(store("nested").loaded, "block/middle/mid_dense", (0, 2, 0))


def test_call_site_of_wrong_length_or_through_a_plain_layer(store: Store) -> None:
    case = store("nested")
    with pytest.raises(RuntimeFailure, match="does not match the path"):
        build_extractor(case.loaded, "block/head", (0,))
    with pytest.raises(RuntimeFailure, match="not a nested model"):
        build_extractor(case.loaded, "final/kernel")


@pytest.mark.parametrize("kind", ["text", "zip_without_config", "missing", "empty"])
def test_file_that_is_not_a_model(keras_module, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model.keras"
    if kind == "text":
        path.write_text("definitely not a model\n")
    elif kind == "zip_without_config":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(RuntimeFailure, match=r"model\.keras"):
        load_model(path)
