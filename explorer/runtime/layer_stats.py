"""Per-layer numbers from one pass through a model: every layer's output (inside nested models and at each call
site too) reduced to a few statistics as it is produced, then dropped, so no more than the running network's
live tensors are ever held (explorer.runtime.extraction.node_outputs).

A layer is keyed by its path and call site, as the window and the commands name it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import numpy as np

from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.extraction import flat_graph, node_outputs

LayerKey = tuple[str, tuple[int, ...]]  # (layer path, call site)


@dataclass(frozen=True)
class LayerStats:
    """One layer's output on one input: its values' statistics and its channels'."""

    mean: float
    std: float
    maximum: float
    dead: float  # fraction of channels never above 0 anywhere in the output
    channel_mean: np.ndarray  # (channels,)
    channel_max: np.ndarray  # (channels,)


class FlatModel:
    """A model with every nested model inlined, run node by node; each layer's first output is visited."""

    def __init__(self, model: Any) -> None:
        import keras

        flat = flat_graph(model)
        self.model = keras.Model(flat.inputs, flat.outputs)
        self.input_name = flat.inputs[0].name
        self._keys: dict[int, list[LayerKey]] = {}
        for key, tensors in flat.produced.items():
            if key in flat.fed and tensors:  # inputs are not layers that compute
                self._keys.setdefault(id(tensors[0]), []).append(key)

    def outputs(self, batch: np.ndarray) -> Iterator[tuple[LayerKey, np.ndarray]]:
        """(layer, its first output as numpy) for every layer, in running order, for a batch (first input)."""
        for symbolic, value in node_outputs(self.model, {self.input_name: batch}):
            keys = self._keys.get(id(symbolic), ())
            if keys:
                array = np.asarray(value, np.float32)
                for key in keys:
                    yield key, array


def _channels(array: np.ndarray) -> np.ndarray:
    """(batch, positions, channels): the last axis is the channel (a vector is positions=1)."""
    if array.ndim == 1:
        return array.reshape(len(array), 1, 1)
    return array.reshape(array.shape[0], -1, array.shape[-1])


def layer_statistics(model: Any, x: np.ndarray) -> dict[LayerKey, LayerStats]:
    """Every layer's statistics on one input ``x`` (no batch axis)."""
    result = {}
    for key, array in FlatModel(model).outputs(np.asarray(x, np.float32)[None]):
        values = _channels(array)[0]
        channel_max = values.max(axis=0)
        result[key] = LayerStats(float(values.mean()), float(values.std()), float(values.max()),
                                 float(np.mean(channel_max <= 0)), values.mean(axis=0), channel_max)
    return result


def ab_similarity(model: Any, a: np.ndarray, b: np.ndarray) -> dict[LayerKey, float]:
    """Per layer, the cosine similarity of its whole output on input A and on input B (one batch of two)."""
    result = {}
    for key, array in FlatModel(model).outputs(np.stack([a, b]).astype(np.float32)):
        first, second = array[0].reshape(-1).astype(np.float64), array[1].reshape(-1).astype(np.float64)
        norms = float(np.linalg.norm(first) * np.linalg.norm(second))
        result[key] = float(first @ second / norms) if norms > 0 else float(np.array_equal(first, second))
    return result


def activation_difference(model_a: Any, model_b: Any, x: np.ndarray) -> dict[LayerKey, float]:
    """Per layer, ||B - A|| / ||A|| of its output on ``x``: the two models (one architecture, two checkpoints)
    run side by side, node by node, so neither holds its whole network's activations."""
    batch = np.asarray(x, np.float32)[None]
    result = {}
    for first, second in zip_longest(FlatModel(model_a).outputs(batch), FlatModel(model_b).outputs(batch)):
        if first is None or second is None or first[0] != second[0] or first[1].shape != second[1].shape:
            where = " / ".join(pair[0][0] for pair in (first, second) if pair is not None)
            raise RuntimeFailure(f"the models part ways at {where}: not one architecture")
        (key_a, a), (_key_b, b) = first, second
        scale = float(np.linalg.norm(a))
        result[key_a] = float(np.linalg.norm(b - a)) / scale if scale > 0 else float(np.linalg.norm(b))
    return result


@dataclass
class FolderStats:
    """Per layer and channel over many images: the mean of the per-image channel means, the largest value, and
    the fraction of images where the channel is dead (never above 0)."""

    images: int = 0
    sums: dict[LayerKey, np.ndarray] = field(default_factory=dict)
    maxima: dict[LayerKey, np.ndarray] = field(default_factory=dict)
    dead: dict[LayerKey, np.ndarray] = field(default_factory=dict)

    def add(self, flat: FlatModel, batch: np.ndarray) -> None:
        for key, array in flat.outputs(batch):
            values = _channels(array)
            channel_max = values.max(axis=1)
            if key not in self.sums:
                self.sums[key] = np.zeros(values.shape[-1])
                self.maxima[key] = np.full(values.shape[-1], -np.inf)
                self.dead[key] = np.zeros(values.shape[-1])
            self.sums[key] += values.mean(axis=1).sum(axis=0)
            self.maxima[key] = np.maximum(self.maxima[key], channel_max.max(axis=0))
            self.dead[key] += (channel_max <= 0).sum(axis=0)
        self.images += len(batch)

    def table(self) -> Any:
        """One row per (layer, channel): layer, call_site, channel, mean, max, dead_fraction, images."""
        import pyarrow as pa

        rows: dict[str, list] = {name: [] for name in ("layer", "call_site", "channel", "mean", "max",
                                                       "dead_fraction")}
        for (path, site), sums in self.sums.items():
            count = len(sums)
            rows["layer"] += [path] * count
            rows["call_site"] += [list(site)] * count
            rows["channel"] += list(range(count))
            rows["mean"] += list(sums / max(self.images, 1))
            rows["max"] += list(self.maxima[(path, site)])
            rows["dead_fraction"] += list(self.dead[(path, site)] / max(self.images, 1))
        types = {"layer": pa.string(), "call_site": pa.list_(pa.int32()), "channel": pa.int32(),
                 "mean": pa.float32(), "max": pa.float32(), "dead_fraction": pa.float32()}
        table = pa.table({name: pa.array(values, types[name]) for name, values in rows.items()})
        return table.append_column("images", pa.array([self.images] * table.num_rows, pa.int32()))
