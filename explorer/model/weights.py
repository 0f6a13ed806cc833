"""Weight shapes as the readers find them in Keras weight files (explorer.model.readers.hdf5): records only."""

from __future__ import annotations

from dataclasses import dataclass, field


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


def storage_order(weight: RawWeight) -> tuple:
    """Own variables first in index order, then sublayers' by name and index (as Keras lists them)."""
    head, _, index = weight.key.rpartition("/")
    return (head != "", head, _natural(index))


def _natural(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)
