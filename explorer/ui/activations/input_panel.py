"""The input side of activations: the image (and a second one, B, to compare with), preprocessing, fitting,
other inputs, and the model input shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPalette, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.inputs.images import FIT_MODES, IMAGE_SUFFIXES, PRESETS, Preprocessing
from explorer.inputs.sources import NPY, SOURCES, InputSource, default_source
from explorer.model.graph import InputSpec
from explorer.ui.text import escape, tooltip

IMAGE_FILTER = f"Images ({' '.join(f'*{suffix}' for suffix in sorted(IMAGE_SUFFIXES))});;All files (*)"
PREVIEW_SIDE = 160
PREVIEW_B_SIDE = 40


class InputPanel(QWidget):
    changed = Signal()  # anything that changes the arrays fed to the model
    image_requested = Signal()
    image_b_requested = Signal()
    image_b_closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs: list[InputSpec] = []
        self.sources: dict[str, InputSource] = {}
        self.preview = QLabel("no input yet")
        self.preview.setObjectName("modelInputPreview")
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setFrameShape(QFrame.Shape.Box)  # palette colours: right in the light and the dark theme
        self.preview.setBackgroundRole(QPalette.ColorRole.Base)
        self.preview.setAutoFillBackground(True)
        self.preview.setToolTip("Model input: exactly what the model receives (each channel stretched to show it)")
        self.image_name = QLabel("no image")
        self.image_name.setWordWrap(True)
        open_image = QPushButton("Open Image…")
        open_image.setToolTip("Choose the image the activations are computed on (or drop one on the window)")
        open_image.clicked.connect(self.image_requested)
        self.preview_b = QLabel()
        self.preview_b.setObjectName("modelInputPreviewB")
        self.preview_b.setFixedSize(PREVIEW_B_SIDE, PREVIEW_B_SIDE)
        self.preview_b.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_b.setToolTip("Model input B: what the model receives for the second image")
        self.preview_b.hide()
        self.image_b_name = QLabel("no image B")
        self.image_b_name.setWordWrap(True)
        open_b = QPushButton("Open Image B…")
        open_b.setObjectName("openImageB")
        open_b.setToolTip("A second image to compare with: the Activations show A, B and A-B, and the graph can be "
                          "coloured by how alike each layer's outputs are")
        open_b.clicked.connect(self.image_b_requested)
        self.close_b = QToolButton()
        self.close_b.setText("✕")
        self.close_b.setToolTip("Compare no more: close image B")
        self.close_b.clicked.connect(self.image_b_closed)
        self.close_b.hide()
        self.preset = QComboBox()
        self.preset.addItems(PRESETS)
        self.preset.setToolTip("none: 0..255 · unit: [0, 1] · symmetric: [-1, 1] · caffe: BGR minus ImageNet mean"
                               " · torch: ImageNet mean/std · custom: your mean/std (0..255 units)")
        self.mean = QLineEdit("127.5")
        self.std = QLineEdit("127.5")
        for edit, tip in ((self.mean, "mean per channel, comma separated"), (self.std, "std per channel")):
            edit.setToolTip(tip)
            edit.setMaximumWidth(120)
            edit.editingFinished.connect(self.changed)
        self.fit = QComboBox()
        self.fit.addItems(FIT_MODES)
        self.fit.setToolTip("resize: stretch to the input size · crop: centre-crop to its aspect ratio first")
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.other_inputs = QFormLayout()
        form = QFormLayout()
        form.addRow("Preprocess", self.preset)
        custom = QHBoxLayout()
        custom.addWidget(QLabel("mean"))
        custom.addWidget(self.mean)
        custom.addWidget(QLabel("std"))
        custom.addWidget(self.std)
        form.addRow("", custom)
        form.addRow("Fit", self.fit)
        second = QHBoxLayout()
        for widget in (self.preview_b, self.image_b_name):
            second.addWidget(widget)
        second.addStretch(1)
        second.addWidget(open_b)
        second.addWidget(self.close_b)
        column = QVBoxLayout()
        column.addWidget(self.image_name)
        column.addWidget(open_image)
        column.addLayout(second)
        column.addLayout(form)
        column.addWidget(self.reason)
        column.addLayout(self.other_inputs)
        column.addStretch(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(column, 1)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.fit.currentIndexChanged.connect(self.changed)
        self._preset_changed()

    def set_specs(self, specs: list[InputSpec], suggestion: Preprocessing) -> None:
        self.specs = specs
        self.sources = {spec.name: default_source(spec) for spec in specs}
        while self.other_inputs.rowCount():
            self.other_inputs.removeRow(0)
        if len(specs) > 1 or any(source.kind != "image" for source in self.sources.values()):
            for spec in specs:
                combo = QComboBox()
                combo.addItems(SOURCES)
                combo.setCurrentText(self.sources[spec.name].kind)
                combo.currentTextChanged.connect(lambda kind, name=spec.name: self._source_changed(name, kind))
                self.other_inputs.addRow(f"{spec.name} {tuple(spec.shape)}", combo)
        self.preset.blockSignals(True)
        self.preset.setCurrentText(suggestion.preset)
        self.preset.blockSignals(False)
        self._preset_changed(emit=False)
        self.reason.setText(f"Suggested: {suggestion.preset}. {suggestion.reason}")

    def preprocessing(self) -> Preprocessing:
        preset = self.preset.currentText()
        if preset != "custom":
            return Preprocessing(preset)
        return Preprocessing("custom", _numbers(self.mean.text(), 0.0), _numbers(self.std.text(), 1.0))

    def fit_mode(self) -> str:
        return self.fit.currentText()

    def set_image_name(self, path: str) -> None:
        self.image_name.setText(f"Image: <b>{escape(Path(path).name)}</b>")
        self.image_name.setToolTip(tooltip(path))

    def set_image_b_name(self, path: str | None) -> None:
        """The second image's name (None: there is none)."""
        self.image_b_name.setText(f"Image B: <b>{escape(Path(path).name)}</b>" if path else "no image B")
        self.image_b_name.setToolTip(tooltip(path) if path else "")
        self.close_b.setVisible(bool(path))

    def show_preview(self, preview: np.ndarray | None) -> None:
        if preview is None:
            self.preview.setText("no image input")
            return
        self.preview.setPixmap(_pixmap(preview, PREVIEW_SIDE))

    def show_preview_b(self, preview: np.ndarray | None) -> None:
        if preview is not None:
            self.preview_b.setPixmap(_pixmap(preview, PREVIEW_B_SIDE))
        self.preview_b.setVisible(preview is not None)

    def _preset_changed(self, _index: int = 0, emit: bool = True) -> None:
        custom = self.preset.currentText() == "custom"
        self.mean.setEnabled(custom)
        self.std.setEnabled(custom)
        if emit:
            self.changed.emit()

    def _source_changed(self, name: str, kind: str) -> None:
        path = None
        if kind == NPY:
            path, _ = QFileDialog.getOpenFileName(self, f"Array for input {name}", "", "NumPy arrays (*.npy)")
            if not path:
                return
        self.sources[name] = InputSource(kind, path)
        self.changed.emit()


def _pixmap(preview: np.ndarray, side: int) -> QPixmap:
    rgb = np.ascontiguousarray(preview)
    image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


def _numbers(text: str, default: float) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        return (default,)
    return values or (default,)
