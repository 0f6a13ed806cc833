"""Weight shapes read from Keras weight files with h5py (metadata only, values are never loaded)."""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py


@dataclass(frozen=True)
class RawWeight:
    """A weight as stored: ``key`` is its position inside the layer's group, e.g. ``0`` or ``query/1``."""

    key: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class WeightTree:
    """Weights per layer, keyed by the tuple of layer names from the top model down to the layer."""

    by_layer: dict[tuple[str, ...], tuple[RawWeight, ...]] = field(default_factory=dict)
    legacy: bool = False

    @classmethod
    def empty(cls) -> WeightTree:
        return cls({})

    def get(self, layer_names: tuple[str, ...]) -> tuple[RawWeight, ...]:
        return self.by_layer.get(layer_names, ())


def read_weight_tree(h5: h5py.File) -> WeightTree:
    """Keras 3 layout: ``layers/<attr>/vars/<i>``, nested models under ``layers/<attr>/layers``."""
    result: dict[tuple[str, ...], tuple[RawWeight, ...]] = {}
    if isinstance(h5.get("layers"), h5py.Group):
        _collect_layers(h5["layers"], (), result)
    return WeightTree(result)


def _collect_layers(layers: h5py.Group, prefix: tuple[str, ...], result: dict) -> None:
    for group in layers.values():
        if not isinstance(group, h5py.Group):
            continue
        name = _layer_name(group)
        if name is None:
            continue
        path = (*prefix, name)
        weights: list[RawWeight] = []
        _collect_vars(group, "", weights)
        if weights:
            result[path] = tuple(weights)
        if isinstance(group.get("layers"), h5py.Group):
            _collect_layers(group["layers"], path, result)


def _collect_vars(group: h5py.Group, prefix: str, out: list[RawWeight]) -> None:
    """Own variables, then those of sublayers that are not separate graph layers (e.g. MHA's dense parts)."""
    own = group.get("vars")
    if isinstance(own, h5py.Group):
        for key in sorted(own, key=_natural):
            dataset = own[key]
            if isinstance(dataset, h5py.Dataset):
                out.append(RawWeight(prefix + key, tuple(int(d) for d in dataset.shape), str(dataset.dtype)))
    for key in sorted(group, key=_natural):
        child = group[key]
        if key in ("vars", "layers") or not isinstance(child, h5py.Group):
            continue
        sub_name = _layer_name(child) or key
        _collect_vars(child, f"{prefix}{sub_name}/", out)


def _layer_name(group: h5py.Group) -> str | None:
    own = group.get("vars")
    if not isinstance(own, h5py.Group):
        return None
    name = own.attrs.get("name")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return None if name is None else str(name)


def _natural(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def read_legacy_weights(h5: h5py.File) -> WeightTree:
    """Keras 2 / legacy ``.h5``: ``model_weights/<layer>`` lists ``weight_names`` such as ``block/conv/kernel:0``.

    Keys are the layer names along the weight's path; the graph gives each to the deepest layer matching it.
    """
    root = h5.get("model_weights", h5)
    result: dict[tuple[str, ...], list[RawWeight]] = {}
    for layer_name, group in root.items():
        if not isinstance(group, h5py.Group):
            continue
        for raw_name in group.attrs.get("weight_names", []):
            weight_name = raw_name.decode("utf-8") if isinstance(raw_name, bytes) else str(raw_name)
            dataset = group.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                continue
            parts = weight_name.split("/")
            # Keras 3 writes "<model>/<layer>/kernel", Keras 2 "<layer>/kernel:0": keep what follows the layer.
            inner = parts[parts.index(layer_name) + 1:-1] if layer_name in parts[:-1] else parts[:-1]
            weight = RawWeight(parts[-1].split(":")[0], tuple(int(d) for d in dataset.shape), str(dataset.dtype))
            result.setdefault((layer_name, *inner), []).append(weight)
    return WeightTree({key: tuple(value) for key, value in result.items()}, legacy=True)
