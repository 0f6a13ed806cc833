"""Why the model chose a class: Grad-CAM and Grad-CAM++ on a layer, gradient saliency, SmoothGrad and
Integrated Gradients to the input, for any layer (inside nested models, at any call site).

The gradients run through the model's flat graph (explorer.runtime.extraction.flat_graph): every nested model
inlined, the original layers and weights, so a layer deep inside a nested base model is reachable, which
``Model(model.input, layer.output)`` is not. The class score is the logit when the model ends in a softmax
(the keras-io recipe removes the softmax: probabilities saturate and their gradients vanish), else the output.

Keras (TensorFlow backend) is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.extraction import FlatGraph, flat_graph

GRADCAM, GRADCAM_PP, SALIENCY, SMOOTHGRAD, INTEGRATED = "gradcam", "gradcam++", "saliency", "smoothgrad", "ig"
METHODS = (GRADCAM, GRADCAM_PP, SALIENCY, SMOOTHGRAD, INTEGRATED)
LAYER_METHODS = (GRADCAM, GRADCAM_PP)  # the others attribute to the input
IG_CHUNK = 16  # path points per batch: a few batched passes instead of one per step


@dataclass(frozen=True)
class Attribution:
    method: str
    class_index: int
    score: float  # the class score (logit, or output) on the input
    map: np.ndarray  # (H, W): the layer's resolution for Grad-CAM, the input's for the gradient methods
    layer: str | None = None
    baseline_score: float | None = None  # Integrated Gradients: the score of the baseline
    scores: tuple[float, ...] = ()  # every class's score on the input


@dataclass(frozen=True)
class Settings:
    steps: int = 64  # Integrated Gradients: points on the path from the baseline
    samples: int = 25  # SmoothGrad: noisy copies averaged
    noise: float = 0.15  # SmoothGrad: noise deviation as a fraction of the input's range
    seed: int = 0


class Scorer:
    """A model cut for attribution: the chosen layer's output (if any) and the class-score source."""

    def __init__(self, model: Any, layer: str | None = None, call_site: tuple[int, ...] | None = None) -> None:
        import keras

        flat = flat_graph(model)
        if len(flat.inputs) != 1:
            raise RuntimeFailure("attribution needs a model with one input")
        self.head, source = _score_source(model, flat)
        self.layer = layer
        self.to_layer = self.from_layer = None
        outputs = [source]
        if layer is not None:
            (tensor, *_rest) = flat.of(layer, call_site or (0,) * len(layer.split("/")))
            if len(tensor.shape) != 4:
                raise RuntimeFailure(f"Grad-CAM needs a layer with a spatial output (H, W, channels); {layer} "
                                     f"gives {tuple(tensor.shape)[1:]}")
            outputs.insert(0, tensor)
            # Two halves when the score depends on the layer alone: the gradient tape then records only the
            # part after the layer (recording the whole network doubles a ResNet50's forward time).
            self.to_layer = keras.Model(flat.inputs[0], tensor)
            try:
                self.from_layer = keras.Model(tensor, source)
            except ValueError:  # a skip connection around the layer: record the whole pass
                self.from_layer = None
        self.cut = keras.Model(flat.inputs[0], outputs)

    def scores(self, outputs: Any) -> Any:
        """Class scores (batch, classes) from the cut's last output."""
        import keras

        source = outputs[-1] if isinstance(outputs, list | tuple) else outputs
        if self.head is None:
            return keras.ops.reshape(source, (keras.ops.shape(source)[0], -1))
        kernel, bias = self.head
        logits = keras.ops.matmul(source, kernel)
        return logits + bias if bias is not None else logits


def last_spatial_layer(model: Any) -> tuple[str, tuple[int, ...]]:
    """Grad-CAM's default: the last layer (in running order, nested ones included) whose output is a spatial
    map larger than 1 x 1, with its call site."""
    flat = flat_graph(model)
    nested = {key for key in flat.fed if any(other[0].startswith(f"{key[0]}/") for other in flat.produced)}
    found = [key for key, tensors in flat.produced.items()
             if key in flat.fed and key not in nested and len(tensors[0].shape) == 4
             and all(d is None or d > 1 for d in tuple(tensors[0].shape)[1:3])]
    if not found:
        raise RuntimeFailure("the model has no layer with a spatial output for Grad-CAM: use saliency or ig")
    return found[-1]


def _score_source(model: Any, flat: FlatGraph) -> tuple[tuple[Any, Any] | None, Any]:
    """(the final softmax Dense's kernel and bias, its input tensor); (None, the input of a final Softmax or
    Activation('softmax') layer); else (None, the model's first output)."""
    import keras

    from explorer.runtime.keras_graph import graph_of, own_nodes

    graph = graph_of(model)
    history = graph.outputs[0]._keras_history
    layer = history.operation
    call = own_nodes(graph, layer).index(layer._inbound_nodes[history.node_index])
    softmax = keras.activations.softmax
    if isinstance(layer, keras.layers.Dense) and layer.activation is softmax:
        return (layer.kernel, layer.bias), flat.fed[(layer.name, (call,))][0]
    if isinstance(layer, keras.layers.Softmax) or (isinstance(layer, keras.layers.Activation)
                                                   and layer.activation is softmax):
        return None, flat.fed[(layer.name, (call,))][0]
    return None, flat.outputs[0]


def explain(scorer: Scorer, x: np.ndarray, method: str, class_index: int | None = None,
            baseline: np.ndarray | None = None, settings: Settings | None = None) -> Attribution:
    """The attribution of one input ``x`` (no batch axis) to the class (default: the top-1)."""
    import tensorflow as tf

    settings = settings or Settings()
    if method not in METHODS:
        raise RuntimeFailure(f"unknown method {method!r}: choose {', '.join(METHODS)}")
    batch = tf.constant(np.asarray(x, np.float32)[None])
    if method in LAYER_METHODS:
        if scorer.layer is None:
            raise RuntimeFailure(f"{method} needs a layer: choose a convolutional layer")
        heatmap, scores, chosen = _gradcam(scorer, batch, class_index, plus=method == GRADCAM_PP)
        return Attribution(method, chosen, float(scores[chosen]), heatmap, scorer.layer, scores=tuple(scores))
    scores = np.asarray(scorer.scores(scorer.cut(batch, training=False)))[0]
    chosen = _chosen(scores, class_index)
    score, every = float(scores[chosen]), tuple(float(v) for v in scores)
    if method == SALIENCY:
        return Attribution(method, chosen, score, _saliency(scorer, batch, chosen), scores=every)
    if method == SMOOTHGRAD:
        rng = np.random.default_rng(settings.seed)
        sigma = settings.noise * float(np.max(x) - np.min(x))
        noisy = [np.asarray(x, np.float32) + rng.normal(0, sigma, x.shape).astype(np.float32)
                 for _ in range(settings.samples)]
        maps = [_saliency(scorer, tf.constant(sample[None]), chosen) for sample in noisy]
        return Attribution(method, chosen, score, np.mean(maps, axis=0), scores=every)
    base = np.zeros_like(x, np.float32) if baseline is None else np.asarray(baseline, np.float32)
    attributions, base_score = _integrated_gradients(scorer, np.asarray(x, np.float32), base, chosen,
                                                     settings.steps)
    return Attribution(method, chosen, score, attributions.sum(axis=-1), baseline_score=base_score, scores=every)


def _chosen(scores: np.ndarray, class_index: int | None) -> int:
    chosen = int(np.argmax(scores)) if class_index is None else int(class_index)
    if not 0 <= chosen < len(scores):
        raise RuntimeFailure(f"class {chosen} is not among the model's {len(scores)} classes")
    return chosen


def _gradcam(scorer: Scorer, batch: Any, class_index: int | None,
             plus: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(the heatmap, every class's score, the class explained)."""
    import tensorflow as tf

    if scorer.from_layer is not None:
        maps = scorer.to_layer(batch, training=False)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(maps)
            scores = scorer.scores(scorer.from_layer(maps, training=False))
            chosen = _chosen(np.asarray(scores)[0], class_index)
            score = scores[:, chosen]
    else:
        with tf.GradientTape() as tape:
            maps, *rest = scorer.cut(batch, training=False)
            scores = scorer.scores(rest)
            chosen = _chosen(np.asarray(scores)[0], class_index)
            score = scores[:, chosen]
    grads = tape.gradient(score, maps)
    if grads is None:
        raise RuntimeFailure("the class score does not depend on this layer")
    if plus:  # Grad-CAM++ (Chattopadhay et al. 2018), the exponential-score closed form
        second, third = grads ** 2, grads ** 3
        total = tf.reduce_sum(maps, axis=(1, 2), keepdims=True)
        denominator = 2.0 * second + total * third
        alphas = second / tf.where(denominator != 0.0, denominator, tf.ones_like(denominator))
        weights = tf.reduce_sum(alphas * tf.nn.relu(grads), axis=(1, 2))[0]
    else:  # as the keras-io recipe: channel weights are the mean gradients
        weights = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.squeeze(maps[0] @ weights[..., tf.newaxis])
    heatmap = np.maximum(np.asarray(heatmap), 0)
    peak = float(np.max(heatmap))
    return (heatmap / peak if peak > 0 else heatmap), np.asarray(scores)[0], chosen


def _gradients(scorer: Scorer, batch: Any, chosen: int) -> tuple[np.ndarray, np.ndarray]:
    """(d score / d input, the scores) for a batch."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(batch)
        score = scorer.scores(scorer.cut(batch, training=False))[:, chosen]
    return np.asarray(tape.gradient(score, batch)), np.asarray(score)


def _saliency(scorer: Scorer, batch: Any, chosen: int) -> np.ndarray:
    """|gradient| at each pixel, the largest over its channels (Simonyan et al. 2014)."""
    grads, _ = _gradients(scorer, batch, chosen)
    return np.max(np.abs(grads[0]), axis=-1)


def _integrated_gradients(scorer: Scorer, x: np.ndarray, baseline: np.ndarray, chosen: int,
                          steps: int) -> tuple[np.ndarray, float]:
    """(x - baseline) times the path average of the gradients (trapezoidal rule over ``steps`` segments), and
    the baseline's score: the attributions add up to score(x) - score(baseline) (Sundararajan et al. 2017)."""
    import tensorflow as tf

    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    grads, scores = [], []
    for start in range(0, len(alphas), IG_CHUNK):
        chunk = alphas[start:start + IG_CHUNK].reshape(-1, *([1] * x.ndim))
        path = tf.constant(baseline[None] + chunk * (x - baseline)[None])
        chunk_grads, chunk_scores = _gradients(scorer, path, chosen)
        grads.append(chunk_grads)
        scores.append(chunk_scores)
    every = np.concatenate(grads)
    average = (every[:-1] + every[1:]).mean(axis=0) / 2.0
    return (x - baseline) * average, float(np.concatenate(scores)[0])
