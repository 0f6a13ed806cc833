"""Comparing a layer's output on two inputs: which one is shown (A, B or A-B), how alike the two outputs are
(cosine similarity of the whole output), and the channels ranked by how much they differ."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QWidget,
)

from explorer.inputs import feature_maps as fm
from explorer.live.protocol import LayerMeasure
from explorer.ui.activations.feature_view import FeatureView
from explorer.ui.layer_numbers import PerLayerNumbers
from explorer.ui.session import Session

A, B, DIFFERENCE = "A", "B", "A\u2212B"  # a minus sign, as on screen
MODES = (A, B, DIFFERENCE)
MODE_TIPS = {A: "The layer's output on image A", B: "The layer's output on image B",
             DIFFERENCE: "A minus B, channel by channel: blue where B is larger, red where A is"}
RANKING_COLUMNS = ("Channel", f"|{DIFFERENCE}|", "A", "B")  # means over the channel's positions
RANKING_TIPS = ("The channel (the last axis of the output)", f"Mean |{DIFFERENCE}| over the channel's positions",
                "The channel's mean on A", "The channel's mean on B")


class ABBar(QWidget):
    mode_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Show"))
        self.buttons: dict[str, QToolButton] = {}
        for mode in MODES:
            button = QToolButton()
            button.setText(mode)
            button.setCheckable(True)
            button.setToolTip(MODE_TIPS[mode])
            button.setObjectName(f"abMode{MODES.index(mode)}")
            self.group.addButton(button)
            self.buttons[mode] = button
            row.addWidget(button)
        self.buttons[A].setChecked(True)
        self.similarity = QLabel()
        self.similarity.setObjectName("abSimilarity")
        self.similarity.setToolTip("Cosine similarity of the layer's whole output on A and on B "
                                   "(1: the same direction, 0: unrelated)")
        self.similarity.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.similarity_value: float | None = None
        row.addSpacing(12)
        row.addWidget(self.similarity)
        row.addStretch(1)
        self.group.buttonToggled.connect(lambda button, checked: self.mode_changed.emit(button.text())
                                         if checked else None)

    def mode(self) -> str:
        return self.group.checkedButton().text()

    def set_mode(self, mode: str) -> None:
        self.buttons[mode].setChecked(True)

    def show_similarity(self, value: float | None, note: str = "") -> None:
        self.similarity_value = value
        self.similarity.setText(f"cosine similarity A·B: {value:.4f}" if value is not None else
                                f"cosine similarity A·B: {note or 'none'}")


class _Number(QTableWidgetItem):
    """A cell shown rounded, sorted by its exact value."""

    def __init__(self, value: float, text: str) -> None:
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.data(Qt.ItemDataRole.UserRole) < other.data(Qt.ItemDataRole.UserRole)


class ChannelRanking(QTableWidget):
    """Every channel, the largest mean |A-B| first (sortable by any column); a click opens the channel."""

    channel_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(RANKING_COLUMNS), parent)
        self.setObjectName("channelRanking")
        self.setHorizontalHeaderLabels(RANKING_COLUMNS)
        for column, tip in enumerate(RANKING_TIPS):
            self.horizontalHeaderItem(column).setToolTip(tip)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(20)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip("Channels ranked by how much the layer's output differs between A and B; click one to open it")
        self.cellClicked.connect(lambda row, _column: self.channel_chosen.emit(self.channel_at(row)))

    def show_differences(self, differences: list[fm.ChannelDifference]) -> None:
        self.setSortingEnabled(False)  # filled in rank order, then sorted by the difference
        self.setRowCount(len(differences))
        for row, found in enumerate(differences):
            self.setItem(row, 0, _Number(found.channel, str(found.channel)))
            for column, value in enumerate((found.difference, found.mean_a, found.mean_b), start=1):
                self.setItem(row, column, _Number(value, f"{value:.4g}"))
        self.setSortingEnabled(True)
        self.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        # As wide as its columns: the numbers are what it is for.
        self.setMinimumWidth(self.horizontalHeader().length() + self.verticalScrollBar().sizeHint().width()
                             + 2 * self.frameWidth())

    def channel_at(self, row: int) -> int:
        return int(self.item(row, 0).data(Qt.ItemDataRole.UserRole))

    def ranked(self) -> list[int]:
        """The channels in the order shown."""
        return [self.channel_at(row) for row in range(self.rowCount())]


class ABCompare(QObject):
    """The Activations panel's comparison of A and B: the bar, the ranking, and what is shown for the bar's
    choice; the similarity comes from the per-layer numbers (every layer's from one pass of A and B)."""

    changed = Signal()  # another of A, B and A-B was chosen: show again

    def __init__(self, session: Session, numbers: PerLayerNumbers, view: FeatureView,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.numbers, self.view = session, numbers, view
        self.bar, self.ranking = ABBar(), ChannelRanking()
        self.show_bar(False)
        self.bar.mode_changed.connect(self._mode_changed)
        self.ranking.channel_chosen.connect(self._open)
        numbers.answered.connect(lambda measure: self._show_similarity() if measure == LayerMeasure.SIMILARITY
                                 else None)
        numbers.failed.connect(lambda measure, message: self.bar.show_similarity(None, f"failed ({message})")
                               if measure == LayerMeasure.SIMILARITY else None)

    def show_bar(self, comparing: bool) -> None:
        self.bar.setVisible(comparing)
        self.ranking.setVisible(comparing)
        if not comparing:
            self.bar.set_mode(A)

    def mode(self) -> str:
        return self.bar.mode()  # A whenever there is nothing to compare (show_bar)

    def pick(self, layer: str, output: np.ndarray, second: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """(what to show for the chosen mode, or None and why not)."""
        mode = self.mode()
        if mode == A:
            return output, ""
        if second is None:
            return None, f"Computing {layer} on image B…"
        if mode == B:
            return second, ""
        if second.shape != output.shape:  # inputs of free size: A and B fed at different sizes
            return None, f"{layer} gives outputs of different shapes on A and B: no {DIFFERENCE} to show"
        return output - second, ""

    def compared(self, output: np.ndarray, second: np.ndarray | None) -> None:
        """Rank the channels and show the similarity of the layer's outputs on A and B."""
        if second is not None and second.shape == output.shape:
            self.ranking.show_differences(fm.channel_differences(output, second))
            self._show_similarity()

    def _mode_changed(self, mode: str) -> None:
        if mode == DIFFERENCE:  # the grid in the ranking's order, the largest difference first
            self.view.order.blockSignals(True)
            self.view.order.setCurrentIndex(fm.ORDERS.index("magnitude"))
            self.view.order.blockSignals(False)
        self.changed.emit()

    def _open(self, channel: int) -> None:
        array = self.view.array
        if array is not None and fm.output_kind(array) in (fm.SPATIAL, fm.VOLUME):
            self.view.open_channel(channel)

    def _show_similarity(self) -> None:
        session = self.session
        if session.layer is None or session.call_site is None or not session.inputs_b:
            return
        values = self.numbers.values(LayerMeasure.SIMILARITY)
        if values is None:
            self.numbers.ask(LayerMeasure.SIMILARITY)
            self.bar.show_similarity(None, "computing…")
            return
        value = values.get((session.layer, tuple(session.call_site)))
        self.bar.show_similarity(value, "" if value is not None else "not computed for this layer")
