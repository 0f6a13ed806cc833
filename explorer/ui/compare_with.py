"""File > Compare With…: a second checkpoint of the open model (the same architecture, other weights). The two
files are compared (explorer.model.compare) before anything loads the second one, and a file the safety check
flags needs the user's trust, as the open file does."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QWidget

from explorer.model.compare import architecture_mismatches, refusal
from explorer.model.files import load_graph
from explorer.model.graph import LayerGraph
from explorer.ui.session import Session, reason_of
from explorer.ui.trust import confirm_trust


class CompareWith(QObject):
    def __init__(self, session: Session, model_filter: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.model_filter = session, model_filter

    def choose(self, path: str | Path | None = None) -> None:
        """Ask for the other checkpoint (unless given), read it in the background; the session takes it, or the
        user is told why not."""
        session = self.session
        if session.graph is None or session.path is None:
            session.fail("Open a model first, then the checkpoint to compare it with")
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.parent(), f"Compare {session.path.name} with another "
                                                  "checkpoint of it", str(session.path.parent), self.model_filter)
            if not path:
                return
        other = Path(path)
        if other.resolve() == session.path:
            session.fail(f"{other.name} is the open file: choose another checkpoint of it")
            return
        model = session.path
        session.message.emit(f"Reading {other.name}…")

        def work(_cancelled: threading.Event) -> LayerGraph:
            return load_graph(other)

        session.tasks.submit("other checkpoint", work, lambda graph: self._read(model, other, graph),
                             lambda error: session.fail(f"Cannot open {other.name}: {reason_of(error)}", error))

    def _read(self, model: Path, path: Path, graph: LayerGraph) -> None:
        session = self.session
        if session.path != model or session.graph is None:
            return  # another model was opened meanwhile
        mismatches = architecture_mismatches(session.graph, graph)
        if mismatches:
            session.fail(refusal(session.graph, graph, mismatches))
            return
        if graph.findings and not session.trust_store.is_trusted(path):
            if not confirm_trust(self.parent(), path.name, graph.findings):
                session.message.emit(f"Not compared with {path.name}: it was not trusted")
                return
            session.trust_store.remember(path)
        session.set_other(path)
