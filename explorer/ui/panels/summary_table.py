"""The sortable summary table (like ``model.summary()``), its selection synchronised with the graph, with a
column for the per-layer number the graph is coloured by."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from explorer.model.graph import LayerGraph
from explorer.model.summary import output_shape_text
from explorer.ui.layer_values import number_text
from explorer.ui.session import Session
from explorer.ui.text import escape, tooltip

COLUMNS = ("Layer", "Class", "Output shape", "Params", "Number", "Connected to")
PARAMS, NUMBER = 3, 4
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex


class SummaryModel(QAbstractTableModel):
    def __init__(self, graph: LayerGraph | None = None) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str], int]] = []
        self.measure = ""  # the header of the number column
        self.numbers: list[float | None] = []  # per row
        if graph:
            self.set_graph(graph)

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.beginResetModel()
        self.rows = []
        for node in graph.nodes if graph else ():
            params = graph.params(node.path)[0]
            calls = f"  (\u00d7{node.calls})" if node.calls > 1 else ""
            cells = [
                "    " * node.depth + node.name + calls,
                node.class_name,
                output_shape_text(graph, node.path),
                f"{params:,}",
                "",
                ", ".join(graph.node(p).name for p in graph.inbound(node.path)),
            ]
            self.rows.append((node.path, cells, params))
        self.numbers = [None] * len(self.rows)
        self.endResetModel()

    def set_numbers(self, measure: str, numbers: list[float | None]) -> None:
        """The number column: one value per row (None: the layer has none)."""
        self.measure, self.numbers = measure, numbers
        for row, value in enumerate(numbers):
            self.rows[row][1][NUMBER] = number_text(value) if measure else ""
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, NUMBER, NUMBER)
        if self.rows:
            self.dataChanged.emit(self.index(0, NUMBER), self.index(len(self.rows) - 1, NUMBER))

    def rowCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        path, cells, _params = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return cells[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(cells[index.column()])
        if role == SORT_ROLE:
            return self._sort_key(index.row(), index.column())
        if role == PATH_ROLE:
            return path
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (PARAMS, NUMBER):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _sort_key(self, row: int, column: int) -> Any:
        if column == NUMBER:  # numerically; the layers without a number together below the smallest
            value = self.numbers[row]
            return value if value is not None else -math.inf
        _path, cells, params = self.rows[row]
        return params if column == PARAMS else row if column == 0 else cells[column]

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        text = self.measure[:1].upper() + self.measure[1:] if section == NUMBER and self.measure else COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        return tooltip(text) if role == Qt.ItemDataRole.ToolTipRole and section == NUMBER else None

    def row_of(self, path: str) -> int:
        return next((i for i, row in enumerate(self.rows) if row[0] == path), -1)


class SummaryPanel(QWidget):
    layer_selected = Signal(str)
    selection_changed = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.totals = QLabel("No model")
        self.totals.setObjectName("summaryTotals")
        self.model = SummaryModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideRight)  # a long measure's name
        self.table.setColumnHidden(NUMBER, True)  # shown while the graph is coloured by a number
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.totals)
        layout.addWidget(self.table)
        self._muted = False
        self._reporting = False  # emitting what the user did in the table

    def follow(self, session: Session) -> None:
        # What the table itself started (a click, Ctrl+click) is not mirrored back onto it mid-click.
        session.graph_changed.connect(lambda: self.set_graph(session.graph))
        session.graph_changed.connect(lambda: self.show_numbers(session))
        session.numbers_changed.connect(lambda: self.show_numbers(session))
        session.selection_changed.connect(lambda: self.show_numbers(session) if session.numbers else None)
        session.selection_changed.connect(
            lambda: self.select(session.layer) if session.layer and not self._reporting else None)
        session.chosen_changed.connect(
            lambda: self.select_many(list(session.chosen)) if len(session.chosen) > 1 and not self._reporting
            else None)
        self.layer_selected.connect(session.select)
        self.selection_changed.connect(lambda paths: session.choose(paths if len(paths) > 1 else []))

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.model.set_graph(graph)
        if graph is None:
            self.totals.setText("No model")
            return
        total, trainable, non_trainable = graph.totals
        self.totals.setText(
            f"<b>{escape(graph.name)}</b> ({graph.kind}, {len(graph.nodes)} layers) — total params <b>{total:,}</b> · "
            f"trainable {trainable:,} · non-trainable {non_trainable:,}")
        for column, width in enumerate((220, 150, 150, 90, 110)):
            self.table.setColumnWidth(column, width)

    def show_numbers(self, session: Session) -> None:
        """The session's numbers in their column (hidden without any), at the call sites the graph shows."""
        numbers = session.numbers
        self.table.setColumnHidden(NUMBER, numbers is None)
        if numbers is None:
            self.model.set_numbers("", [None] * len(self.model.rows))
            return
        values = [numbers.value(path, session.shown_call_site(path)) for path, _cells, _params in self.model.rows]
        self.model.set_numbers(numbers.measure, values)

    def select(self, path: str) -> None:
        row = self.model.row_of(path)
        if row < 0:
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self._muted = True
        flags = QItemSelectionModel.SelectionFlag
        selection = self.table.selectionModel()
        # A row already selected (Ctrl+click adding it) keeps the other selected rows.
        selected = selection.isRowSelected(index.row(), index.parent())
        selection.setCurrentIndex(index, flags.NoUpdate if selected else flags.ClearAndSelect | flags.Rows)
        self.table.scrollTo(index)
        self._muted = False

    def selected_paths(self) -> list[str]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.rows[row][0] for row in rows]

    def select_many(self, paths: list[str]) -> None:
        wanted = set(paths)
        selection = QItemSelection()
        for row, (path, _cells, _params) in enumerate(self.model.rows):
            if path in wanted:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                selection.select(index, index)
        self._muted = True
        flags = QItemSelectionModel.SelectionFlag
        self.table.selectionModel().select(selection, flags.ClearAndSelect | flags.Rows)
        self._muted = False

    def _on_selection(self) -> None:
        if not self._muted:
            self._report(self.selection_changed, self.selected_paths())

    def _report(self, signal: Signal, value: object) -> None:
        self._reporting = True
        try:
            signal.emit(value)
        finally:
            self._reporting = False

    def selected_path(self) -> str | None:
        index = self.table.selectionModel().currentIndex()
        return index.data(PATH_ROLE) if index.isValid() else None

    def _on_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and not self._muted:
            self._report(self.layer_selected, current.data(PATH_ROLE))
