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
class StoredDataset:
    """Storage facts the safety check needs, gathered in the same pass that reads the shapes."""

    path: str
    declared_bytes: int
    external: bool
    virtual: bool


@dataclass(frozen=True)
class WeightTree:
    """Weights per layer, keyed by the tuple of layer names from the top model down to the layer."""

    by_layer: dict[tuple[str, ...], tuple[RawWeight, ...]] = field(default_factory=dict)
    datasets: tuple[StoredDataset, ...] = ()
    # Every group holding variables, by attribute path (``blocks/dense``): for subclassed models, whose
    # sublayers are stored under the attribute names of the Python object, not under "layers".
    by_attribute: dict[str, tuple[str, tuple[RawWeight, ...]]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> WeightTree:
        return cls({})


def read_weight_tree(h5: h5py.File) -> WeightTree:
    """Keras 3 layout: ``layers/<attr>/vars/<i>``, nested models under ``layers/<attr>/layers``.

    One ``visititems`` pass: per-key lookups cost ~5x more on models with hundreds of layers.
    """
    names: dict[str, str] = {}  # group path -> layer name (from the "name" attribute of its vars group)
    datasets: list[tuple[str, h5py.Dataset]] = []

    def visit(path: str, item: h5py.Group | h5py.Dataset) -> None:
        if isinstance(item, h5py.Dataset):
            datasets.append((path, item))
        elif path.endswith("vars") and (path == "vars" or path.endswith("/vars")):
            name = item.attrs.get("name")  # only Keras >= 3.6 writes it (explorer.model.weight_groups: the rest)
            if name is not None:
                names[path.rpartition("/")[0]] = name.decode("utf-8", "replace") if isinstance(name, bytes) \
                    else str(name)

    h5.visititems(visit)
    stored = tuple(stored_dataset(path, dataset) for path, dataset in datasets)
    by_attribute: dict[str, list[RawWeight]] = {}
    result: dict[tuple[str, ...], list[RawWeight]] = {}
    for path, dataset in datasets:
        parts = path.split("/")
        if len(parts) < 2 or parts[-2] != "vars":
            continue
        owner = parts[:-2]
        if owner:
            by_attribute.setdefault("/".join(owner), []).append(
                RawWeight(parts[-1], tuple(int(d) for d in dataset.shape), str(dataset.dtype)))
        depth = 0
        while depth + 1 < len(owner) and owner[depth] == "layers":
            depth += 2
        if depth == 0:
            continue  # the model's own variables (rare): not a layer's
        layer_groups = ["/".join(owner[:i]) for i in range(2, depth + 1, 2)]
        if any(group not in names for group in layer_groups):
            continue
        sublayers = [names.get("/".join(owner[:i]), owner[i - 1]) for i in range(depth + 1, len(owner) + 1)]
        key = "/".join([*sublayers, parts[-1]])
        weight = RawWeight(key, tuple(int(d) for d in dataset.shape), str(dataset.dtype))
        result.setdefault(tuple(names[g] for g in layer_groups), []).append(weight)
    attributes = {path: (names.get(path, path.rsplit("/", 1)[-1]), tuple(sorted(weights, key=storage_order)))
                  for path, weights in by_attribute.items()}
    return WeightTree({k: tuple(sorted(v, key=storage_order)) for k, v in result.items()}, datasets=stored,
                      by_attribute=attributes)


def stored_dataset(path: str, dataset: h5py.Dataset) -> StoredDataset:
    size = dataset.dtype.itemsize
    for dim in dataset.shape or ():
        size *= int(dim)
    plist = dataset.id.get_create_plist()  # one property list read answers both storage questions
    layout = plist.get_layout()
    return StoredDataset(path, size, plist.get_external_count() > 0, layout == h5py.h5d.VIRTUAL)


def storage_order(weight: RawWeight) -> tuple:
    """Own variables first in index order, then sublayers' by name and index (as Keras lists them)."""
    head, _, index = weight.key.rpartition("/")
    return (head != "", head, _natural(index))


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
    return WeightTree({key: tuple(value) for key, value in result.items()})


def read_saved_weights(h5: h5py.File) -> WeightTree | None:
    """``save_weights`` output in either layout: Keras 2 (``layer_names`` on the root) or Keras 3
    (``layers/<group>/vars``); None when the file holds neither."""
    if "layer_names" in h5.attrs:
        return read_legacy_weights(h5)
    if isinstance(h5.get("layers"), h5py.Group):
        return read_weight_tree(h5)
    return None
