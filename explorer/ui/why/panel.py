"""The Why dock: an attribution map of the session's input for a class, computed by the live tier
(explorer.runtime.attribution): Grad-CAM and Grad-CAM++ on a layer, saliency, SmoothGrad and Integrated Gradients
to the input.

The worker is asked only while the panel is visible, and only when something the map depends on changed; only
the newest request is ever displayed. The picture on screen is the image Export PNG writes
(feature_export.attribution_image), so the file looks exactly like the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.inputs.images import ImageError, Preprocessing
from explorer.inputs.sources import BASELINES, PreparedInput, baseline_input
from explorer.live.protocol import Explained
from explorer.model.classes import class_names
from explorer.model.graph import InputSpec, LayerGraph
from explorer.runtime.attribution import (
    GRADCAM,
    GRADCAM_PP,
    INTEGRATED,
    LAYER_METHODS,
    METHODS,
    SALIENCY,
    SMOOTHGRAD,
)
from explorer.ui.activations.feature_export import attribution_image
from explorer.ui.live_client import LiveClient
from explorer.ui.session import Session
from explorer.ui.why.picture import FittedPicture, to_pixmap

METHOD_LABELS = {GRADCAM: "Grad-CAM", GRADCAM_PP: "Grad-CAM++", SALIENCY: "Saliency", SMOOTHGRAD: "SmoothGrad",
                 INTEGRATED: "Integrated Gradients"}
TOP_CLASSES = 10
DEFAULT_STEPS = 64
DEFAULT_OPACITY = 50  # percent
COLOUR_MAP = "inferno"
REFRESH_MS = 100  # a burst of changes (a file opening, spin box arrows) becomes one request
DEFAULT_LAYER = "the last layer with a spatial output"
NO_MODEL = "Open a model to see why it scores a class."
WAITING = "Waiting for the live tier to load the model…"


def spatial_output(graph: LayerGraph, layer: str, call_site: tuple[int, ...] | None) -> bool:
    """Whether the layer's (first) output at this call site is a map (H, W, channels), as Grad-CAM needs."""
    node = graph.node(layer)
    call = call_site[-1] if call_site else 0
    shapes = node.output_shapes[call] if call < len(node.output_shapes) else ()
    return bool(shapes) and shapes[0] is not None and len(shapes[0]) == 4  # with the batch axis


class WhyPanel(QWidget):
    shown = Signal()  # a map is on screen (tests wait for it)

    def __init__(self, session: Session, client: LiveClient, preprocessing: Callable[[], Preprocessing],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.client = client
        self.preprocessing = preprocessing  # the Activations inputs' preset: the IG baseline is preprocessed alike
        self.result: Explained | None = None
        self.image: Image.Image | None = None  # on screen, and what Export PNG writes
        self.latest_request = 0
        self.class_names: list[str] = []
        self._on_screen = True  # set_on_screen: False while its dock is behind another tab
        self._asked: tuple | None = None  # what the latest request was made for: the same is never asked twice
        self._context: tuple[np.ndarray | None, str] = (None, "")  # the latest request's picture and layer note
        self._picture: np.ndarray | None = None  # the fitted picture the result was computed on
        self._note = ""  # which layer Grad-CAM used instead of the selected one, and why
        self._class: int | None = None  # None: the top-1

        self.method = QComboBox()
        for method in METHODS:
            self.method.addItem(METHOD_LABELS[method], method)
        self.method.setToolTip("Grad-CAM weighs the selected layer's maps (the last spatial layer if the selected "
                               "one is not spatial); the others attribute to the input pixels")
        self.class_choice = QComboBox()
        self.class_choice.addItem("top-1", None)
        self.class_choice.setToolTip("The class whose score is explained: its logit when the model ends in a softmax")
        # Class names come from the file: a long one must not widen the dock.
        self.class_choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_choice.setMinimumContentsLength(16)
        self.steps = QSpinBox()
        self.steps.setRange(1, 1024)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setToolTip("Integrated Gradients: points on the path from the baseline to the input")
        self.baseline = QComboBox()
        self.baseline.addItems(BASELINES)
        self.baseline.setToolTip("Integrated Gradients: where the path starts (a black or a blurred picture)")
        self.ig_options = QWidget()
        ig_row = QHBoxLayout(self.ig_options)
        ig_row.setContentsMargins(0, 0, 0, 0)
        for label, widget in (("Steps", self.steps), ("Baseline", self.baseline)):
            ig_row.addWidget(QLabel(label))
            ig_row.addWidget(widget)
        self.ig_options.hide()
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(DEFAULT_OPACITY)
        self.opacity.setMaximumWidth(160)
        self.opacity.setToolTip("How much of the map covers the picture")
        self.export_png_button = QPushButton("Export PNG…")
        self.export_npy_button = QPushButton("Export .npy…")
        self.export_npy_button.setToolTip("The raw map: the layer's resolution for Grad-CAM, the input's otherwise")
        self.status = QLabel()
        self.status.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # "computing Integrated Gradients…" comes and goes: it must not widen the dock.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.view = FittedPicture()
        self.low, self.high = QLabel(), QLabel()
        self.colour_bar = QLabel()
        self.colour_bar.setScaledContents(True)
        self.colour_bar.setFixedHeight(12)
        self.colour_bar.setToolTip("The map's colours, from its lowest value (left) to its highest (right)")
        self.caption = QLabel()
        self.caption.setTextFormat(Qt.TextFormat.PlainText)  # layer and class names come from the file
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        choices = QHBoxLayout()
        for label, widget in (("Method", self.method), ("Class", self.class_choice)):
            choices.addWidget(QLabel(label))
            choices.addWidget(widget)
        choices.addWidget(self.ig_options)
        choices.addStretch(1)
        drawing = QHBoxLayout()
        drawing.addWidget(QLabel("Opacity"))
        drawing.addWidget(self.opacity)
        drawing.addWidget(self.status, 1)
        drawing.addWidget(self.export_png_button)
        drawing.addWidget(self.export_npy_button)
        scale = QHBoxLayout()
        scale.addWidget(self.low)
        scale.addWidget(self.colour_bar, 1)
        scale.addWidget(self.high)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(choices)
        layout.addLayout(drawing)
        layout.addWidget(self.view, 1)
        layout.addLayout(scale)
        layout.addWidget(self.caption)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh)
        self._show_message(NO_MODEL)

        self.method.currentIndexChanged.connect(self._method_changed)
        self.class_choice.currentIndexChanged.connect(self._class_chosen)
        self.steps.valueChanged.connect(self._changed)
        self.baseline.currentIndexChanged.connect(self._changed)
        self.opacity.valueChanged.connect(self._draw)
        self.export_png_button.clicked.connect(lambda: self.export_png())  # not clicked's ``checked`` as the path
        self.export_npy_button.clicked.connect(lambda: self.export_npy())
        session.file_opened.connect(self._file_opened)
        session.model_ready.connect(self._model_ready)
        session.inputs_changed.connect(self._changed)
        session.selection_changed.connect(self._changed)
        client.explained.connect(self._explained)
        client.request_failed.connect(self._request_failed)
        client.worker_lost.connect(self._worker_lost)

    # -- what the map depends on
    def _file_opened(self) -> None:
        self._asked, self._class = None, None
        self.class_names = class_names(self.session.path) if self.session.path else []
        self.class_choice.blockSignals(True)
        self.class_choice.clear()
        self.class_choice.addItem("top-1", None)
        self.class_choice.blockSignals(False)
        self._show_message(WAITING)  # even while hidden: the previous file's map must not show again
        self._changed()

    def _model_ready(self) -> None:
        self._asked = None  # a reloaded model (a restarted worker) is asked again
        self._changed()

    def _worker_lost(self, reason: str) -> None:
        self._asked = None
        self._show_message(f"The live tier stopped ({reason}). The map is computed again once the model is back.")

    def _method_changed(self) -> None:
        self.ig_options.setVisible(self.method.currentData() == INTEGRATED)
        self._changed()

    def _class_chosen(self) -> None:
        self._class = self.class_choice.currentData()
        self._changed()

    def _changed(self) -> None:
        self._refresh_timer.start()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._changed()  # what changed while the dock was hidden

    def set_on_screen(self, shown: bool) -> None:
        """Whether its dock's tab is the one showing (a dock behind another tab stays "visible" to Qt)."""
        self._on_screen = shown
        if shown:
            self._changed()  # what changed while it was behind another tab

    # -- asking the worker
    def _refresh(self) -> None:
        """Ask for the map the controls and the session describe, unless hidden or already asked."""
        if not (self.isVisible() and self._on_screen):
            return
        problem = self._problem()
        if problem:
            self._asked = None
            self._show_message(problem)
            return
        ((name, prepared),) = self.session.inputs.items()
        method = self.method.currentData()
        layer, call_site, note = self._layer(method)
        integrated = method == INTEGRATED
        key = (self.session.inputs_version, method, layer, call_site, self._class,
               self.steps.value() if integrated else None, self.baseline.currentText() if integrated else None)
        if key == self._asked:
            self._renote(note)
            return
        baseline = None
        if integrated:
            try:
                baseline = self._baseline(name, prepared)
            except ImageError as error:
                self._asked = None
                self._show_message(str(error))
                return
        self._asked, self._context = key, (prepared.picture, note)
        self.latest_request = self.client.explain(method, layer, call_site, self._class, {name: prepared.array},
                                                  baseline, self.steps.value())
        self.status.setText(f"computing {METHOD_LABELS[method]}…")

    def _renote(self, note: str) -> None:
        """Another layer without a spatial output selected: the same map (not asked again), another note."""
        self._context = (self._context[0], note)
        if self.result is not None and note != self._note:
            self._note = note
            self.caption.setText(self._caption(self.result))

    def _problem(self) -> str | None:
        """Why no map can be asked for now, else None."""
        session = self.session
        if session.graph is None:
            return NO_MODEL
        if session.refused or session.refusal:
            return "Attribution is off for this file: nothing from it runs in Keras (see the Activations panel)."
        if len(session.inputs) > 1:
            return (f"Attribution maps need a model with one input; this one has {len(session.inputs)} "
                    f"({', '.join(session.inputs)}).")
        if not session.live_ready:
            return WAITING
        if not session.inputs:
            return "No input to explain: choose one in the Activations panel (an image: File > Open Image…)."
        return None

    def _layer(self, method: str) -> tuple[str | None, tuple[int, ...], str]:
        """Grad-CAM's layer and call site (None: the worker's default) and a note when the selection is not used;
        the gradient methods attribute to the input and take no layer."""
        session = self.session
        if method not in LAYER_METHODS:
            return None, (), ""
        if session.layer is None or session.layer not in session.graph:
            return None, (), f"{DEFAULT_LAYER} (no layer selected)"
        if not spatial_output(session.graph, session.layer, session.call_site):
            return None, (), f"{session.layer} has no spatial output (H, W, channels): {DEFAULT_LAYER} is used"
        return session.layer, tuple(session.call_site or ()), ""

    def _baseline(self, name: str, prepared: PreparedInput) -> np.ndarray:
        spec = InputSpec(name, tuple(prepared.array.shape), str(prepared.array.dtype))  # the shape actually fed
        return baseline_input(spec, prepared, self.preprocessing(), self.baseline.currentText())

    # -- answers
    def _explained(self, explained: Explained) -> None:
        if explained.request != self.latest_request:
            return
        self.result = explained
        self._picture, self._note = self._context
        self.status.clear()
        self._fill_classes(explained.scores)
        self._draw()
        self.shown.emit()

    def _request_failed(self, request: int, message: str) -> None:
        if request == self.latest_request:
            self._show_message(f"Cannot compute the map: {message}")

    def _fill_classes(self, scores: tuple[float, ...]) -> None:
        """Top-1, then the best classes by score (and the chosen one if it is not among them)."""
        best = [int(i) for i in np.argsort(scores)[::-1][:TOP_CLASSES]]
        if self._class is not None and self._class not in best and self._class < len(scores):
            best.append(self._class)
        self.class_choice.blockSignals(True)
        self.class_choice.clear()
        self.class_choice.addItem("top-1", None)
        for index in best:
            self.class_choice.addItem(f"{self._class_name(index)} ({scores[index]:.3g})", index)
        self.class_choice.setCurrentIndex(0 if self._class not in best else 1 + best.index(self._class))
        self.class_choice.blockSignals(False)

    def _class_name(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else f"class {index}"

    # -- drawing
    def _draw(self) -> None:
        """The map over the picture at the slider's opacity: redrawn here, never asked of the worker again."""
        result = self.result
        if result is None:
            return
        values = np.atleast_2d(result.map)  # a vector input's saliency is a row
        self.image = attribution_image(self._picture, values, self.opacity.value() / 100, COLOUR_MAP)
        self.view.show_picture(to_pixmap(self.image))
        if self.colour_bar.pixmap().isNull():  # pyqtgraph's colour maps load with the first map
            ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None]
            self.colour_bar.setPixmap(to_pixmap(attribution_image(None, ramp, colour_map=COLOUR_MAP, size=(256, 1))))
        self.low.setText(f"{float(np.nanmin(values)):.3g}")
        self.high.setText(f"{float(np.nanmax(values)):.3g}")
        self.caption.setText(self._caption(result))
        self._set_exportable(True)

    def _caption(self, result: Explained) -> str:
        method = METHOD_LABELS.get(result.method, result.method)
        parts = [f"{method} on {result.layer}" if result.layer else method,
                 f"class {self._class_name(result.class_index)}", f"score {result.score:.4g}"]
        if result.baseline_score is not None:  # completeness: the two agree when the steps are enough
            parts.append(f"attributions sum {float(np.sum(result.map)):.4g}, "
                         f"score difference {result.score - result.baseline_score:.4g}")
        if self._note:
            parts.append(self._note)
        if self._picture is None:
            parts.append("the input is not a picture: the map is shown alone")
        return " · ".join(parts)

    def _show_message(self, text: str) -> None:
        """A message instead of a map: nothing is on screen, so nothing can be exported either."""
        self.result, self.image = None, None
        self.status.clear()
        self.view.show_message(text)
        self.caption.clear()
        self.low.clear()
        self.high.clear()
        self._set_exportable(False)

    def _set_exportable(self, exportable: bool) -> None:
        self.export_png_button.setEnabled(exportable)
        self.export_npy_button.setEnabled(exportable)
        self.colour_bar.setVisible(exportable)

    # -- exports
    def export_png(self, path: str | None = None) -> Path | None:
        """The picture as on screen (at the picture's resolution, not the dock's)."""
        return self._export("png", path, lambda target: self.image.save(target, format="PNG"))

    def export_npy(self, path: str | None = None) -> Path | None:
        """The raw map: the layer's resolution for Grad-CAM, the input's for the gradient methods."""
        return self._export("npy", path, self._write_map)

    def _write_map(self, target: Path) -> None:
        with target.open("wb") as file:  # np.save would append .npy to a name without it
            np.save(file, self.result.map)

    def _export(self, suffix: str, path: str | None, write: Callable[[Path], None]) -> Path | None:
        if self.result is None:
            self.session.fail("Nothing to export yet: the Why panel shows no map")
            return None
        if path is None:
            default = f"{self.result.method}_{self._class_name(self.result.class_index)}.{suffix}".replace("/", "_")
            path, _ = QFileDialog.getSaveFileName(self, f"Export the attribution map as {suffix}", default,
                                                  f"{suffix.upper()} (*.{suffix})")
            if not path:
                return None
        target = Path(path)
        try:
            write(target)
        except OSError as error:
            self.session.fail(f"Cannot write {target}: {error}")
            return None
        self.session.message.emit(f"Attribution map written to {target}")
        return target
