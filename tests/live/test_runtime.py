"""Values computed by ``explorer.runtime.extraction`` against values computed directly with Keras.

Every model is built once per session, its BatchNormalization statistics are randomised (so that inference
mode matters), it is saved to a ``.keras`` file and loaded back with ``load_model``. The explorer
side cuts an extractor out of the *loaded* model; the reference side runs the *original* in-memory model:

* top-level layers of Functional models: ``keras.Model(model.input, layer._inbound_nodes[k].output_tensors)``;
* everything (nested models, shared layers, every call site): an eager interpreter written here that walks
  each Functional graph node by node, calls the leaf layers on real arrays and records every layer's outputs
  under ``(path, call_site)`` - a nested model is entered with the values its call receives;
* Sequential models: the layers applied one after the other.

The interpreter is itself checked against Keras (its final outputs against ``model(x)``, its top-level
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

ATOL = 1e-5
Site = tuple[int, ...]
Key = tuple[str, Site]


# --------------------------------------------------------------------------- models


def build_sequential_input():
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((8,), name="features"),
            layers.Dense(12, activation="tanh", name="hidden"),
            layers.BatchNormalization(name="norm"),
            layers.Dropout(0.5, name="drop"),
            layers.Dense(4, activation="softmax", name="probs"),
        ],
        name="seq_input",
    )


def build_sequential_built():
    """No Input layer: built with ``model.build``, so ``model.output`` is undefined (never called)."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [layers.Dense(6, activation="relu", name="first"), layers.BatchNormalization(name="bn"),
         layers.Dense(3, name="second")],
        name="seq_built",
    )
    model.build((None, 8))
    return model


def build_functional_cnn():
    import keras
    from keras import layers

    image = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(6, 3, activation="relu", name="conv1")(image)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    y = layers.Conv2D(6, 1, padding="same", name="branch")(x)
    x = layers.Add(name="add")([x, y])
    x = layers.Flatten(name="flat")(x)
    out = layers.Dense(5, activation="softmax", name="probs")(x)
    return keras.Model(image, out, name="functional_cnn")


def build_multi_io_dict():
    """Dict inputs and dict outputs."""
    import keras
    from keras import layers

    image = keras.Input((10, 10, 3), name="image")
    meta = keras.Input((7,), name="meta")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(image)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    m = layers.Dense(4, name="meta_dense")(meta)
    joined = layers.Concatenate(name="joined")([x, m])
    hidden = layers.Dense(16, activation="relu", name="hidden")(joined)
    label = layers.Dense(5, activation="softmax", name="label_head")(hidden)
    score = layers.Dense(1, name="score_head")(hidden)
    return keras.Model({"image": image, "meta": meta}, {"label": label, "score": score}, name="multi_io_dict")


def build_multi_io_list():
    """List inputs; list outputs, one of which is an intermediate tensor."""
    import keras
    from keras import layers

    a = keras.Input((10,), name="in_a")
    b = keras.Input((10,), name="in_b")
    c = keras.Input((10,), name="in_c")
    summed = layers.Add(name="add")([a, b, c])
    product = layers.Multiply(name="mul")([a, c])
    out_1 = layers.Dense(3, name="out_1")(summed)
    out_2 = layers.Dense(2, name="out_2")(product)
    return keras.Model([a, b, c], [out_1, out_2, summed], name="multi_io_list")


def build_shared():
    """A layer applied to three inputs, and a layer applied to its own output."""
    import keras
    from keras import layers

    inputs = [keras.Input((12,), name=f"in_{i}") for i in range(3)]
    shared = layers.Dense(8, activation="relu", name="shared_dense")
    encoded = [shared(x) for x in inputs]
    merged = layers.Concatenate(name="merge")(encoded)
    twice = layers.Dense(8, activation="tanh", name="twice")
    y = layers.Dense(8, name="squeeze")(merged)
    y = twice(twice(y))
    out = layers.Dense(1, name="out")(y)
    return keras.Model(inputs, out, name="shared")


def build_nested():
    """Sequential inside Functional inside Functional; the middle model is called twice."""
    import keras
    from keras import layers

    innermost = keras.Sequential(
        [keras.Input((6,), name="inner_in"), layers.Dense(5, activation="tanh", name="seq_dense"),
         layers.BatchNormalization(name="seq_bn")],
        name="innermost",
    )
    mid_in = keras.Input((6,), name="mid_in")
    h = innermost(mid_in)
    h = layers.Dense(4, activation="relu", name="mid_dense")(h)
    middle = keras.Model(mid_in, h, name="middle")

    a = keras.Input((6,), name="left")
    b = keras.Input((6,), name="right")
    merged = layers.Concatenate(name="cat")([middle(a), middle(b)])
    out = layers.Dense(2, name="head")(merged)
    block = keras.Model([a, b], out, name="block")

    x1 = keras.Input((6,), name="x1")
    x2 = keras.Input((6,), name="x2")
    y = layers.Dense(6, name="pre")(x2)
    y = block([x1, y])
    y = layers.Dense(3, name="final")(y)
    return keras.Model([x1, x2], y, name="nested")


def build_nested_shared():
    """A nested model called twice at the top level, with a shared layer inside it and different shapes per call.

    ``pair`` calls ``inner`` twice; ``inner`` applies ``proj`` twice; the top level calls ``pair`` twice on
    sequences of different lengths, so every layer inside runs at several call sites.
    """
    import keras
    from keras import layers

    inner_in = keras.Input((None, 4), name="inner_in")
    proj = layers.Dense(4, activation="tanh", name="proj")
    inner = keras.Model(inner_in, layers.Dense(3, name="inner_out")(proj(proj(inner_in))), name="inner")
    pa = keras.Input((None, 4), name="pa")
    pb = keras.Input((None, 4), name="pb")
    pair = keras.Model([pa, pb], [inner(pa), inner(pb)], name="pair")
    x = keras.Input((5, 4), name="x")
    y = keras.Input((7, 4), name="y")
    x_pre = layers.Dense(4, name="pre")(x)
    first, second = pair([x_pre, y])
    third, fourth = pair([y, x_pre])
    joined = layers.Concatenate(axis=1, name="joined")([first, second, third, fourth])
    return keras.Model([x, y], [joined, second], name="nested_shared")


def build_multi_output_layers():
    """Layers with several outputs: LSTM with return_state, attention with its scores."""
    import keras
    from keras import layers

    seq = keras.Input((9, 5), name="seq")
    sequence, state_h, state_c = layers.LSTM(6, return_sequences=True, return_state=True, name="lstm")(seq)
    attended, scores = layers.MultiHeadAttention(num_heads=2, key_dim=3, name="attn")(
        sequence, sequence, return_attention_scores=True)
    pooled = layers.GlobalAveragePooling1D(name="pool")(attended)
    flat_scores = layers.Flatten(name="flat_scores")(scores)
    joined = layers.Concatenate(name="states")([state_h, state_c, pooled, flat_scores])
    out = layers.Dense(2, name="out")(joined)
    return keras.Model(seq, [out, state_c], name="multi_output_layers")


def build_resnet50():
    import keras

    return keras.applications.ResNet50(weights=None)


def build_mobilenet_v2():
    import keras

    return keras.applications.MobileNetV2(weights=None)


BUILDERS: dict[str, Callable[[], Any]] = {
    "sequential_input": build_sequential_input,
    "sequential_built": build_sequential_built,
    "functional_cnn": build_functional_cnn,
    "multi_io_dict": build_multi_io_dict,
    "multi_io_list": build_multi_io_list,
    "shared": build_shared,
    "nested": build_nested,
    "nested_shared": build_nested_shared,
    "multi_output_layers": build_multi_output_layers,
    "ResNet50": build_resnet50,
    "MobileNetV2": build_mobilenet_v2,
}
SMALL = [name for name in BUILDERS if name[0].islower()]
STRUCTURED = ["shared", "nested", "nested_shared", "multi_output_layers", "multi_io_dict", "sequential_built"]
APPLICATION_LAYERS = {
    "ResNet50": ["conv1_conv", "pool1_pool", "conv2_block1_add", "conv3_block2_out", "conv4_block3_2_bn",
                 "conv5_block3_out", "avg_pool", "predictions"],
    "MobileNetV2": ["Conv1", "bn_Conv1", "expanded_conv_project", "block_3_expand_relu", "block_8_add",
                    "block_13_depthwise", "out_relu", "predictions"],
}


# --------------------------------------------------------------------------- the reference interpreter


def _all_layers(model: Any) -> list[Any]:
    """Every layer, those of nested models included."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def _randomise_statistics(model: Any, rng: np.random.Generator) -> None:
    """Non-trivial BatchNormalization statistics and biases, so that inference mode and every term matter."""
    from keras import layers

    for layer in _all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.5, size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.3, size).astype("float32"))
        elif isinstance(layer, layers.Dense | layers.Conv2D) and layer.use_bias:
            layer.bias.assign(rng.normal(0.0, 0.1, layer.bias.shape).astype("float32"))


def _own_calls(layer: Any, graph_nodes: set[int]) -> list[Any]:
    """The calls (nodes) of ``layer`` that belong to a graph, in the order Keras created them."""
    return [node for node in layer._inbound_nodes if id(node) in graph_nodes]


def _substitute(structure: Any, values: dict[int, Any]) -> Any:
    import keras

    def fill(item: Any) -> Any:
        return values[id(item)] if isinstance(item, keras.KerasTensor) else item

    return keras.tree.map_structure(fill, structure)


def _run_model(model: Any, flat_inputs: list[Any], prefix: str, site: Site, record: dict[Key, list]) -> list[Any]:
    """Run ``model`` eagerly on real values, recording every layer's outputs; returns the flat outputs."""
    import keras

    if isinstance(model, keras.Sequential):
        (value,) = flat_inputs
        for layer in model._layers:
            if not isinstance(layer, keras.layers.InputLayer):
                value = (_run_model(layer, [value], f"{prefix}{layer.name}/", (*site, 0), record)[0]
                         if isinstance(layer, keras.Model) else layer(value))
            record[(prefix + layer.name, (*site, 0))] = [np.asarray(value)]
        return [value]

    graph_nodes = {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}
    values = {id(tensor): value for tensor, value in zip(model.inputs, flat_inputs, strict=True)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.operation
            call = next(i for i, own in enumerate(_own_calls(layer, graph_nodes)) if own is node)
            path, call_site = prefix + layer.name, (*site, call)
            if node.is_input:
                results = [values[id(node.outputs[0])]]
            else:
                args = _substitute(node.arguments.args, values)
                kwargs = _substitute(node.arguments.kwargs, values)
                if isinstance(layer, keras.Model):
                    results = _run_model(layer, keras.tree.flatten(args), f"{path}/", call_site, record)
                else:
                    results = keras.tree.flatten(layer(*args, **kwargs))
                assert len(results) == len(node.outputs)
                for tensor, value in zip(node.outputs, results, strict=True):
                    values[id(tensor)] = value
            record[(path, call_site)] = [np.asarray(value) for value in results]
    return [values[id(tensor)] for tensor in model.outputs]


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
        outputs = _run_model(self.original, flat, "", (), record)
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
            _randomise_statistics(model, rng)
            path = self.folder / f"{name}.keras"
            model.save(path)
            inputs = {}
            for tensor in model.inputs:
                inputs[tensor._keras_history.operation.name] = _example(tuple(tensor.shape[1:]), str(tensor.dtype),
                                                                        rng)
            self.cases[name] = Case(name, path, model, load_model(path), inputs)
        return self.cases[name]


@pytest.fixture(scope="session")
def keras_module():
    import keras

    keras.utils.set_random_seed(1)
    return keras


@pytest.fixture(scope="session")
def store(keras_module, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("live_models"))


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
    node = _own_calls(layer, graph_nodes)[call]
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
