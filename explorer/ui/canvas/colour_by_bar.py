"""The strip above the graph: "Colour by" a per-layer number, and the legend of the colours shown (the measure,
its colour bar from the smallest to the largest number, and how a layer without a number looks)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QLinearGradient, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from explorer.live.protocol import LayerMeasure
from explorer.ui.canvas.number_colours import NEUTRAL, NEUTRAL_HATCH, NumberScale
from explorer.ui.layer_numbers import PerLayerNumbers
from explorer.ui.layer_values import number_text
from explorer.ui.session import Session
from explorer.ui.text import tooltip

NONE_TEXT = "none (layer categories)"
MEASURE_TIPS = {
    LayerMeasure.MEAN: "the mean of each layer's output on the current input",
    LayerMeasure.DEAD: "the fraction of each layer's channels never above 0 on the current input",
    LayerMeasure.SIMILARITY: "cosine similarity of each layer's output on image A and on image B",
    LayerMeasure.CHECKPOINT: "||B - A|| / ||A|| of each layer's output: this model (A) against the second "
                             "checkpoint (B), on the current input",
    LayerMeasure.WEIGHT_CHANGE: "||B - A|| / ||A|| of each layer's weights: this model against the second checkpoint",
    LayerMeasure.WEIGHT_NORM: "the L2 norm of each layer's weights",
}


class ColourBar(QWidget):
    """The colour map from low (left) to high (right)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(140, 14)
        self.scale: NumberScale | None = None

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.scale is None:
            return
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        gradient = QLinearGradient(rect.topLeft(), rect.topRight())
        stops = self.scale.stops()
        for index, colour in enumerate(stops):
            gradient.setColorAt(index / (len(stops) - 1), colour)
        painter.setPen(QPen(self.palette().color(self.foregroundRole()), 0.5))
        painter.setBrush(QBrush(gradient))
        painter.drawRect(rect)


class NoValueSwatch(QWidget):
    """How a box without a number is drawn."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(22, 14)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(self.palette().color(self.foregroundRole()), 0.5))
        painter.setBrush(NEUTRAL)
        painter.drawRect(rect)
        painter.setBrush(QBrush(NEUTRAL_HATCH, Qt.BrushStyle.BDiagPattern))
        painter.drawRect(rect)


class ColourByBar(QWidget):
    def __init__(self, session: Session, numbers: PerLayerNumbers, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.numbers = session, numbers
        self.combo = QComboBox()
        self.combo.setObjectName("colourBy")
        self.combo.setToolTip("Colour the graph's layers by a number computed for each of them")
        self.measure = QLabel()
        self.measure.setObjectName("legendMeasure")
        self.low, self.high = QLabel(), QLabel()
        self.bar = ColourBar()
        self.state = QLabel()  # computing…
        self.state.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.legend = QWidget()
        legend = QHBoxLayout(self.legend)
        legend.setContentsMargins(12, 0, 0, 0)
        for widget in (self.measure, self.low, self.bar, self.high, NoValueSwatch(), QLabel("no value")):
            legend.addWidget(widget)
        self.legend.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(QLabel("Colour by"))
        row.addWidget(self.combo)
        row.addWidget(self.legend)
        row.addWidget(self.state)
        row.addStretch(1)
        self.combo.activated.connect(lambda index: session.set_colour_by(self.combo.itemData(index)))
        for signal in (session.file_opened, session.inputs_b_changed, session.other_changed, session.trust_changed,
                       numbers.folder_changed, session.colour_by_changed):
            signal.connect(self.refresh_choices)
        for signal in (session.numbers_changed, session.colour_by_changed, numbers.answered):
            signal.connect(self.refresh_legend)
        numbers.failed.connect(lambda _measure, _message: self.refresh_legend())
        numbers.asking.connect(lambda measure: self.state.setText(f"computing {measure}…")
                               if measure == session.colour_by else None)
        self.refresh_choices()

    def refresh_choices(self) -> None:
        """Every measure, those the session cannot show now disabled and saying why."""
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(NONE_TEXT, None)
        for measure in (*LayerMeasure.ALL, *self.numbers.folder):
            self.combo.addItem(measure, measure)
            index = self.combo.count() - 1
            why = self.numbers.available(measure)
            self.combo.model().item(index).setEnabled(why is None)
            tip = MEASURE_TIPS.get(measure, f"over the {self.numbers.folder_images} images of a folder (Layer "
                                            "Statistics over a Folder…)")
            self.combo.setItemData(index, tooltip(f"{tip} ({why})" if why else tip), Qt.ItemDataRole.ToolTipRole)
        self.combo.setCurrentIndex(max(0, self.combo.findData(self.session.colour_by)))
        self.combo.blockSignals(False)

    def refresh_legend(self) -> None:
        numbers = self.session.numbers
        span = numbers.span() if numbers is not None else None
        if numbers is None or span is None:
            self.legend.hide()
        else:
            self.measure.setText(numbers.measure)
            self.low.setText(number_text(span[0]))
            self.high.setText(number_text(span[1]))
            self.bar.scale = NumberScale(*span)
            self.bar.update()
            self.legend.show()
            self.legend.setToolTip(tooltip(f"{numbers.measure}: from {number_text(span[0])} (left) to "
                                           f"{number_text(span[1])} (right); hatched boxes have no number"))
        if not self.numbers.pending():
            self.state.setText("")
