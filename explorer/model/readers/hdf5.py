"""HDF5 files read with h5py: the weight shapes of each Keras layout (metadata only, values are never loaded),
and what in the file's storage could touch the system (links, external or virtual data, declared sizes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import h5py

from explorer.model.graph import Finding
from explorer.model.weights import RawWeight, StoredDataset, WeightTree, storage_order
from explorer.text import SHORT, one_line

MAX_DATASET_BYTES = 8 << 30
FREE_DECLARED_BYTES = 64 << 20  # declared weights beyond this must be backed by bytes in the file
DECLARED_PER_STORED = 4  # declared weight bytes may exceed the stored bytes this much (headers, padding)


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


def read_legacy_weights(h5: h5py.File) -> WeightTree:
    """Keras 2 / legacy ``.h5``: ``model_weights/<layer>`` lists ``weight_names`` such as ``block/conv/kernel:0``.

    Keys are the layer names along the weight's path; the graph gives each to the deepest layer matching it.
    """
    root = h5.get("model_weights", h5)
    result: dict[tuple[str, ...], list[RawWeight]] = {}
    # layer_names lists the groups; a Keras 2 name with "/" (conv1/conv) is a nested HDF5 path.
    names = [text_attr(n) for n in root.attrs["layer_names"]] if "layer_names" in root.attrs else list(root)
    for layer_name in names:
        group = root.get(layer_name)
        if not isinstance(group, h5py.Group):
            continue
        for raw_name in group.attrs.get("weight_names", []):
            weight_name = text_attr(raw_name)
            dataset = group.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                continue
            # Keras 3 writes "<model>/<layer>/kernel", Keras 2 "<layer>/kernel:0": keep what follows the layer.
            marked, marker = "/" + weight_name, f"/{layer_name}/"
            rest = marked[marked.rfind(marker) + len(marker):] if marker in marked else weight_name
            *inner, leaf = rest.split("/")
            weight = RawWeight(leaf.split(":")[0], tuple(int(d) for d in dataset.shape), str(dataset.dtype))
            result.setdefault((layer_name, *inner), []).append(weight)
    return WeightTree({key: tuple(value) for key, value in result.items()})


def text_attr(value: Any) -> str | None:
    """An HDF5 attribute as text (h5py hands out bytes or str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def read_saved_weights(h5: h5py.File) -> WeightTree | None:
    """``save_weights`` output in either layout: Keras 2 (``layer_names`` on the root) or Keras 3
    (``layers/<group>/vars``; a subclassed model's ``<attribute>/vars``); None when the file holds neither."""
    if "layer_names" in h5.attrs:
        return read_legacy_weights(h5)
    if isinstance(h5.get("layers"), h5py.Group) or "vars" in h5 \
            or any(isinstance(group, h5py.Group) and "vars" in group for group in h5.values()):
        return read_weight_tree(h5)
    return None


def scan_hdf5(h5: h5py.File, where: str, stored_bytes: int, datasets: Iterable[StoredDataset] | None = None,
              ) -> list[Finding]:
    """Links to other files, external or virtual storage, and datasets declaring more than the file holds.

    ``datasets``: storage facts already gathered while reading the weights (else read here).
    """
    findings: list[Finding] = []

    def link(name: bytes, info: Any) -> None:
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            findings.append(Finding(f"{where} /{_short(name.decode('utf-8', 'replace'))}", "a link to another file"))
        elif info.type == h5py.h5l.TYPE_SOFT:
            findings.append(Finding(f"{where} /{_short(name.decode('utf-8', 'replace'))}", "a soft link"))

    h5.id.links.visit(link, info=True)  # low-level and recursive: no Python object per HDF5 object
    if datasets is None:
        collected: list[StoredDataset] = []
        h5.visititems(lambda name, item: collected.append(stored_dataset(name, item))
                      if isinstance(item, h5py.Dataset) else None)
        datasets = collected
    declared = 0
    for dataset in datasets:
        declared += dataset.declared_bytes
        if dataset.external:
            findings.append(Finding(f"{where} /{dataset.path}", "data stored in external files"))
        if dataset.virtual:
            findings.append(Finding(f"{where} /{dataset.path}", "a virtual dataset (data read from other files)"))
        if dataset.declared_bytes > MAX_DATASET_BYTES:
            findings.append(Finding(f"{where} /{dataset.path}",
                                    f"declares {dataset.declared_bytes / 2**30:.1f} GB for one weight"))
    if declared > max(FREE_DECLARED_BYTES, DECLARED_PER_STORED * stored_bytes):
        findings.append(Finding(where, f"declares {declared / 2**20:,.0f} MB of weights in "
                                       f"{stored_bytes / 2**20:,.1f} MB of file (loading would allocate it all)"))
    return findings


def _short(text: str) -> str:
    """File authors choose these strings: keep them short and printable."""
    return one_line(text, SHORT)
