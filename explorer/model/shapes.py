"""Output-shape rules for common layers.

Keras records the shape of every tensor that some layer consumes, so rules are only needed where nothing
consumes a tensor (model outputs) or nothing was recorded (Sequential models, Keras 2 files). An unknown
layer yields ``None`` rather than a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from explorer.model.graph import Shape

Rule = Callable[[dict[str, Any], list[Shape]], list[Shape] | None]
_RULES: dict[str, Rule] = {}

_IDENTITY = {
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "UnitNormalization", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Rescaling",
    "Normalization", "Masking", "ActivityRegularization", "Identity", "RandomFlip", "RandomRotation",
    "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
}


def infer_output_shapes(class_name: str, config: dict[str, Any], inputs: Sequence[Shape | None]) -> list[Shape] | None:
    """Output shapes of one call, or None when they cannot be derived from the config and input shapes."""
    known = [tuple(s) for s in inputs if s is not None]
    if len(known) != len(inputs) or not known:
        return None
    if class_name in _IDENTITY:
        return [known[0]]
    rule = _RULES.get(class_name)
    try:
        return rule(config, known) if rule else None
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None


def _rule(*names: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        for name in names:
            _RULES[name] = function
        return function
    return register


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,) * rank


def _window(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1) -> int | None:
    if size is None:
        return None
    if padding in ("same", "causal"):
        return math.ceil(size / stride)
    effective = (kernel - 1) * dilation + 1
    return (size - effective) // stride + 1


def _spatial(config: dict, shape: Shape, rank: int, kernel_key: str, channels: int | None) -> list[Shape]:
    first = config.get("data_format", "channels_last") == "channels_first"
    dims = shape[2:] if first else shape[1:-1]
    kernel = _tuple(config.get(kernel_key) or config.get("pool_size"), rank)
    strides = _tuple(config.get("strides") or kernel, rank)
    dilation = _tuple(config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid")
    out = tuple(_window(d, k, s, padding, r) for d, k, s, r in zip(dims, kernel, strides, dilation, strict=True))
    channel = shape[1] if first else shape[-1]
    channel = channel if channels is None else channels
    return [(shape[0], channel, *out) if first else (shape[0], *out, channel)]


@_rule("Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D")
def _conv(config: dict, shapes: list[Shape]) -> list[Shape]:
    return _spatial(config, shapes[0], len(shapes[0]) - 2, "kernel_size", config["filters"])


@_rule("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise(config: dict, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    channels = shape[-1] if config.get("data_format", "channels_last") == "channels_last" else shape[1]
    multiplier = config.get("depth_multiplier", 1)
    return _spatial(config, shape, len(shape) - 2, "kernel_size", None if channels is None else channels * multiplier)


@_rule("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
def _pool(config: dict, shapes: list[Shape]) -> list[Shape]:
    return _spatial(config, shapes[0], len(shapes[0]) - 2, "pool_size", None)


@_rule("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
       "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D")
def _global_pool(config: dict, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    first = config.get("data_format", "channels_last") == "channels_first"
    if config.get("keepdims"):
        ones = (1,) * (len(shape) - 2)
        return [(shape[0], shape[1], *ones) if first else (shape[0], *ones, shape[-1])]
    return [(shape[0], shape[1] if first else shape[-1])]


@_rule("Dense")
def _dense(config: dict, shapes: list[Shape]) -> list[Shape]:
    return [(*shapes[0][:-1], config["units"])]


@_rule("Embedding")
def _embedding(config: dict, shapes: list[Shape]) -> list[Shape]:
    return [(*shapes[0], config["output_dim"])]


@_rule("Flatten")
def _flatten(config: dict, shapes: list[Shape]) -> list[Shape]:
    rest = shapes[0][1:]
    size = None if any(d is None for d in rest) else math.prod(rest)
    return [(shapes[0][0], size)]


@_rule("Reshape")
def _reshape(config: dict, shapes: list[Shape]) -> list[Shape]:
    target = list(config["target_shape"])
    if -1 in target:
        rest = shapes[0][1:]
        if any(d is None for d in rest):
            target[target.index(-1)] = None
        else:
            known = math.prod(d for d in target if d != -1)
            target[target.index(-1)] = math.prod(rest) // known
    return [(shapes[0][0], *target)]


@_rule("Permute")
def _permute(config: dict, shapes: list[Shape]) -> list[Shape]:
    return [(shapes[0][0], *(shapes[0][i] for i in config["dims"]))]


@_rule("RepeatVector")
def _repeat(config: dict, shapes: list[Shape]) -> list[Shape]:
    return [(shapes[0][0], config["n"], shapes[0][-1])]


@_rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def _elementwise(config: dict, shapes: list[Shape]) -> list[Shape]:
    return [shapes[0]]


_SHAPE_CHANGING_OPS = ("reduce", "arg", "top_k", "matmul", "segment", "unsorted", "bincount", "count_nonzero")


@_rule("TFOpLambda")
def _tf_op(config: dict, shapes: list[Shape]) -> list[Shape] | None:
    """Keras 2's element-wise TensorFlow ops (``preprocess_input``'s scale and shift, activations): the shape of
    the tensor they are applied to; anything else is not guessed."""
    function = str(config.get("function", ""))
    elementwise = function.startswith(("math.", "__operators__.", "nn.")) and not any(
        part in function for part in _SHAPE_CHANGING_OPS)
    return [shapes[0]] if elementwise and len({tuple(s) for s in shapes}) == 1 else None


@_rule("Concatenate")
def _concatenate(config: dict, shapes: list[Shape]) -> list[Shape]:
    axis = config.get("axis", -1) % len(shapes[0])
    sizes = [s[axis] for s in shapes]
    merged = None if any(d is None for d in sizes) else sum(sizes)
    return [(*shapes[0][:axis], merged, *shapes[0][axis + 1:])]


@_rule("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def _pad(config: dict, shapes: list[Shape]) -> list[Shape]:
    return _resize_borders(config, shapes[0], config["padding"], 1)


@_rule("Cropping1D", "Cropping2D", "Cropping3D")
def _crop(config: dict, shapes: list[Shape]) -> list[Shape]:
    return _resize_borders(config, shapes[0], config["cropping"], -1)


def _resize_borders(config: dict, shape: Shape, amounts: Any, sign: int) -> list[Shape]:
    rank = len(shape) - 2
    if not isinstance(amounts, list | tuple):
        pairs = [(amounts, amounts)] * rank
    elif rank == 1 and not isinstance(amounts[0], list | tuple):
        pairs = [tuple(amounts)]
    else:
        pairs = [_tuple(a, 2) for a in amounts]
    first = config.get("data_format", "channels_last") == "channels_first"
    dims = shape[2:] if first else shape[1:-1]
    out = tuple(None if d is None else d + sign * (a + b) for d, (a, b) in zip(dims, pairs, strict=True))
    return [(shape[0], shape[1], *out) if first else (shape[0], *out, shape[-1])]


@_rule("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsample(config: dict, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    size = _tuple(config.get("size", 2), len(shape) - 2)
    first = config.get("data_format", "channels_last") == "channels_first"
    dims = shape[2:] if first else shape[1:-1]
    out = tuple(None if d is None else d * s for d, s in zip(dims, size, strict=True))
    return [(shape[0], shape[1], *out) if first else (shape[0], *out, shape[-1])]


@_rule("LSTM", "GRU", "SimpleRNN")
def _recurrent(config: dict, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    units = config["units"]
    output = (shape[0], shape[1], units) if config.get("return_sequences") else (shape[0], units)
    if not config.get("return_state"):
        return [output]
    states = 2 if "unit_forget_bias" in config else 1  # only LSTM carries a cell state
    return [output] + [(shape[0], units)] * states
