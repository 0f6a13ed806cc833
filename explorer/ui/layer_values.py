"""One number per layer (and call site) that the graph is coloured by and the summary table shows: what the
live tier measured (explorer.live.protocol.LayerNumbers) or a folder's statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

LayerKey = tuple[str, tuple[int, ...]]  # (layer path, call site), as the live tier keys them


@dataclass(frozen=True)
class LayerValues:
    measure: str  # what the numbers are, for the legend and the column header
    values: Mapping[LayerKey, float] = field(compare=False)
    by_layer: bool = False  # one number per layer (weights): keyed with the call site ()

    def value(self, path: str, call_site: tuple[int, ...]) -> float | None:
        """The number of ``path`` at ``call_site``; None where there is none (inputs, a layer the pass did not
        reach, a nested model for a per-layer measure, a value that is not finite)."""
        number = self.values.get((path, () if self.by_layer else tuple(call_site)))
        return number if number is not None and math.isfinite(number) else None

    def span(self) -> tuple[float, float] | None:
        """(smallest, largest) finite number, None when there is none."""
        finite = [v for v in self.values.values() if math.isfinite(v)]
        return (min(finite), max(finite)) if finite else None


def number_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
