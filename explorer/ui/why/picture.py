"""A Pillow image on screen: scaled to fit its label (aspect ratio kept), or a message in its place."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


def to_pixmap(image: Image.Image) -> QPixmap:
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    return QPixmap.fromImage(QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0],
                                    QImage.Format.Format_RGB888).copy())


class FittedPicture(QLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source: QPixmap | None = None  # unscaled: every resize scales from it, not from the last scaling
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setTextFormat(Qt.TextFormat.PlainText)  # messages can quote layer names and worker errors
        self.setWordWrap(True)
        # The picture follows the dock's size and never sets it (a fixed pixmap would keep the dock wide).
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(96, 96)

    def show_picture(self, pixmap: QPixmap) -> None:
        self.source = pixmap
        self._fit()

    def show_message(self, text: str) -> None:
        self.source = None
        self.setText(text)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.source is not None:
            self._fit()

    def _fit(self) -> None:
        self.setPixmap(self.source.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation))
