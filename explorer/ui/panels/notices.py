"""A strip above the graph for what the user must know about the open file (subclassed model, findings)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from explorer.model.graph import LayerGraph
from explorer.model.weights_graph import WEIGHTS_KIND
from explorer.ui.session import Session
from explorer.ui.theme import notice_style

INFO, WARNING = "info", "warning"


def notice_for(graph: LayerGraph, trusted: bool) -> tuple[str, str]:
    """(kind, text) of the notice for this file; empty text when there is nothing to say."""
    parts = []
    if graph.kind == WEIGHTS_KIND:
        parts.append("This file holds weights only (save_weights): the architecture lives in code, or in an "
                     "architecture JSON saved beside it (open that one to see the graph). Shown: each stored layer "
                     "with its variables and the exact totals; no connections.")
    if graph.kind == "subclassed" and graph.trace:
        parts.append("This is a subclassed model: its forward pass is a Python method, so the file stores no "
                     "connections. The graph below was recovered by the live tier, not read from the file: "
                     f"{graph.trace}.")
    elif graph.kind == "subclassed":
        parts.append("This is a subclassed model: its forward pass is a Python method (call), not a data "
                     "structure, so the file stores no connections between its layers. Shown instead: its "
                     "constructor config and build shape (Inspector) and the weights of its tracked "
                     "sublayers; no connection is guessed.")
    if graph.problems:
        first = graph.problems[0]
        parts.append(f"Keras would refuse to load this file as it is: {len(graph.problems)} problem(s), marked in "
                     f"red on the graph (Findings panel). First: {first}. The structure is drawn where it can be.")
    if graph.findings and not trusted:
        parts.append(f"The safety check found {len(graph.findings)} thing(s) in this file that could run code "
                     "or touch your system (Findings panel). The structure is shown, since that runs no "
                     "code; activations stay off unless you trust this file.")
    elif graph.findings:
        parts.append("You trusted this file: its code runs in the live tier's separate process.")
    return (WARNING if graph.findings or graph.problems else INFO), " ".join(parts)


class NoticeBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)  # the file's own strings may appear here
        self.button = QPushButton()
        self.button.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 6, 8, 6)
        row.addWidget(self.text, 1)
        row.addWidget(self.button)
        self._action: Callable[[], None] | None = None
        self.kind = INFO
        self.button.clicked.connect(lambda: self._action() if self._action else None)
        self.hide()

    def follow(self, session: Session, ask_trust: Callable[[], None]) -> None:
        """Show the notice of the open file; its button asks for trust (``ask_trust``)."""
        def refresh() -> None:
            if session.graph is None:
                return self.hide()
            trusted = session.trusted
            kind, text = notice_for(session.graph, trusted)
            if not text:
                return self.hide()
            button = "Trust this file…" if session.graph.findings and not trusted else ""
            return self.show_notice(kind, text, button, ask_trust)

        session.graph_changed.connect(refresh)
        session.trust_changed.connect(refresh)

    def show_notice(self, kind: str, text: str, button: str = "", action: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self.setObjectName(f"notice_{kind}")
        self.restyle()
        self.setAutoFillBackground(True)
        self.text.setText(text)
        self._action = action
        self.button.setText(button)
        self.button.setVisible(bool(button))
        self.show()

    def restyle(self) -> None:
        self.setStyleSheet(f"NoticeBar, QLabel {{ {notice_style(self.kind)} }}")
