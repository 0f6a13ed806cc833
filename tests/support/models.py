"""The Keras models the tests build offline: each builder returns a fresh, unsaved model.

Every builder imports Keras inside, so importing this module costs nothing. Each model is there for a
structure the explorer must get right (nesting, shared layers, dict/list inputs and outputs, layers with
several outputs); the tests that use them compare against what Keras says, not against hand-written values,
except where a test names a layer or a shape on purpose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- Sequential


def build_sequential_dense() -> Any:
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


def build_sequential_cnn() -> Any:
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


def build_sequential_built() -> Any:
    """No InputLayer given: Keras adds one when the model is built from an input shape, and ``model.output``
    stays undefined (the model was never called)."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [layers.Dense(6, activation="relu", name="first"), layers.BatchNormalization(name="bn"),
         layers.Dense(3, name="second")],
        name="seq_built",
    )
    model.build((None, 8))
    return model


# --------------------------------------------------------------------------- Functional


def build_functional_dense() -> Any:
    """The smallest Functional model with a BatchNormalization: x -> hidden -> norm -> out."""
    import keras
    from keras import layers

    x = keras.Input((8,), name="x")
    hidden = layers.Dense(16, activation="tanh", name="hidden")(x)
    norm = layers.BatchNormalization(name="norm")(hidden)
    return keras.Model(x, layers.Dense(4, name="out")(norm), name="small")


def build_functional_cnn() -> Any:
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


def build_slow_convnet() -> Any:
    """Slow on purpose: about 170 GFLOP (a second or more of convolutions), so a worker can be killed while
    it computes."""
    import keras
    from keras import layers

    image = keras.Input((384, 384, 3), name="image")
    y = layers.Conv2D(96, 3, padding="same", activation="relu", name="conv1")(image)
    for index in range(2, 9):
        y = layers.Conv2D(96, 3, padding="same", activation="relu", name=f"conv{index}")(y)
    return keras.Model(image, layers.GlobalAveragePooling2D(name="pool")(y), name="slow")


def build_functional_multi_io() -> Any:
    """Dict inputs and dict outputs."""
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


def build_functional_list_outputs() -> Any:
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
    return keras.Model([a, b, c], [out_1, out_2, summed], name="list_outputs")


def build_shared_layers() -> Any:
    """A layer applied to three inputs, and a layer applied to its own output."""
    import keras
    from keras import layers

    inputs = [keras.Input((12,), name=f"in_{i}") for i in range(3)]
    shared = layers.Dense(8, activation="relu", name="shared_dense")
    encoded = [shared(x) for x in inputs]
    merged = layers.Concatenate(name="merge")(encoded)
    twice = layers.Dense(8, activation="tanh", name="twice")
    y = layers.Dense(8, name="squeeze")(merged)
    y = twice(twice(y))  # the second call consumes the first one's output
    out = layers.Dense(1, name="out")(y)
    return keras.Model(inputs, out, name="shared")


def build_lstm_state() -> Any:
    import keras
    from keras import layers

    seq = keras.Input((9, 5), name="seq")
    lstm = layers.LSTM(6, return_sequences=True, return_state=True, name="lstm")
    sequence, state_h, state_c = lstm(seq)
    gru_out = layers.GRU(4, name="gru")(sequence, initial_state=None)
    joined = layers.Concatenate(name="states")([state_h, state_c, gru_out])
    out = layers.Dense(2, name="out")(joined)
    return keras.Model(seq, [out, state_c], name="lstm_state")


def build_multi_output_layers() -> Any:
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


def build_attention() -> Any:
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


# --------------------------------------------------------------------------- nested models


def build_nested() -> Any:
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


def build_nested_output() -> Any:
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


def build_nested_output_deep() -> Any:
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


def build_nested_shared() -> Any:
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


def build_nested_sequential_outputs() -> Any:
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


def build_frozen() -> Any:
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


# --------------------------------------------------------------------------- keras.applications


@functools.cache
def application(name: str) -> Callable[[], Any]:
    """The builder of a ``keras.applications`` model without weights; one builder per name, so that a cache
    keyed by builder builds each application once."""

    def build() -> Any:
        import keras

        return getattr(keras.applications, name)(weights=None)

    build.__name__ = f"build_{name}"
    return build


def build_mobilenet_v2_small() -> Any:
    """MobileNetV2 at 96x96 and alpha 0.35: the real architecture, a fraction of the work."""
    import keras

    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)


# --------------------------------------------------------------------------- preparing a built model


def randomise_statistics(model: Any, rng: np.random.Generator) -> None:
    """Non-trivial BatchNormalization statistics and biases, so that inference mode and every term matter."""
    from keras import layers

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.5, size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.3, size).astype("float32"))
        elif isinstance(layer, layers.Dense | layers.Conv2D) and layer.use_bias:
            layer.bias.assign(rng.normal(0.0, 0.1, layer.bias.shape).astype("float32"))


def build_ui_model() -> Any:
    """Two inputs, two outputs, a shared Dense called twice, and Functional > Sequential nesting."""
    import keras
    from keras import layers

    inner = keras.Sequential(
        [keras.Input((8,), name="inner_in"), layers.Dense(8, name="inner_dense"),
         layers.BatchNormalization(name="inner_bn")],
        name="inner_seq",
    )
    block_in = keras.Input((8,), name="block_in")
    hidden = inner(block_in)
    hidden = layers.Dense(6, activation="relu", name="block_dense")(hidden)
    block = keras.Model(block_in, hidden, name="block")

    input_a = keras.Input((8,), name="input_a")
    input_b = keras.Input((8,), name="input_b")
    shared = layers.Dense(8, activation="relu", name="shared_dense")
    encoded_a, encoded_b = shared(input_a), shared(input_b)
    merged = layers.Concatenate(name="merge")([block(encoded_a), encoded_b])
    class_out = layers.Dense(3, activation="softmax", name="class_out")(merged)
    score_out = layers.Dense(1, name="score_out")(merged)
    return keras.Model([input_a, input_b], [class_out, score_out], name="ui_model")


def build_small_sequential() -> Any:
    """A second, different model: a plain chain."""
    import keras
    from keras import layers

    return keras.Sequential(
        [keras.Input((4,), name="features"), layers.Dense(3, name="first"), layers.Dense(2, name="second")],
        name="small_seq",
    )

