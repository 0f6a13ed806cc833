"""Layer categories (for colours and legends) and conventional weight names per layer class."""

from __future__ import annotations

_EXACT = {
    "InputLayer": "input",
    "Dense": "dense", "EinsumDense": "dense", "Embedding": "dense",
    "Add": "merge", "Subtract": "merge", "Multiply": "merge", "Average": "merge", "Maximum": "merge",
    "Minimum": "merge", "Concatenate": "merge", "Dot": "merge",
    "Flatten": "reshape", "Reshape": "reshape", "Permute": "reshape", "RepeatVector": "reshape",
    "Cropping1D": "reshape", "Cropping2D": "reshape", "Cropping3D": "reshape",
    "ZeroPadding1D": "reshape", "ZeroPadding2D": "reshape", "ZeroPadding3D": "reshape",
    "UpSampling1D": "reshape", "UpSampling2D": "reshape", "UpSampling3D": "reshape",
    "Activation": "activation", "ReLU": "activation", "LeakyReLU": "activation", "PReLU": "activation",
    "ELU": "activation", "Softmax": "activation", "ThresholdedReLU": "activation",
    "Rescaling": "preprocessing", "Normalization": "preprocessing", "Resizing": "preprocessing",
    "CenterCrop": "preprocessing",
    "Sequential": "nested", "Functional": "nested", "Model": "nested",
}
_SUFFIXES = (
    ("Conv1D", "convolution"), ("Conv2D", "convolution"), ("Conv3D", "convolution"),
    ("Conv1DTranspose", "convolution"), ("Conv2DTranspose", "convolution"), ("Conv3DTranspose", "convolution"),
    ("Pooling1D", "pooling"), ("Pooling2D", "pooling"), ("Pooling3D", "pooling"),
    ("Normalization", "normalization"), ("Attention", "attention"),
    ("LSTM", "recurrent"), ("GRU", "recurrent"), ("RNN", "recurrent"), ("Bidirectional", "recurrent"),
    ("Dropout", "regularization"), ("Noise", "regularization"),
)


def category_of(class_name: str) -> str:
    if class_name in _EXACT:
        return _EXACT[class_name]
    for suffix, category in _SUFFIXES:
        if class_name.endswith(suffix) or class_name.startswith(suffix):
            return category
    return "other"


_WEIGHT_NAMES = {
    "Dense": ("kernel", "bias"),
    "EinsumDense": ("kernel", "bias"),
    "Embedding": ("embeddings",),
    "DepthwiseConv1D": ("kernel", "bias"),
    "DepthwiseConv2D": ("kernel", "bias"),
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "PReLU": ("alpha",),
    "Normalization": ("mean", "variance", "count"),
    "lstm_cell": ("kernel", "recurrent_kernel", "bias"),
    "gru_cell": ("kernel", "recurrent_kernel", "bias"),
    "simple_rnn_cell": ("kernel", "recurrent_kernel", "bias"),
}
_NON_TRAINABLE = {"moving_mean", "moving_variance", "mean", "variance", "count"}


def classes_with_known_weights() -> tuple[str, ...]:
    return (*_WEIGHT_NAMES, "BatchNormalization", "LayerNormalization", "GroupNormalization")


def weight_names(class_name: str, config: dict, count: int) -> tuple[str, ...]:
    """Names of a layer's own variables in storage order (Keras 3 stores them as 0, 1, ...)."""
    names = expected_weight_names(class_name, config)
    return names if len(names) == count else tuple(f"var_{i}" for i in range(count))


def expected_weight_names(class_name: str, config: dict) -> tuple[str, ...]:
    """The variables a layer of this class and config creates, in Keras' order (empty when not known)."""
    if class_name in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        names = (("gamma",) if config.get("scale", True) else ()) + (("beta",) if config.get("center", True) else ())
        if class_name == "BatchNormalization":
            names += ("moving_mean", "moving_variance")
    elif class_name in _WEIGHT_NAMES:
        names = _WEIGHT_NAMES[class_name]
    elif "Conv" in class_name:
        names = ("kernel", "bias")
    else:
        names = ()
    no_bias = config.get("use_bias") is False or ("bias_axes" in config and not config["bias_axes"])
    if names[-1:] == ("bias",) and no_bias:
        names = names[:-1]
    return names


def sublayer_weight_name(sublayer: str, index: int) -> str:
    """Name of variable ``index`` of an internal sublayer (an RNN cell, an attention projection)."""
    names = _WEIGHT_NAMES.get(sublayer, ("kernel", "bias"))
    return names[index] if index < len(names) else f"var_{index}"


def is_trainable_weight(weight_name: str, class_name: str) -> bool:
    """Statistics that Keras keeps as non-trainable variables (batch-norm moving averages, normalisers)."""
    leaf = weight_name.rsplit("/", 1)[-1].split(":")[0]
    if class_name in ("BatchNormalization", "Normalization"):
        return leaf not in _NON_TRAINABLE
    return not leaf.startswith("moving_")
