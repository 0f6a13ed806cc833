"""Shape inference (``explorer.model.shapes``) on real one-layer Sequential models.

In a Sequential model the last layer"s output shape is recorded nowhere in the file, so the explorer has to
derive it from the layer config. For classes with a rule the result must equal Keras"s; for the others
the explorer must say "unknown" (None) rather than guess.
"""

from __future__ import annotations

import pytest

from explorer.model.files import load_graph
from explorer.model.shapes import _IDENTITY, _RULES
from tests.support.reference import keras_weights, node_weights, reference_of

# name -> (input shape without batch, layer factory)
CASES = {
    "conv1d": ((20, 3), lambda layers: layers.Conv1D(4, 3)),
    "conv1d_same_strided": ((21, 3), lambda layers: layers.Conv1D(4, 5, strides=2, padding="same")),
    "conv1d_dilated": ((20, 3), lambda layers: layers.Conv1D(4, 3, dilation_rate=2)),
    "conv1d_causal": ((20, 3), lambda layers: layers.Conv1D(4, 3, padding="causal")),
    "conv1d_causal_strided": ((21, 3), lambda layers: layers.Conv1D(4, 3, strides=2, padding="causal")),
    "conv2d_rect": ((17, 19, 3), lambda layers: layers.Conv2D(6, (3, 5), strides=(2, 1))),
    "conv2d_same_stride3": ((17, 19, 3), lambda layers: layers.Conv2D(6, 3, strides=3, padding="same")),
    "conv2d_channels_first": ((3, 16, 12), lambda layers: layers.Conv2D(5, 3, data_format="channels_first")),
    "conv2d_unknown_size": ((None, None, 3), lambda layers: layers.Conv2D(5, 3, strides=2)),
    "conv3d": ((8, 9, 10, 1), lambda layers: layers.Conv3D(2, 3, strides=(1, 2, 3))),
    "separable_conv1d": ((20, 4), lambda layers: layers.SeparableConv1D(6, 3, depth_multiplier=2)),
    "separable_conv2d": ((12, 12, 4), lambda layers: layers.SeparableConv2D(8, 3, strides=2, padding="same")),
    "depthwise_conv1d": ((20, 4), lambda layers: layers.DepthwiseConv1D(3, depth_multiplier=2)),
    "depthwise_conv2d": ((10, 10, 4), lambda layers: layers.DepthwiseConv2D(3, depth_multiplier=3, strides=2)),
    "conv2d_transpose": ((8, 8, 3), lambda layers: layers.Conv2DTranspose(4, 3, strides=2)),
    "max_pool1d": ((20, 3), lambda layers: layers.MaxPooling1D(pool_size=3, strides=2)),
    "max_pool2d_default": ((9, 9, 2), lambda layers: layers.MaxPooling2D()),
    "max_pool2d_same": ((9, 9, 2), lambda layers: layers.MaxPooling2D(pool_size=3, strides=2, padding="same")),
    "avg_pool2d_rect": ((11, 7, 2), lambda layers: layers.AveragePooling2D(pool_size=(3, 2), strides=(1, 2))),
    "avg_pool2d_channels_first": (
        (2, 11, 7), lambda layers: layers.AveragePooling2D(pool_size=2, data_format="channels_first")),
    "max_pool3d": ((8, 8, 8, 2), lambda layers: layers.MaxPooling3D(pool_size=2)),
    "global_avg_pool2d": ((5, 6, 7), lambda layers: layers.GlobalAveragePooling2D()),
    "global_avg_pool2d_keepdims": ((5, 6, 7), lambda layers: layers.GlobalAveragePooling2D(keepdims=True)),
    "global_max_pool1d": ((5, 7), lambda layers: layers.GlobalMaxPooling1D()),
    "global_max_pool2d_channels_first": (
        (7, 5, 6), lambda layers: layers.GlobalMaxPooling2D(data_format="channels_first")),
    "global_avg_pool3d_keepdims": ((4, 5, 6, 7), lambda layers: layers.GlobalAveragePooling3D(keepdims=True)),
    "dense_3d": ((4, 6), lambda layers: layers.Dense(5)),
    "embedding": ((12,), lambda layers: layers.Embedding(50, 8)),
    "flatten": ((3, 4, 5), lambda layers: layers.Flatten()),
    "flatten_unknown": ((None, 4), lambda layers: layers.Flatten()),
    "reshape_minus_one": ((6, 4), lambda layers: layers.Reshape((-1, 2))),
    "reshape_unknown": ((None, 4), lambda layers: layers.Reshape((4, -1))),
    "reshape_fixed": ((6, 4), lambda layers: layers.Reshape((3, 8))),
    "permute": ((3, 5, 7), lambda layers: layers.Permute((3, 1, 2))),
    "repeat_vector": ((6,), lambda layers: layers.RepeatVector(4)),
    "zero_pad1d": ((10, 3), lambda layers: layers.ZeroPadding1D(2)),
    "zero_pad1d_pair": ((10, 3), lambda layers: layers.ZeroPadding1D((1, 3))),
    "zero_pad2d_int": ((8, 9, 3), lambda layers: layers.ZeroPadding2D(1)),
    "zero_pad2d_sym": ((8, 9, 3), lambda layers: layers.ZeroPadding2D((1, 2))),
    "zero_pad2d_full": ((8, 9, 3), lambda layers: layers.ZeroPadding2D(((1, 2), (3, 4)))),
    "zero_pad3d": ((4, 5, 6, 2), lambda layers: layers.ZeroPadding3D(1)),
    "crop1d": ((10, 3), lambda layers: layers.Cropping1D((1, 2))),
    "crop2d_int": ((8, 9, 3), lambda layers: layers.Cropping2D(2)),
    "crop2d_full": ((8, 9, 3), lambda layers: layers.Cropping2D(((1, 1), (2, 0)))),
    "crop3d": ((6, 7, 8, 2), lambda layers: layers.Cropping3D(1)),
    "upsample1d": ((5, 3), lambda layers: layers.UpSampling1D(3)),
    "upsample2d": ((5, 6, 3), lambda layers: layers.UpSampling2D((2, 3))),
    "upsample3d": ((2, 3, 4, 1), lambda layers: layers.UpSampling3D(2)),
    "lstm": ((9, 4), lambda layers: layers.LSTM(7)),
    "lstm_sequences": ((9, 4), lambda layers: layers.LSTM(7, return_sequences=True)),
    "gru": ((9, 4), lambda layers: layers.GRU(5)),
    "simple_rnn_sequences": ((None, 4), lambda layers: layers.SimpleRNN(3, return_sequences=True)),
    "bidirectional": ((9, 4), lambda layers: layers.Bidirectional(layers.LSTM(3))),
    "time_distributed": ((9, 4), lambda layers: layers.TimeDistributed(layers.Dense(3))),
    "batch_norm": ((4, 5), lambda layers: layers.BatchNormalization()),
    "layer_norm": ((4, 5), lambda layers: layers.LayerNormalization()),
    "dropout": ((4, 5), lambda layers: layers.Dropout(0.3)),
    "spatial_dropout2d": ((4, 5, 3), lambda layers: layers.SpatialDropout2D(0.3)),
    "activation": ((4, 5), lambda layers: layers.Activation("tanh")),
    "softmax": ((4, 5), lambda layers: layers.Softmax()),
    "leaky_relu": ((4, 5), lambda layers: layers.LeakyReLU()),
    "prelu": ((4, 5), lambda layers: layers.PReLU()),
    "rescaling": ((4, 5), lambda layers: layers.Rescaling(1 / 255)),
    "normalization": ((4, 5), lambda layers: layers.Normalization(mean=0.0, variance=1.0)),
    "resizing": ((16, 16, 3), lambda layers: layers.Resizing(8, 10)),
    "center_crop": ((16, 16, 3), lambda layers: layers.CenterCrop(8, 10)),
    "masking": ((4, 5), lambda layers: layers.Masking()),
    "unit_normalization": ((4, 5), lambda layers: layers.UnitNormalization()),
    "gaussian_noise": ((4, 5), lambda layers: layers.GaussianNoise(0.1)),
    "random_flip": ((8, 8, 3), lambda layers: layers.RandomFlip()),
}
INT_INPUTS = {"embedding"}


def _keras_model(keras_module, case: str):
    shape, factory = CASES[case]
    dtype = "int32" if case in INT_INPUTS else "float32"
    layer = factory(keras_module.layers)
    return keras_module.Sequential([keras_module.Input(shape, dtype=dtype), layer], name=f"seq_{case}")


@pytest.mark.parametrize("case", CASES)
def test_last_layer_output_shape(tmp_path, keras_module, case):
    model = _keras_model(keras_module, case)
    path = tmp_path / f"{case}.keras"
    model.save(path)
    graph = load_graph(path)
    reference = reference_of(model)
    last = list(reference.layers.values())[-1]
    node = graph.node(last.path)
    expected = last.outputs[0][0]
    got = node.output_shapes[0][0]
    has_rule = last.class_name in _RULES or last.class_name in _IDENTITY
    if has_rule:
        assert got == expected, f"{last.class_name}: explorer {got}, keras {expected}"
    else:
        assert got in (None, expected), f"{last.class_name} has no rule, yet the explorer says {got}, keras {expected}"
    # The model"s output port carries the same shape.
    assert graph.outputs[0].shape == got
    assert node.input_shapes[0] == (reference.inputs[0].shape,)


@pytest.mark.parametrize("case", CASES)
def test_weights_named_like_keras(tmp_path, keras_module, case):
    """The layer's variables, as read from the weights file, carry Keras's names, shapes and trainability."""
    model = _keras_model(keras_module, case)
    path = tmp_path / f"{case}.keras"
    model.save(path)
    layer = model.layers[-1]
    node = load_graph(path).node(layer.name)
    assert node_weights(node) == keras_weights(layer)
    assert sum(w.size for w in node.weights) == layer.count_params()
