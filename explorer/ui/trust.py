"""What the user must know about the open file and what they allow it to do: the subclassed-model notice,
the safety findings, per-file trust (by SHA-256), custom objects, and the structure traced by the live tier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from explorer.live.protocol import Traced
from explorer.model.graph import LayerGraph
from explorer.model.model_file import file_digest
from explorer.model.traced import traced_graph

if TYPE_CHECKING:
    from explorer.ui.main_window import MainWindow


class FileTrust:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self._digests: dict[tuple, str] = {}  # (path, size, mtime) -> SHA-256: hash each file version once

    def _digest(self, path: Path) -> str:
        status = path.stat()
        key = (str(path), status.st_size, status.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]

    def traced(self, traced: Traced) -> None:
        """A subclassed model was traced by the live tier: show what was observed, labelled as such."""
        window = self.window
        if window.graph is None or window.graph.kind not in ("subclassed", "unknown") or window.graph.trace:
            return
        window.graph = traced_graph(traced.trace, window.graph)
        window.activations.graph = window.graph
        window.summary.set_graph(window.graph)
        window.inspector.show_model(window.graph)
        window.find_bar.set_graph(window.graph)
        self.show_notices(window.graph)
        window.relayout(keep_view=False)

    def choose_custom_objects(self) -> None:
        """Point the live tier at the Python file that defines this model's classes (runs it: needs trust)."""
        window = self.window
        if window.graph is None or window.model_path is None:
            return
        path, _ = QFileDialog.getOpenFileName(window, "Python file defining the model's classes",
                                              str(window.model_path.parent), "Python (*.py)")
        if path and (self.is_trusted() or self.trust_current_file(extra=f"the Python file {path}", load=False)):
            window.activations.set_model(window.model_path, window.graph, trusted=True, custom_objects=path)

    def is_trusted(self) -> bool:
        window = self.window
        if window.graph is None or not window.graph.findings or window.model_path is None:
            return False
        return self._digest(window.model_path) in self._trusted_digests()

    def _trusted_digests(self) -> list[str]:
        window = self.window
        value = window.settings.value("trustedFileDigests", [])
        return [value] if isinstance(value, str) else list(value or [])

    def trust_current_file(self, extra: str = "", load: bool = True) -> bool:
        """Ask, naming what would run; on yes remember this exact file (by its SHA-256) and load it live."""
        window = self.window
        if window.graph is None or window.model_path is None:
            return False
        listing = "\n".join(f"• {finding}" for finding in window.graph.findings[:20])
        if extra:
            listing += f"\n• {extra}"
        more = f"\n… and {len(window.graph.findings) - 20} more" if len(window.graph.findings) > 20 else ""
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Trust this file?",
            f"Loading {window.model_path.name} into Keras would run or use what the safety check found:\n\n"
            f"{listing}{more}\n\nOnly trust files whose author you trust. This exact file (by its content "
            "hash) will be remembered; any change to it needs trusting again.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, window)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the findings quote the file's own strings
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText("Trust and run it")
        if box.exec() != QMessageBox.StandardButton.Yes:
            return False
        window.settings.setValue("trustedFileDigests", [*self._trusted_digests(), self._digest(window.model_path)])
        self.show_notices(window.graph)
        if load:
            window.activations.set_model(window.model_path, window.graph, trusted=True)
        return True

    def show_notices(self, graph: LayerGraph) -> None:
        window = self.window
        window.findings.clear()
        window.findings.addItems([str(finding) for finding in graph.findings])
        window.findings_dock.setVisible(bool(graph.findings))
        parts = []
        if graph.kind == "subclassed" and graph.trace:
            parts.append("This is a subclassed model: its forward pass is a Python method, so the file stores no "
                         f"connections. The graph below was recovered by the live tier, not read from the file: "
                         f"{graph.trace}.")
        elif graph.kind == "subclassed":
            parts.append("This is a subclassed model: its forward pass is a Python method (call), not a data "
                         "structure, so the file stores no connections between its layers. Shown instead: its "
                         "constructor config and build shape (Inspector) and the weights of its tracked "
                         "sublayers; no connection is guessed.")
        trusted = self.is_trusted()
        if graph.findings and not trusted:
            parts.append(f"The safety check found {len(graph.findings)} thing(s) in this file that could run code "
                         "or touch your system (Findings panel). The structure is shown, since that runs no "
                         "code; activations stay off unless you trust this file.")
        elif graph.findings:
            parts.append("You trusted this file: its code runs in the live tier's separate process.")
        if not parts:
            window.notice.hide()
            return
        kind = "warning" if graph.findings else "info"
        button = "Trust this file…" if graph.findings and not trusted else ""
        window.notice.show_notice(kind, " ".join(parts), button, self.trust_current_file)
