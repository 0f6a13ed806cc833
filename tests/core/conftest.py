"""Real Keras models, saved once per session, and what Keras itself says about them.

Each model in ``BUILDERS`` is built on first use, saved to a session temp folder and loaded back through
``explorer.core.keras_file.load_graph``. The reference data (``Reference``) is read from the live Keras
objects - layers, inbound nodes, output tensors, weights - so the tests compare the Qt-free structure view
against Keras rather than against hand-written expectations.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

Shape = tuple[int | None, ...]


# --------------------------------------------------------------------------- reference data from Keras


@dataclass
class LayerRef:
    path: str
    name: str
    class_name: str
    parent: str | None
    params: int
    trainable_params: int
    # Per call (only the calls that belong to the enclosing model's graph):
    inbound: list[list[str]] = field(default_factory=list)  # layer names of the input tensors, in order
    inbound_calls: list[list[int]] = field(default_factory=list)  # call index of the producing layer
    outputs: list[list[Shape]] = field(default_factory=list)
    is_model: bool = False


@dataclass
class PortRef:
    layer: str
    shape: Shape


@dataclass
class Reference:
    name: str
    kind: str
    layers: dict[str, LayerRef]  # path -> layer, in Keras order (parents before children)
    inputs: list[PortRef]
    outputs: list[PortRef]
    output_names: list[str] | None  # the keys of a dict of outputs
    total: int
    trainable: int
    non_trainable: int


@dataclass
class Case:
    name: str
    path: Path
    model: Any
    reference: Reference
    graph: Any


def _size(variable: Any) -> int:
    return math.prod(int(d) for d in variable.shape)


def _shape(tensor: Any) -> Shape:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _graph_layers(model: Any) -> list[Any]:
    """The layers the structure view shows for ``model``: Sequential models include their InputLayer."""
    import keras

    if isinstance(model, keras.Sequential):
        return list(model._layers)
    return list(model.layers)


def _own_node_keys(model: Any) -> set[str]:
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        return set(functional._nodes) if functional is not None else set()
    return set(model._nodes)


def _is_model(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _collect(model: Any, prefix: str, parent: str | None, out: dict[str, LayerRef]) -> None:
    from keras.src.ops.function import make_node_key

    keys = _own_node_keys(model)
    own = {}  # layer -> list of its inbound-node indices that belong to this model, in order
    for layer in _graph_layers(model):
        own[id(layer)] = [i for i in range(len(layer._inbound_nodes)) if make_node_key(layer, i) in keys]
    for layer in _graph_layers(model):
        path = f"{prefix}{layer.name}"
        ref = LayerRef(
            path=path, name=layer.name, class_name=layer.__class__.__name__, parent=parent,
            params=layer.count_params(), trainable_params=sum(_size(w) for w in layer.trainable_weights),
            is_model=_is_model(layer),
        )
        for node_index in own[id(layer)]:
            node = layer._inbound_nodes[node_index]
            names, calls = [], []
            for tensor in node.input_tensors:
                history = tensor._keras_history
                names.append(history.operation.name)
                producer_calls = own.get(id(history.operation), [])
                calls.append(producer_calls.index(history.node_index) if history.node_index in producer_calls else -1)
            ref.inbound.append(names)
            ref.inbound_calls.append(calls)
            ref.outputs.append([_shape(t) for t in node.output_tensors])
        out[path] = ref
        if ref.is_model:
            _collect(layer, f"{path}/", path, out)


def _relative(variable_path: str, layer_name: str) -> str:
    marker = f"{layer_name}/"
    return variable_path[variable_path.rindex(marker) + len(marker):] if marker in variable_path else variable_path


def keras_weights(layer: Any) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name relative to the layer, shape, trainable) of each of a layer's variables, sorted.

    Names follow the variable paths: ``kernel``, ``query/kernel`` (MultiHeadAttention), ``lstm_cell/bias``.
    """
    trainable = {id(w) for w in layer.trainable_weights}
    return sorted((_relative(w.path, layer.name), tuple(w.shape), id(w) in trainable) for w in layer.weights)


def core_weights(node: Any) -> list[tuple[str, tuple[int, ...], bool]]:
    return sorted((w.name, w.shape, w.trainable) for w in node.weights)


def reference_of(model: Any) -> Reference:
    import keras

    layers: dict[str, LayerRef] = {}
    _collect(model, "", None, layers)
    outputs_struct = getattr(model, "_outputs_struct", None)
    if isinstance(model, keras.Sequential):
        kind = "sequential"
    elif isinstance(model, keras.Model) and hasattr(model, "_nodes"):
        kind = "functional"
    else:
        kind = "subclassed"
    return Reference(
        name=model.name,
        kind=kind,
        layers=layers,
        inputs=[PortRef(t._keras_history.operation.name, _shape(t)) for t in model.inputs],
        outputs=[PortRef(t._keras_history.operation.name, _shape(t)) for t in model.outputs],
        output_names=list(outputs_struct) if isinstance(outputs_struct, dict) else None,
        total=model.count_params(),
        trainable=sum(_size(w) for w in model.trainable_weights),
        non_trainable=sum(_size(w) for w in model.non_trainable_weights),
    )


# --------------------------------------------------------------------------- the models


def build_sequential_dense():
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((16,), name="features"),
            layers.Dense(32, activation="relu", name="hidden"),
            layers.Dropout(0.5, name="drop"),
            layers.BatchNormalization(name="norm"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="seq_dense",
    )


def build_sequential_cnn():
    """Weightless layers (pooling, flatten, dropout) and the last layer need shape inference."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(16, 3, strides=2, padding="same", name="conv2"),
            layers.AveragePooling2D(pool_size=3, strides=1, name="pool2"),
            layers.Flatten(name="flat"),
            layers.Dropout(0.25, name="drop"),
            layers.Dense(10, name="logits"),
            layers.Activation("softmax", name="softmax"),
            layers.Reshape((2, 5), name="reshape"),
        ],
        name="seq_cnn",
    )


def build_sequential_built():
    """No InputLayer given: Keras adds one when the model is built from an input shape."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [layers.Dense(6, name="first"), layers.Dense(3, name="second")], name="seq_built"
    )
    model.build((None, 5))
    return model


def build_functional_multi_io():
    import keras
    from keras import layers

    image = keras.Input((32, 32, 3), name="image")
    meta = keras.Input((7,), name="meta")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(image)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    m = layers.Dense(4, name="meta_dense")(meta)
    joined = layers.Concatenate(name="joined")([x, m])
    hidden = layers.Dense(16, activation="relu", name="hidden")(joined)
    label = layers.Dense(5, activation="softmax", name="label_head")(hidden)
    score = layers.Dense(1, name="score_head")(hidden)
    return keras.Model({"image": image, "meta": meta}, {"label": label, "score": score}, name="multi_io")


def build_functional_list_outputs():
    import keras
    from keras import layers

    a = keras.Input((10,), name="in_a")
    b = keras.Input((10,), name="in_b")
    c = keras.Input((10,), name="in_c")
    summed = layers.Add(name="add")([a, b, c])
    product = layers.Multiply(name="mul")([a, c])
    out_1 = layers.Dense(3, name="out_1")(summed)
    out_2 = layers.Dense(2, name="out_2")(product)
    return keras.Model([a, b, c], [out_1, out_2, summed], name="list_outputs")


def build_shared_layers():
    import keras
    from keras import layers

    inputs = [keras.Input((12,), name=f"in_{i}") for i in range(3)]
    shared = layers.Dense(8, activation="relu", name="shared_dense")
    encoded = [shared(x) for x in inputs]
    merged = layers.Concatenate(name="merge")(encoded)
    twice = layers.Dense(8, name="twice")
    y = layers.Dense(8, name="squeeze")(merged)
    y = twice(twice(y))  # the second call consumes the first one's output
    out = layers.Dense(1, name="out")(y)
    return keras.Model(inputs, out, name="shared")


def build_nested():
    """Sequential inside Functional inside Functional; the middle model is called twice."""
    import keras
    from keras import layers

    innermost = keras.Sequential(
        [keras.Input((6,)), layers.Dense(5, name="seq_dense"), layers.BatchNormalization(name="seq_bn")],
        name="innermost",
    )
    mid_in = keras.Input((6,), name="mid_in")
    h = innermost(mid_in)
    h = layers.Dense(4, activation="relu", name="mid_dense")(h)
    middle = keras.Model(mid_in, h, name="middle")

    a = keras.Input((6,), name="left")
    b = keras.Input((6,), name="right")
    left = middle(a)
    right = middle(b)
    merged = layers.Concatenate(name="cat")([left, right])
    out = layers.Dense(2, name="head")(merged)
    block = keras.Model([a, b], out, name="block")

    x1 = keras.Input((6,), name="x1")
    x2 = keras.Input((6,), name="x2")
    y = block([x1, x2])
    y = layers.Dense(3, name="final")(y)
    return keras.Model([x1, x2], y, name="nested_top")


def build_nested_output():
    """A nested Functional model called twice whose outputs are model outputs.

    The inner model takes sequences of any length, so its two calls have different output shapes and a port
    that points at the wrong call shows up as a wrong shape.
    """
    import keras
    from keras import layers

    inner_in = keras.Input((None, 4), name="inner_in")
    inner_out = layers.Dense(3, name="inner_dense")(inner_in)
    inner = keras.Model(inner_in, inner_out, name="inner")
    a = keras.Input((5, 4), name="a")
    b = keras.Input((7, 4), name="b")
    first = inner(a)
    second = inner(b)
    joined = layers.Concatenate(axis=1, name="joined")([first, second])
    return keras.Model([a, b], [first, second, joined], name="nested_output")


def build_nested_output_deep():
    """Model outputs taken from a nested Functional that itself returns the outputs of a nested Functional."""
    import keras
    from keras import layers

    inner_in = keras.Input((None, 4), name="inner_in")
    inner = keras.Model(inner_in, layers.Dense(3, name="inner_dense")(inner_in), name="inner")
    pa = keras.Input((None, 4), name="pa")
    pb = keras.Input((None, 4), name="pb")
    pair = keras.Model([pa, pb], [inner(pa), inner(pb)], name="pair")
    x = keras.Input((5, 4), name="x")
    y = keras.Input((7, 4), name="y")
    first, second = pair([x, y])
    joined = layers.Concatenate(axis=1, name="joined")([first, second])
    return keras.Model([x, y], [first, second, joined], name="nested_output_deep")


def build_nested_sequential_outputs():
    """Nested Sequential models: one called twice with outputs of different shapes, one built by its call."""
    import keras
    from keras import layers

    flexible = keras.Sequential([keras.Input((None, 4)), layers.Dense(3, name="proj")], name="flexible")
    lazy = keras.Sequential([layers.Dense(2, name="lazy_dense"), layers.Dense(1, name="lazy_out")], name="lazy")
    a = keras.Input((5, 4), name="a")
    b = keras.Input((7, 4), name="b")
    first = flexible(a)
    second = flexible(b)
    score = lazy(layers.GlobalAveragePooling1D(name="pool")(first))
    return keras.Model([a, b], [first, second, score], name="nested_sequential_outputs")


def build_frozen():
    """A frozen nested block and a frozen layer: their weights are non-trainable."""
    import keras
    from keras import layers

    block = keras.Sequential([keras.Input((8,)), layers.Dense(8, name="fdense"), layers.Dense(4, name="fdense2")],
                             name="frozen_block")
    block.trainable = False
    inputs = keras.Input((8,), name="x")
    h = block(inputs)
    frozen = layers.Dense(4, name="frozen_dense")
    frozen.trainable = False
    h = frozen(h)
    out = layers.Dense(2, name="head")(h)
    return keras.Model(inputs, out, name="frozen")


def build_lstm_state():
    import keras
    from keras import layers

    seq = keras.Input((9, 5), name="seq")
    lstm = layers.LSTM(6, return_sequences=True, return_state=True, name="lstm")
    sequence, state_h, state_c = lstm(seq)
    gru_out = layers.GRU(4, name="gru")(sequence, initial_state=None)
    joined = layers.Concatenate(name="states")([state_h, state_c, gru_out])
    out = layers.Dense(2, name="out")(joined)
    return keras.Model(seq, [out, state_c], name="lstm_state")


def build_attention():
    import keras
    from keras import layers

    tokens = keras.Input((10,), dtype="int32", name="tokens")
    context = keras.Input((7, 16), name="context")
    x = layers.Embedding(100, 16, name="embed")(tokens)
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=8, name="self_attn")(x, x)
    x = layers.Add(name="residual")([x, attended])
    x = layers.LayerNormalization(name="ln")(x)
    cross = layers.MultiHeadAttention(num_heads=4, key_dim=4, value_dim=6, name="cross_attn")(
        query=x, value=context, key=context)
    pooled = layers.GlobalAveragePooling1D(name="pool")(cross)
    out = layers.Dense(3, name="out")(pooled)
    return keras.Model([tokens, context], out, name="attention")


_APPLICATION_BUILDERS: dict[str, Callable[[], Any]] = {}


def _application(name: str) -> Callable[[], Any]:
    """One builder per application, so that the zoo builds each application model once."""
    if name not in _APPLICATION_BUILDERS:
        def build():
            import keras

            return getattr(keras.applications, name)(weights=None)

        build.__name__ = f"build_{name}"
        _APPLICATION_BUILDERS[name] = build
    return _APPLICATION_BUILDERS[name]


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
    "ResNet50": (_application("ResNet50"), ".keras"),
    "MobileNetV2": (_application("MobileNetV2"), ".keras"),
    "EfficientNetB0": (_application("EfficientNetB0"), ".keras"),
    "DenseNet121": (_application("DenseNet121"), ".keras"),
    "MobileNetV2_h5": (_application("MobileNetV2"), ".h5"),
}
SMALL_MODELS = [name for name in BUILDERS if name[0].islower()]
APPLICATIONS = [name for name in BUILDERS if name[0].isupper()]
ALL_MODELS = list(BUILDERS)


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


@pytest.fixture(scope="session")
def keras_module():
    """Keras, imported once (TensorFlow takes a few seconds) and seeded."""
    import keras

    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture(scope="session")
def zoo(keras_module, tmp_path_factory: pytest.TempPathFactory) -> ModelZoo:
    return ModelZoo(tmp_path_factory.mktemp("models"))


# Known limitation: a nested model call whose output no layer consumes records no shape, and the structure
# view falls back to the nested model's own (less specific) output shapes instead of re-inferring them
# through the inner graph for that call's input shapes.
_UNRECORDED_NESTED_CALL_SHAPES = {
    "test_output_shapes_per_call[nested_sequential_outputs]",
    "test_output_ports[nested_sequential_outputs]",
    "test_summary_model_matches_keras[nested_sequential_outputs]",
    "test_summary_layers_match_keras[nested_sequential_outputs]",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.name in _UNRECORDED_NESTED_CALL_SHAPES:
            item.add_marker(pytest.mark.xfail(strict=True, reason="shapes of unconsumed nested-model calls"))
