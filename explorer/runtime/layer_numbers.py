"""The worker's side of attribution and of the per-layer numbers the graph is coloured by: what it keeps
between requests (the cut models, a second checkpoint) and how a request becomes an answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.live.protocol import Explained, ExplainRequest, LayerMeasure, LayerNumbersRequest
from explorer.model.compare import architecture_mismatches, refusal
from explorer.runtime.attribution import LAYER_METHODS, Scorer, Settings, explain, last_spatial_layer
from explorer.runtime.compare import leaf_layers, weight_change
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.layer_stats import LayerKey, ab_similarity, activation_difference, layer_statistics
from explorer.runtime.loading import LiveModel, open_model, read_file_graph


class LayerNumbersSource:
    def __init__(self) -> None:
        self.scorers: dict[tuple[str | None, tuple[int, ...]], Scorer] = {}
        self.other: tuple[str, Any] | None = None  # (path, model) of the second checkpoint

    def explain(self, live: LiveModel, message: ExplainRequest) -> Explained:
        model = _graph_model(live)
        x = _single(message.inputs)
        layer, site = message.layer, tuple(message.call_site)
        if message.method in LAYER_METHODS and layer is None:
            layer, site = last_spatial_layer(model)
        elif message.method not in LAYER_METHODS:
            layer, site = None, ()
        key = (layer, site)
        if key not in self.scorers:
            self.scorers[key] = Scorer(model, layer, site or None)
        scorer = self.scorers[key]
        result = explain(scorer, x, message.method, message.class_index, message.baseline,
                         Settings(steps=message.steps, samples=message.samples))
        return Explained(message.request, result.method, result.layer, result.class_index, result.score,
                         result.map, result.scores, result.baseline_score)

    def measure(self, live: LiveModel, message: LayerNumbersRequest, path: str,
                custom_objects: str | None) -> dict[LayerKey, float]:
        model = _graph_model(live)
        x = _single(message.inputs)
        if message.measure == LayerMeasure.MEAN:
            return {key: stats.mean for key, stats in layer_statistics(model, x).items()}
        if message.measure == LayerMeasure.DEAD:
            return {key: stats.dead for key, stats in layer_statistics(model, x).items()}
        if message.measure == LayerMeasure.SIMILARITY:
            if not message.second:
                raise RuntimeFailure("A/B similarity needs a second input (B)")
            return ab_similarity(model, x, _single(message.second))
        if message.measure == LayerMeasure.WEIGHT_NORM:
            return {(name, ()): float(np.sqrt(sum(float(np.sum(np.square(np.asarray(w, np.float64))))
                                                  for w in layer.weights)))
                    for name, layer in leaf_layers(model) if layer.weights}
        if message.measure in (LayerMeasure.CHECKPOINT, LayerMeasure.WEIGHT_CHANGE):
            other = self._checkpoint(message.other, path, message.other_trusted, custom_objects)
            if message.measure == LayerMeasure.WEIGHT_CHANGE:
                return {(name, ()): value for name, value in weight_change(model, other).items()}
            return activation_difference(model, other, x)
        raise RuntimeFailure(f"unknown measure {message.measure!r}")

    def _checkpoint(self, other: str | None, path: str, trust: bool, custom_objects: str | None) -> Any:
        """The second checkpoint, refused (from the files alone) unless it is the same architecture; loaded with
        the trust the user gave that file."""
        if not other:
            raise RuntimeFailure("choose the second checkpoint first (File > Compare With…)")
        if self.other is None or self.other[0] != other:
            first, second = read_file_graph(path), read_file_graph(other)
            mismatches = architecture_mismatches(first, second)
            if mismatches:
                raise RuntimeFailure(refusal(first, second, mismatches))
            loaded = open_model(other, trust, custom_objects, second)
            model = _graph_model(loaded)
            self.other = (other, model)
        return self.other[1]


def _graph_model(live: LiveModel) -> Any:
    model = live.keras3_graph()
    if model is None:
        raise RuntimeFailure("this subclassed model could only be recorded: there is no graph to take gradients "
                             "or per-layer numbers through")
    return model


def _single(inputs: dict[str, np.ndarray]) -> np.ndarray:
    if len(inputs) != 1:
        raise RuntimeFailure("attribution and per-layer numbers need a model with one input")
    return next(iter(inputs.values()))

