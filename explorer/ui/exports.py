"""File > Export: feature extractors (built and verified by the live tier), Copy as Python, activations, graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QWidget

from explorer.live.protocol import KERAS3_FORMAT, Exported
from explorer.runtime.export import KERAS, SAVEDMODEL, format_for
from explorer.runtime.snippet import python_snippet
from explorer.ui.activations.feature_export import save_output_png
from explorer.ui.activations.feature_view import FeatureView
from explorer.ui.canvas.export import export_scene
from explorer.ui.canvas.view import GraphView
from explorer.ui.live_client import LiveClient
from explorer.ui.session import Session

KERAS_FILTER = "Keras model (*.keras)"
SAVEDMODEL_FILTER = "TensorFlow SavedModel (a folder)"


class Exports(QObject):
    """Asks where to save (unless told), writes, and reports through the session's message and failure lines."""

    def __init__(self, session: Session, client: LiveClient, feature_view: FeatureView, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.client, self.feature_view = session, client, feature_view
        self.request = 0  # the live tier's request id of the export under way
        client.export_done.connect(self._exported)
        client.request_failed.connect(self._request_failed)

    def export_extractor(self, path: str | None = None, fmt: str | None = None) -> int | None:
        """Let the live tier build, save and verify the extractor of the chosen layers."""
        session = self.session
        targets = session.export_targets()
        if not targets or session.path is None:
            session.fail("Select one or more layers to export (Ctrl+click adds layers to the selection)")
            return None
        if not session.inputs:
            session.fail("The export is verified on the current input: open an image first")
            return None
        if session.refusal:
            session.fail(session.refusal)
            return None
        if session.refused:
            session.fail("The safety check found code in this file: trust it before exporting from it")
            return None
        if path is None:
            default = session.path.with_name(f"{session.path.stem}_features.keras")
            path, chosen = QFileDialog.getSaveFileName(self.parent(), "Export feature extractor", str(default),
                                                       f"{KERAS_FILTER};;{SAVEDMODEL_FILTER}")
            if not path:
                return None
            fmt = SAVEDMODEL if chosen == SAVEDMODEL_FILTER else KERAS
        fmt = fmt or format_for(path)
        if fmt == KERAS and not path.endswith(".keras"):
            path += ".keras"
        names = ", ".join(t.layer for t in targets)
        session.message.emit(f"Exporting {names} to {Path(path).name} and verifying it…")
        self.request = self.client.export(targets, path, fmt, session.input_arrays())
        return self.request

    def save_as_keras3(self, path: str | None = None) -> int | None:
        """Let the live tier write the whole model as a Keras 3 .keras file, verified on the current input."""
        session = self.session
        if session.path is None or session.graph is None:
            session.fail("Open a model first")
            return None
        if session.refusal or session.refused:
            session.fail(session.refusal or "The safety check found code in this file: trust it before saving it")
            return None
        if not session.inputs:
            session.fail("Saving as Keras 3 is verified on the current input: open an image first")
            return None
        if path is None:
            default = session.path.with_name(f"{session.path.name.split('.')[0]}_keras3.keras")
            path, _ = QFileDialog.getSaveFileName(self.parent(), "Save as Keras 3", str(default), KERAS_FILTER)
            if not path:
                return None
        if not path.endswith(".keras"):
            path += ".keras"
        session.message.emit(f"Saving {session.path.name} as Keras 3 ({Path(path).name}) and verifying it…")
        self.request = self.client.save_as_keras3(path, session.input_arrays())
        return self.request

    def _exported(self, exported: Exported) -> None:
        report = exported.report
        if report.format == KERAS3_FORMAT:
            if report.verified:
                self.session.message.emit(f"Saved {Path(report.path).name} as Keras 3: {report.message}")
            else:
                self.session.fail(f"Save as Keras 3 failed: {report.message}")
            return
        if report.verified:
            self.session.message.emit(f"Exported {Path(report.path).name} ({report.format}): {report.message}")
        else:
            self.session.fail(f"Export to {Path(report.path).name} failed verification: {report.message}")

    def _request_failed(self, request: int, message: str) -> None:
        if request == self.request:
            self.session.fail(f"Export failed: {message}")

    def copy_python(self) -> str | None:
        session = self.session
        targets = session.export_targets()
        if not targets or session.path is None or session.graph is None:
            session.fail("Select one or more layers first")
            return None
        code = python_snippet(session.path, targets, session.graph)
        QGuiApplication.clipboard().setText(code)
        session.message.emit(f"Python for {len(targets)} layer(s) copied to the clipboard")
        return code

    def export_activations(self, suffix: str, path: str | None = None) -> Path | None:
        """The layer output on screen: the raw array (``npy``) or the grid as drawn (``png``)."""
        view = self.feature_view
        if view.array is None:
            self.session.fail("Nothing to export yet: click a layer first")
            return None
        if path is None:
            layer = (self.session.layer or "activations").replace("/", "__")
            path, _ = QFileDialog.getSaveFileName(self.parent(), f"Export activations as {suffix}",
                                                  f"{layer}.{suffix}", f"{suffix.upper()} (*.{suffix})")
            if not path:
                return None
        target = Path(path)
        try:
            if suffix == "npy":
                np.save(target, view.array)
            else:
                save_output_png(view.array, target, colour_map=view.colour_map_name(), order=view.order_name(),
                                shared_scale=view.shared_scale(), symmetric=view.difference)
        except OSError as error:
            self.session.fail(f"Cannot write {target}: {error}")
            return None
        self.session.message.emit(f"Activations written to {target}")
        return target

    def export_graph(self, view: GraphView, suffix: str, path: str | None = None) -> Path | None:
        if self.session.graph is None:
            return None
        if path is None:
            default = str(Path(self.session.path or "graph").with_suffix(f".{suffix}"))
            path, _ = QFileDialog.getSaveFileName(self.parent(), f"Export graph as {suffix.upper()}", default,
                                                  f"{suffix.upper()} (*.{suffix})")
            if not path:
                return None
        try:
            export_scene(view.scene(), path)
        except OSError as error:
            self.session.fail(f"Cannot write {path}: {error}")
            return None
        self.session.message.emit(f"Graph written to {path}")
        return Path(path)
