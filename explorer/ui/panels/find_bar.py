"""Ctrl+F: find a layer by name or class; Enter / Shift+Enter step through the matches."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from explorer.model.graph import LayerGraph
from explorer.ui.session import Session


class FindBar(QWidget):
    match_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Find layer by name or class…")
        self.edit.setClearButtonEnabled(True)
        self.status = QLabel()
        previous, following, close = QToolButton(), QToolButton(), QToolButton()
        previous.setText("▲")
        previous.setToolTip("Previous match (Shift+Enter)")
        following.setText("▼")
        following.setToolTip("Next match (Enter)")
        close.setText("✕")
        close.setToolTip("Close (Esc)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(QLabel("Find:"))
        layout.addWidget(self.edit, 1)
        for widget in (previous, following, self.status, close):
            layout.addWidget(widget)
        self.edit.textChanged.connect(self._search)
        self.edit.returnPressed.connect(lambda: self.step(1))
        previous.clicked.connect(lambda: self.step(-1))
        following.clicked.connect(lambda: self.step(1))
        close.clicked.connect(self.hide)
        self.edit.installEventFilter(self)
        self.graph: LayerGraph | None = None
        self.matches: list[str] = []
        self.position = -1

    def follow(self, session: Session) -> None:
        session.graph_changed.connect(lambda: self.set_graph(session.graph))
        self.match_chosen.connect(session.select)

    def set_graph(self, graph: LayerGraph | None) -> None:
        """A new model: matches of the previous one no longer mean anything."""
        self.graph, self.matches, self.position = graph, [], -1
        self.status.setText("")
        if self.isVisible():
            self._search(self.edit.text())

    def open(self) -> None:
        self.show()
        self.edit.setFocus()
        self.edit.selectAll()
        self._search(self.edit.text())

    def _search(self, text: str) -> None:
        self.matches = [n.path for n in self.graph.find(text)] if self.graph else []
        self.position = -1
        if not text.strip():
            self.status.setText("")
        elif not self.matches:
            self.status.setText("no match")
        else:
            self.step(1)

    def step(self, direction: int) -> None:
        if not self.matches:
            return
        self.position = (self.position + direction) % len(self.matches)
        self.status.setText(f"{self.position + 1} of {len(self.matches)}")
        self.match_chosen.emit(self.matches[self.position])

    def eventFilter(self, watched, event) -> bool:
        if isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            if event.key() == Qt.Key.Key_Escape:
                self.hide()
                return True
            shifted = event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and shifted:
                self.step(-1)
                return True
        return super().eventFilter(watched, event)
