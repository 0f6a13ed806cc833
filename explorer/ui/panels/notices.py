"""A strip above the graph for what the user must know about the open file (subclassed model, findings)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

STYLES = {
    "info": "background: #e8f1fb; color: #1d3f63; border-bottom: 1px solid #b8cfe8;",
    "warning": "background: #fff4d6; color: #5c4400; border-bottom: 1px solid #e6cf8f;",
}


class NoticeBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(self.text.textFormat().PlainText)  # the file's own strings may appear here
        self.button = QPushButton()
        self.button.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 6, 8, 6)
        row.addWidget(self.text, 1)
        row.addWidget(self.button)
        self._action: Callable[[], None] | None = None
        self.button.clicked.connect(lambda: self._action() if self._action else None)
        self.hide()

    def show_notice(self, kind: str, text: str, button: str = "", action: Callable[[], None] | None = None) -> None:
        self.setObjectName(f"notice_{kind}")
        self.setStyleSheet(f"NoticeBar, QLabel {{ {STYLES[kind]} }}")
        self.setAutoFillBackground(True)
        self.text.setText(text)
        self._action = action
        self.button.setText(button)
        self.button.setVisible(bool(button))
        self.show()
