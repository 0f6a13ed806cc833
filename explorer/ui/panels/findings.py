"""The Findings panel: what Keras would refuse in the open file and what the static safety check found in it,
one line each."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QListWidget, QWidget

from explorer.ui.session import Session


class FindingsList(QListWidget):
    presence_changed = Signal(bool)  # whether the open file has findings (the dock shows only then)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findingsList")

    def follow(self, session: Session) -> None:
        def refresh() -> None:
            graph = session.graph
            findings = graph.findings if graph is not None else ()
            problems = graph.problems if graph is not None else ()
            self.clear()
            self.addItems([f"Keras would refuse: {problem}" for problem in problems])
            self.addItems([str(finding) for finding in findings])
            self.presence_changed.emit(bool(findings or problems))

        session.graph_changed.connect(refresh)
