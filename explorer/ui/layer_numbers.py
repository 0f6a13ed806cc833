"""Per-layer numbers for the session: asked of the live tier (one pass through the model per measure and input),
kept for the inputs they were made for, and the chosen colour-by measure's numbers handed to the session. A
folder's statistics (Layer Statistics over a Folder…) join as measures of their own."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from PySide6.QtCore import QObject, QTimer, Signal

from explorer.live.protocol import LayerMeasure, LayerNumbers
from explorer.ui.layer_values import LayerKey, LayerValues
from explorer.ui.live_client import LiveClient
from explorer.ui.session import Session

KEPT = 32  # answers kept (each a few numbers per layer)
CHECKPOINT_MEASURES = (LayerMeasure.CHECKPOINT, LayerMeasure.WEIGHT_CHANGE)


class PerLayerNumbers(QObject):
    answered = Signal(str)  # a measure's numbers for the current inputs are in ``values``
    failed = Signal(str, str)  # measure, the worker's one line
    asking = Signal(str)  # a measure's numbers were asked of the live tier
    folder_changed = Signal()  # folder measures came or went

    def __init__(self, session: Session, client: LiveClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.client = session, client
        self._answers: OrderedDict[tuple, dict[LayerKey, float]] = OrderedDict()
        self._pending: dict[int, tuple] = {}  # request id -> key of what it asks
        self.folder: dict[str, LayerValues] = {}  # by measure name
        self.folder_images = 0  # the folder's numbers are over this many images
        # Coalesced: preparing A and B inputs, or a new file, changes several things in one go.
        self._refresh = QTimer(self, singleShot=True, interval=0)
        self._refresh.timeout.connect(self._colour)
        session.file_opened.connect(self._file_opened)
        session.colour_by_changed.connect(self._colour)
        for signal in (session.inputs_changed, session.inputs_b_changed, session.other_changed, session.model_ready,
                       self.folder_changed):
            signal.connect(self._refresh.start)
        client.layer_numbers_ready.connect(self._answer)
        client.request_failed.connect(self._request_failed)
        client.worker_lost.connect(lambda _reason: self._pending.clear())  # the restarted worker loads again

    # -- what is available
    def available(self, measure: str) -> str | None:
        """Why ``measure`` cannot be shown now (None: it can)."""
        session = self.session
        if measure in self.folder:
            return None
        if session.refusal:
            return session.refusal
        if session.refused:
            return "needs the file trusted (the safety check found code in it)"
        if measure == LayerMeasure.SIMILARITY and not session.inputs_b:
            return "needs a second image: File > Open Image B…"
        if measure in CHECKPOINT_MEASURES and session.other_path is None:
            return "needs a second checkpoint: File > Compare With…"
        if measure not in LayerMeasure.ALL:
            return "unknown measure"
        return None

    def add_folder(self, measures: dict[str, dict[LayerKey, float]], images: int) -> None:
        self.folder = {name: LayerValues(name, values) for name, values in measures.items()}
        self.folder_images = images
        self.folder_changed.emit()

    # -- the live tier's numbers
    def values(self, measure: str) -> Mapping[LayerKey, float] | None:
        """The numbers of ``measure`` for the session's current inputs, if answered."""
        if measure in self.folder:
            return self.folder[measure].values
        return self._answers.get(self._key(measure))

    def ask(self, measure: str) -> None:
        """Ask the live tier unless answered or asked already; ``answered`` or ``failed`` follows."""
        session = self.session
        key = self._key(measure)
        if measure in self.folder or key in self._answers or key in self._pending.values():
            return
        if not session.live_ready or not session.inputs or self.available(measure):
            return  # asked again when the model is loaded and the inputs are prepared
        other = str(session.other_path) if measure in CHECKPOINT_MEASURES else None
        second = session.input_arrays_b() if measure == LayerMeasure.SIMILARITY else None
        trusted = other is not None and session.trust_store.is_trusted(session.other_path)
        request = self.client.layer_numbers(measure, session.input_arrays(), second, other, trusted)
        self._pending[request] = key
        self.asking.emit(measure)

    def _key(self, measure: str) -> tuple:
        """What the numbers depend on: the inputs (not for the weights' measures), B, the other checkpoint."""
        session = self.session
        inputs = () if measure in LayerMeasure.BY_LAYER else (session.inputs_version,)
        second = (session.inputs_b_version,) if measure == LayerMeasure.SIMILARITY else ()
        other = (str(session.other_path),) if measure in CHECKPOINT_MEASURES else ()
        return (measure, *inputs, *second, *other)

    def _answer(self, answer: LayerNumbers) -> None:
        key = self._pending.pop(answer.request, None)
        if key is None:
            return  # asked for another file
        self._answers[key] = dict(answer.values)
        while len(self._answers) > KEPT:
            self._answers.popitem(last=False)
        if key == self._key(answer.measure):
            self._colour()
            self.answered.emit(answer.measure)

    def _request_failed(self, request: int, message: str) -> None:
        key = self._pending.pop(request, None)
        if key is None:
            return
        measure = key[0]
        if measure == self.session.colour_by:
            self.session.fail(f"Cannot colour the graph by {measure}: {message}")
            self.session.set_colour_by(None)
        self.failed.emit(measure, message)

    # -- the colour-by measure
    def _colour(self) -> None:
        """Give the session the chosen measure's numbers, asking for them first when they are not in."""
        session = self.session
        measure = session.colour_by
        if measure is None:
            session.set_numbers(None)
            return
        why = self.available(measure)
        if why:
            session.message.emit(f"The graph is no longer coloured by {measure}: it {why}")
            session.set_colour_by(None)
            return
        values = self.values(measure)
        if values is None:
            self.ask(measure)  # the numbers shown so far stay until the new ones are in
            return
        shown = session.numbers
        if shown is None or shown.measure != measure or shown.values is not values:
            session.set_numbers(LayerValues(measure, values, measure in LayerMeasure.BY_LAYER))

    def pending(self) -> bool:
        """Whether the chosen measure's numbers for the current inputs are still being computed."""
        return self.session.colour_by is not None and self._key(self.session.colour_by) in self._pending.values()

    def _file_opened(self) -> None:
        self._answers.clear()
        self._pending.clear()
        if self.folder:
            self.folder = {}  # the previous model's layers
            self.folder_changed.emit()
        self._refresh.start()
