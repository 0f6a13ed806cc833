"""Computed layer outputs kept within a memory budget, so going back to a layer is instant."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

DEFAULT_BUDGET = 1 << 30


class ActivationCache:
    """Least-recently-used outputs per key (input, layer, call site), bounded by total bytes."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._items: OrderedDict[Hashable, list[np.ndarray]] = OrderedDict()
        self.size = 0

    def get(self, key: Hashable) -> list[np.ndarray] | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, outputs: list[np.ndarray]) -> None:
        cost = sum(a.nbytes for a in outputs)
        if key in self._items:
            self.size -= sum(a.nbytes for a in self._items.pop(key))
        if cost > self.budget:
            return  # larger than the whole budget: shown, not kept
        self._items[key] = outputs
        self.size += cost
        self._evict()

    def set_budget(self, budget: int) -> None:
        self.budget = budget
        self._evict()

    def _evict(self) -> None:
        while self.size > self.budget and self._items:
            _, evicted = self._items.popitem(last=False)
            self.size -= sum(a.nbytes for a in evicted)

    def clear(self) -> None:
        self._items.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._items)
