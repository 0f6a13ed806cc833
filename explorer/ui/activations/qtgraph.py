"""pyqtgraph, imported on first use: importing it (and the Qt modules it loads) costs the first paint ~0.2 s."""

from __future__ import annotations

import os
from types import ModuleType


def pyqtgraph() -> ModuleType:
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    import pyqtgraph as pg

    return pg
