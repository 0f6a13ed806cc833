"""Per-layer numbers as box colours: a sequential colour map (pyqtgraph's, as the activations use) stretched over
the measure's range."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor

from explorer.ui.activations.qtgraph import pyqtgraph

COLOUR_MAP = "viridis"  # perceptually even and readable by the colour-blind; dark at the low end (see text_colour)
NEUTRAL = QColor("#ececec")  # a box without a number: hatched over this, so no value is mistaken for one
NEUTRAL_HATCH = QColor("#b8b8b8")
GRADIENT_STEPS = 32


class NumberScale:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self._map = pyqtgraph().colormap.get(COLOUR_MAP)

    def position(self, value: float) -> float:
        """Where ``value`` falls in the range, 0..1 (every value at 0 when they are all equal)."""
        span = self.high - self.low
        return float(np.clip((value - self.low) / span, 0.0, 1.0)) if span > 0 else 0.0

    def colour(self, value: float) -> QColor:
        return self._map.map(np.array([self.position(value)]), mode="qcolor")[0]

    def stops(self) -> list[QColor]:
        """The map from low to high, for a colour bar."""
        return self._map.map(np.linspace(0.0, 1.0, GRADIENT_STEPS), mode="qcolor")


def text_colour(fill: QColor) -> QColor:
    """Dark text on light fills, white on dark ones (the low end of the map)."""
    luminance = 0.299 * fill.red() + 0.587 * fill.green() + 0.114 * fill.blue()
    return QColor("#111111") if luminance >= 140 else QColor("#ffffff")
