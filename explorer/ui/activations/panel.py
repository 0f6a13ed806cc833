"""The Activations dock: prepares the model inputs, asks the live tier for the session's current layer, shows it;
with a second image (B), the layer's output on B too, and A-B.

Results are cached per (inputs, layer, call site); only the newest request is ever displayed. B's output is asked
for once A's is in: the worker drops a compute when a newer one waits, and A's must not be the one dropped.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QSplitter, QVBoxLayout, QWidget

from explorer.inputs.images import ImageError, LoadedImage, Preprocessing
from explorer.inputs.sources import PreparedInput, file_input_specs, prepare_input, suggested_preprocessing
from explorer.live.cache import ActivationCache
from explorer.live.protocol import Activation, Loaded, Traced, WorkerState
from explorer.model.classes import class_names
from explorer.model.graph import InputSpec
from explorer.model.weights_graph import WEIGHTS_KIND
from explorer.ui.activations.ab_compare import DIFFERENCE, A, ABCompare, B
from explorer.ui.activations.feature_view import MESSAGE, FeatureView
from explorer.ui.activations.input_panel import InputPanel
from explorer.ui.layer_numbers import PerLayerNumbers
from explorer.ui.live_client import LiveClient
from explorer.ui.session import Session
from explorer.ui.text import escape, tooltip

PROGRESS_AFTER_MS = 300
STATE_TEXT = {WorkerState.STARTING: "TensorFlow starting…", WorkerState.LOADING: "loading model…",
              WorkerState.READY: "ready", WorkerState.COMPUTING: "computing…",
              WorkerState.EXPORTING: "exporting and verifying…", WorkerState.FAILED: "failed",
              WorkerState.STOPPED: "stopped"}


class ActivationsPanel(QWidget):
    shown = Signal(str)  # a layer's output is on screen (tests and benchmarks wait for it)
    failed = Signal(str)
    image_requested = Signal()  # the Open Image… button
    image_b_requested = Signal()  # the Open Image B… button

    def __init__(self, session: Session, client: LiveClient, numbers: PerLayerNumbers,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.client = client
        self.cache = ActivationCache()
        self.specs: list[InputSpec] = []
        self._load_request = 0  # the live tier's answers to older loads belong to another file
        self.latest_request = 0
        self.class_names: list[str] = []
        self.outputs: list[np.ndarray] = []
        self.outputs_b: list[np.ndarray] = []  # the same layer on input B
        self.latest_b_request = 0
        self._shown_key: tuple | None = None  # the key of ``outputs``
        self._lost_request = False
        self._request_keys: dict[int, tuple] = {}

        self.inputs = InputPanel()
        self.title = QLabel("No layer selected")
        self.title.setObjectName("activationTitle")
        self.call_site = QComboBox()
        self.call_site.setToolTip("Which call of a shared layer (or of the nested model holding it)")
        self.output_index = QComboBox()
        self.output_index.setToolTip("Which output of a layer with several")
        self.call_site.hide()
        self.output_index.hide()
        self.view = FeatureView()
        self.compare = ABCompare(session, numbers, self.view, self)
        self.status = QLabel()
        self.status.setObjectName("liveStatus")
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(120)
        self.progress.hide()
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.call_site)
        header.addWidget(self.output_index)
        header.addWidget(self.progress)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(self.view)
        body.addWidget(self.compare.ranking)
        body.setStretchFactor(0, 1)
        body.setSizes([440, 180])
        layout.addWidget(self.inputs)
        layout.addLayout(header)
        layout.addWidget(self.compare.bar)
        layout.addWidget(body, 1)
        self._progress_timer = QTimer(self, singleShot=True, interval=PROGRESS_AFTER_MS)
        self._progress_timer.timeout.connect(self.progress.show)

        self.inputs.changed.connect(self._prepare_inputs)
        self.inputs.image_requested.connect(self.image_requested)
        self.inputs.image_b_requested.connect(self.image_b_requested)
        self.inputs.image_b_closed.connect(lambda: session.set_image_b(None))
        self.compare.changed.connect(self._display)
        self.call_site.currentIndexChanged.connect(
            lambda _i: session.set_call_site(self.call_site.currentData()) if self.call_site.count() else None)
        self.output_index.currentIndexChanged.connect(lambda _i: self._display())
        session.file_opened.connect(self._file_opened)
        session.live_load_requested.connect(self._load)
        session.selection_changed.connect(self.show_current_layer)
        session.image_changed.connect(self._image_changed)
        session.image_b_changed.connect(self._image_b_changed)
        session.inputs_changed.connect(self._request)
        session.inputs_b_changed.connect(self._request_b)
        client.model_loaded.connect(self._model_loaded)
        client.traced.connect(self._traced)
        client.activation_ready.connect(self._activation_ready)
        client.request_failed.connect(self._request_failed)
        client.worker_lost.connect(self._worker_lost)
        client.status_changed.connect(self._set_status)

    # -- model and image
    def _file_opened(self) -> None:
        """Forget the old model's results (a traced structure of the same file changes nothing here)."""
        self.cache.clear()
        self.outputs, self.outputs_b, self._shown_key = [], [], None
        self.output_index.clear()
        self.output_index.hide()
        self.class_names = class_names(self.session.path)
        self.specs = file_input_specs(self.session.graph)
        self.inputs.set_specs(self.specs, self._suggestion())
        self.title.setText("No layer selected")
        self.call_site.clear()
        self.call_site.hide()
        self.view.show_message("Waiting for the graph to be drawn…")
        # Once the canvas has started the layout (graph_changed follows): it runs while the input is prepared.
        QTimer.singleShot(0, self._prepare_inputs)

    def _load(self) -> None:
        session = self.session
        if session.path is None:
            return
        if session.graph is not None and session.graph.kind == WEIGHTS_KIND and not session.build:
            self.view.show_message("A weights-only file has no architecture to compute with: open the model, its "
                                   "architecture JSON with these weights beside it, or build it from code (File > "
                                   "Build Model from Code…).")
            return
        if session.refusal:
            self.view.show_message(f"{session.refusal}. The structure is drawn; nothing can be computed on it.")
            return
        if session.refused:
            # The structure is shown, but nothing from this file runs without consent.
            self.view.show_message("Activations are off for this file: the safety check found code or paths in "
                                   "it (see the Findings panel). Trust the file to load it into Keras.")
            return
        if session.layer is None:
            self.view.show_message("Click a layer to see what it computes on the input image.")
        self._load_request = self.client.load(str(session.path), session.runs_code, session.custom_objects,
                                              session.build, session.graph.weights_file if session.graph else None)
        self._request()

    def restyle(self) -> None:
        self.view.restyle()

    def set_cache_budget(self, budget: int) -> None:
        self.cache.set_budget(budget)

    @property
    def cache_budget(self) -> int:
        return self.cache.budget

    def _image_changed(self) -> None:
        self.inputs.set_image_name(str(self.session.image_path))
        self._prepare_inputs()

    def _image_b_changed(self) -> None:
        image = self.session.image_b
        self.inputs.set_image_b_name(image.source if image is not None else None)
        self._prepare_b()

    def _suggestion(self) -> Preprocessing:
        graph = self.session.graph
        return suggested_preprocessing(graph) if graph is not None else Preprocessing("unit")

    def _traced(self, traced: Traced) -> None:
        if traced.request == self._load_request:
            self.session.apply_trace(traced.trace)

    def _model_loaded(self, loaded: Loaded) -> None:
        if loaded.request != self._load_request:
            return
        self.session.set_live_ready()
        if list(loaded.inputs) != self.specs:  # the live model is authoritative (e.g. subclassed models)
            self.specs = list(loaded.inputs)
            self.inputs.set_specs(self.specs, self._suggestion())
            self._prepare_inputs()
        elif self._lost_request:  # the worker was restarted: ask again for what is on screen
            self._request()
        self._lost_request = False

    def _worker_lost(self, reason: str) -> None:
        self._lost_request = self.latest_request > 0
        self._request_keys.clear()  # never answered: asked again once the model is back
        self._stop_progress()
        self._set_status(WorkerState.FAILED, f"worker restarted: {reason}")
        self.view.show_message(f"The live tier stopped ({reason}). It is restarting; the layer is recomputed "
                               "once the model is loaded again.")

    def _prepare_inputs(self) -> None:
        """A's inputs, then B's (A's request comes first, and asks for B's once answered)."""
        prepared = self._prepared(self.session.image)
        if prepared is not None:
            self.inputs.show_preview(_preview(prepared))
        self.session.set_inputs(prepared or {})
        self._prepare_b()

    def _prepare_b(self) -> None:
        """B's inputs: the second image where A has its image, the same arrays for the other inputs."""
        image = self.session.image_b
        if image is None and not self.session.inputs_b:
            return  # no B before either
        prepared = self._prepared(image) if image is not None else None
        self.inputs.show_preview_b(_preview(prepared))
        self.session.set_inputs_b(prepared or {})

    def _prepared(self, image: LoadedImage | None) -> dict[str, PreparedInput] | None:
        """Every model input fed from ``image`` (None, the reason shown, when one cannot be)."""
        prepared = {}
        try:
            for spec in self.specs:
                source = self.inputs.sources.get(spec.name)
                prepared[spec.name] = prepare_input(spec, source, image, self.inputs.preprocessing(),
                                                    self.inputs.fit_mode())
        except (ImageError, ValueError) as error:
            self.view.show_message(str(error))
            return None
        return prepared

    # -- layers
    def show_current_layer(self) -> None:
        """Show (compute, or take from the cache) the session's current layer at its call site."""
        path, graph = self.session.layer, self.session.graph
        if path is None or graph is None or path not in graph:
            return
        sites = graph.call_sites(path)
        self.call_site.blockSignals(True)
        self.call_site.clear()
        for index, site in enumerate(sites):
            self.call_site.addItem(f"call {index + 1} of {len(sites)}", site)
        self.call_site.setCurrentIndex(sites.index(self.session.call_site) if self.session.call_site in sites else 0)
        self.call_site.setVisible(len(sites) > 1)
        self.call_site.blockSignals(False)
        self._request()

    def _key(self) -> tuple | None:
        session = self.session
        if session.layer is None or session.call_site is None or not session.inputs:
            return None
        return (session.inputs_version, session.layer, tuple(session.call_site))

    def _key_b(self) -> tuple | None:
        session = self.session
        if session.layer is None or session.call_site is None or not session.inputs_b:
            return None
        return (B, session.inputs_b_version, session.layer, tuple(session.call_site))

    def _request(self) -> None:
        key = self._key()
        if key is not None:
            self.title.setText(f"<b>{escape(key[1])}</b>")  # also when refused: the message below says why
        if key is None or self.session.refused or self.session.refusal:
            return
        cached = self.cache.get(key)
        if cached is not None:
            self.latest_request = -1
            self._show(key, cached)
            return
        if self.view.pages.currentIndex() == MESSAGE:  # no output on screen: say what is coming
            self.view.show_message(f"Computing {key[1]}…")
        self.latest_request = self.client.compute(key[1], key[2], self.session.input_arrays())
        self._request_keys[self.latest_request] = key  # results are cached under the inputs they were made for
        self._progress_timer.start()
        self.view.prepare()  # while the worker computes

    def _request_b(self) -> None:
        """B's output of the layer whose A output is on screen (from the cache, or asked for)."""
        key = self._key_b()
        self.compare.show_bar(key is not None and bool(self.outputs))
        if key is None:
            if self.outputs_b:
                self.outputs_b = []
                self._display()
            return
        if self._shown_key != self._key():
            return  # A's output is on its way: B is asked for once it is in
        cached = self.cache.get(key)
        if cached is not None:
            if cached is not self.outputs_b:
                self.outputs_b = cached
                self._display()
            return
        if key in self._request_keys.values():
            return
        self.latest_b_request = self.client.compute(key[2], key[3], self.session.input_arrays_b())
        self._request_keys[self.latest_b_request] = key
        self._progress_timer.start()

    def _activation_ready(self, activation: Activation) -> None:
        key = self._request_keys.pop(activation.request, None)
        for older in [r for r in self._request_keys if r < activation.request]:
            del self._request_keys[older]  # superseded in the worker: never answered
        if key is None:
            return
        self.cache.put(key, activation.outputs)
        if activation.request == self.latest_request:
            self._stop_progress()
            self._show(key, activation.outputs)
        elif activation.request == self.latest_b_request and key == self._key_b():
            self._stop_progress()
            self.outputs_b = activation.outputs
            self._display()

    def _request_failed(self, request: int, message: str) -> None:
        if request == self.latest_request or (request == self.latest_b_request and self.compare.mode() != A):
            self.view.show_message(f"Cannot compute this layer: {message}")
        if request in (self.latest_request, self.latest_b_request):
            self._stop_progress()
            self.failed.emit(message)

    def _show(self, key: tuple, outputs: list[np.ndarray]) -> None:
        self.outputs, self._shown_key = outputs, key
        key_b = self._key_b()
        self.outputs_b = (self.cache.get(key_b) if key_b else None) or []
        self.output_index.blockSignals(True)
        self.output_index.clear()
        for index, output in enumerate(outputs):
            self.output_index.addItem(f"output {index} {tuple(output.shape)}")
        self.output_index.setVisible(len(outputs) > 1)
        self.output_index.blockSignals(False)
        self._display()
        self._request_b()

    def _display(self) -> None:
        """The current layer's output: on A, or with B on B or A-B as the A/B bar says."""
        layer, graph = self.session.layer, self.session.graph
        if not self.outputs or layer is None:
            return
        index = max(0, self.output_index.currentIndex())
        output = self.outputs[index]
        second = self.outputs_b[index] if index < len(self.outputs_b) else None
        shown, why = self.compare.pick(layer, output, second)
        if shown is None:
            self.view.show_message(why)
            return
        mode = self.compare.mode()
        inputs = self.session.inputs_b if mode == B else self.session.inputs
        pictures = [p.picture for p in inputs.values() if p.picture is not None]
        names = self.class_names if graph and layer in {p.layer for p in graph.outputs} else []
        self.view.show_output(layer, shown, pictures[0] if pictures else None, names, difference=mode == DIFFERENCE)
        self.compare.compared(output, second)
        self.shown.emit(layer)

    def _stop_progress(self) -> None:
        self._progress_timer.stop()
        self.progress.hide()

    def _set_status(self, state: str, detail: str = "") -> None:
        text = STATE_TEXT.get(state, state)
        if state == WorkerState.COMPUTING and detail:
            text = f"computing {detail}…"
        elif state == WorkerState.FAILED and detail:
            text = f"failed: {detail}"
        self.status.setText(f"Live: {text}")
        self.status.setToolTip(tooltip(detail))


def _preview(prepared: dict[str, PreparedInput] | None) -> np.ndarray | None:
    previews = [p.preview for p in (prepared or {}).values() if p.preview is not None]
    return previews[0] if previews else None
