"""File > Export: feature extractors (verified by the live tier), Python snippet, activations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from explorer.live.protocol import Exported
from explorer.model.graph import Target
from explorer.runtime.export import KERAS, SAVEDMODEL
from explorer.runtime.snippet import python_snippet
from explorer.ui.activations.feature_export import save_output_png

if TYPE_CHECKING:
    from explorer.ui.main_window import MainWindow

KERAS_FILTER = "Keras model (*.keras)"
SAVEDMODEL_FILTER = "TensorFlow SavedModel (a folder)"


def export_targets(window: MainWindow) -> list[Target]:
    """Selected layers with their call sites: the one chosen in the Activations dock for the current layer."""
    graph = window.graph
    if graph is None:
        return []
    targets = []
    for path in window.selected_layers():
        site = window.activations.call_site.currentData() if path == window.activations.layer else None
        targets.append(Target(path, tuple(site) if site else graph.call_sites(path)[0]))
    return targets


def export_extractor(window: MainWindow, path: str | None = None, fmt: str | None = None) -> int | None:
    """Ask where to save (unless given), then let the live tier build, save and verify the extractor."""
    targets = export_targets(window)
    if not targets or window.model_path is None:
        window.show_error("Select one or more layers to export (Ctrl+click adds layers to the selection)")
        return None
    if not window.activations.prepared:
        window.show_error("The export is verified on the current input: open an image first")
        return None
    if path is None:
        default = window.model_path.with_name(f"{window.model_path.stem}_features.keras")
        path, chosen = QFileDialog.getSaveFileName(window, "Export feature extractor", str(default),
                                                   f"{KERAS_FILTER};;{SAVEDMODEL_FILTER}")
        if not path:
            return None
        fmt = SAVEDMODEL if chosen == SAVEDMODEL_FILTER else KERAS
    fmt = fmt or (KERAS if path.endswith(".keras") else SAVEDMODEL)
    if fmt == KERAS and not path.endswith(".keras"):
        path += ".keras"
    inputs = {name: prepared.array for name, prepared in window.activations.prepared.items()}
    names = ", ".join(t.layer for t in targets)
    window.statusBar().showMessage(f"Exporting {names} to {Path(path).name} and verifying it…")
    window.export_request = window.live.export(targets, path, fmt, inputs)
    return window.export_request


def report_export(window: MainWindow, exported: Exported) -> None:
    report = exported.report
    if report.verified:
        window.statusBar().showMessage(f"Exported {Path(report.path).name} ({report.format}): {report.message}",
                                       20000)
    else:
        window.show_error(f"Export to {Path(report.path).name} failed verification: {report.message}")


def copy_python(window: MainWindow) -> str | None:
    targets = export_targets(window)
    if not targets or window.model_path is None or window.graph is None:
        window.show_error("Select one or more layers first")
        return None
    groups = {n.path for n in window.graph.nodes if n.is_group}
    code = python_snippet(window.model_path, targets, groups)
    QGuiApplication.clipboard().setText(code)
    window.statusBar().showMessage(f"Python for {len(targets)} layer(s) copied to the clipboard", 8000)
    return code


def export_activations(window: MainWindow, suffix: str, path: str | None = None) -> Path | None:
    view = window.activations.view
    if view.array is None:
        window.show_error("Nothing to export yet: click a layer first")
        return None
    if path is None:
        layer = (window.activations.layer or "activations").replace("/", "__")
        path, _ = QFileDialog.getSaveFileName(window, f"Export activations as {suffix}", f"{layer}.{suffix}",
                                              f"{suffix.upper()} (*.{suffix})")
        if not path:
            return None
    target = Path(path)
    try:
        if suffix == "npy":
            np.save(target, view.array)
        else:
            save_output_png(view.array, target, colour_map=view.colour_map_name(), order=view.order_name(),
                            shared_scale=view.shared_scale())
    except OSError as error:
        window.show_error(f"Cannot write {target}: {error}")
        return None
    window.statusBar().showMessage(f"Activations written to {target}", 8000)
    return target
