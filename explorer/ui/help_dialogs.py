"""Help > Keyboard Shortcuts and Help > About."""

from __future__ import annotations

import platform
from importlib import metadata

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox, QWidget

from explorer import __version__

GRAPH_KEYS = (
    ("Mouse wheel", "zoom around the cursor"), ("Drag", "pan"), ("Arrow Down / Up", "follow the data flow"),
    ("Arrow Left / Right", "move along a row"), ("Enter / double-click", "expand or collapse a nested model"),
    ("Ctrl+click", "add a layer to the selection (for export)"), ("+ / - / 0", "zoom in, zoom out, fit"),
)


def shortcuts_text(actions: list[QAction]) -> str:
    rows = [(a.shortcut().toString(), a.text().replace("&", "").rstrip("…"))
            for a in actions if not a.shortcut().isEmpty()]
    rows += GRAPH_KEYS
    return "<table>" + "".join(f"<tr><td><b>{key}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for key, what in rows) \
        + "</table>"


def show_shortcuts(parent: QWidget, actions: list[QAction]) -> None:
    QMessageBox.information(parent, "Keyboard shortcuts", shortcuts_text(actions))


def versions() -> dict[str, str]:
    """Versions without importing TensorFlow into the window's process (it lives in the worker)."""
    found = {"Keras Explorer": __version__, "Qt": qVersion(), "PySide6": PySide6.__version__,
             "Python": platform.python_version()}
    for package in ("keras", "tensorflow", "pyqtgraph", "h5py", "numpy", "Pillow"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def show_about(parent: QWidget) -> None:
    listing = "".join(f"<tr><td>{name}&nbsp;&nbsp;</td><td>{version}</td></tr>" for name, version in versions().items())
    QMessageBox.about(parent, "About Keras Explorer",
                      "<h3>Keras Explorer</h3><p>See a Keras model's layer graph at once, then what any layer "
                      f"computes on your own images.</p><table>{listing}</table>")
