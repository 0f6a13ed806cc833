"""The main window: graph in the centre, summary and inspector in docks, model loading off the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from explorer.layout.graphviz import Layout, compute_layout
from explorer.layout.view_graph import ViewGraph, build_view
from explorer.live.cache import DEFAULT_BUDGET
from explorer.model.files import load_graph
from explorer.model.graph import LayerGraph
from explorer.ui.actions import install_actions
from explorer.ui.activations.input_panel import IMAGE_FILTER
from explorer.ui.activations.panel import ActivationsPanel
from explorer.ui.canvas.scene import box_sizes
from explorer.ui.canvas.view import GraphView
from explorer.ui.export_actions import report_export
from explorer.ui.live_client import LiveClient
from explorer.ui.panels.find_bar import FindBar
from explorer.ui.panels.inspector import Inspector
from explorer.ui.panels.notices import NoticeBar
from explorer.ui.panels.summary_table import SummaryPanel
from explorer.ui.tasks import TaskRunner
from explorer.ui.trust import FileTrust

APP_NAME = "Keras Explorer"
MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
MAX_RECENT = 10


class MainWindow(QMainWindow):
    graph_drawn = Signal()  # the current model's graph is on screen (tests and benchmarks wait for it)
    model_failed = Signal(str)

    def __init__(self, settings: QSettings | None = None, live: LiveClient | None = None,
                 start_live: bool = True) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.graph: LayerGraph | None = None
        self.model_path: Path | None = None
        self.expanded: set[str] = set()
        self._pending_selection: str | None = None
        self._live_pending = False
        self.tasks = TaskRunner(self)
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self.banner = QLabel()
        self.banner.setObjectName("errorBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.PlainText)  # error text can quote the file's own strings
        self.banner.setStyleSheet("#errorBanner { background: #fde2e1; color: #8a1f11; padding: 8px;"
                                  " border-bottom: 1px solid #e0a9a4; }")
        self.banner.hide()
        self.notice = NoticeBar()
        self.find_bar = FindBar()
        self.trust = FileTrust(self)
        self.find_bar.hide()
        self.graph_view = GraphView()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        for widget in (self.banner, self.notice, self.find_bar, self.graph_view):
            column.addWidget(widget)
        self.setCentralWidget(central)

        self.summary = SummaryPanel()
        self.inspector = Inspector()
        self.live = live or LiveClient(self)
        self.activations = ActivationsPanel(self.live)
        self.activations_dock = self._dock("Activations", self.activations, Qt.DockWidgetArea.RightDockWidgetArea)
        self.findings = QListWidget()
        self.findings.setObjectName("findingsList")
        self.findings_dock = self._dock("Findings", self.findings, Qt.DockWidgetArea.RightDockWidgetArea)
        self.findings_dock.hide()
        self.summary_dock = self._dock("Summary", self.summary, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(self.summary_dock, self.inspector_dock, Qt.Orientation.Horizontal)
        self.resizeDocks([self.activations_dock], [620], Qt.Orientation.Horizontal)
        self.resizeDocks([self.summary_dock], [250], Qt.Orientation.Vertical)
        self.statusBar().addPermanentWidget(self.activations.status)
        self.activations.cache.set_budget(int(self.settings.value("activationCacheBytes", DEFAULT_BUDGET)))
        self.activations.failed.connect(lambda message: self.statusBar().showMessage(message, 8000))
        self.export_request = 0
        self.live.export_done.connect(lambda exported: report_export(self, exported))
        self.live.request_failed.connect(self._request_failed)
        self.live.traced.connect(self.trust.traced)

        self.actions_by_name = install_actions(self)
        self.graph_view.layer_selected.connect(self.select_layer)
        self.graph_view.group_toggled.connect(self.toggle_group)
        self.summary.layer_selected.connect(self.select_layer)
        self.graph_view.selection_changed.connect(self._graph_selection)
        self.summary.selection_changed.connect(self._table_selection)
        self.inspector.layer_requested.connect(self.select_layer)
        self.find_bar.match_chosen.connect(self.select_layer)
        self.statusBar().showMessage("Open a Keras model (Ctrl+O) or drop a .keras file here")
        self._restore_state()
        if start_live:  # TensorFlow loads in its own process while the window shows
            QTimer.singleShot(0, self.live.start)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # -- opening models
    def open_model(self, path: str | Path) -> None:
        """Read the file in the background; the graph appears when it is laid out."""
        path = Path(path)
        self.statusBar().showMessage(f"Reading {path.name}…")
        self.tasks.submit("load", lambda _cancelled: load_graph(path),
                          lambda graph: self._model_loaded(path, graph),
                          lambda error: self.show_error(f"Cannot open {path.name}: {_message(error)}"))

    def _model_loaded(self, path: Path, graph: LayerGraph) -> None:
        self.graph, self.model_path = graph, path.resolve()
        self.expanded = set()
        self._pending_selection = None
        self.banner.hide()
        self.find_bar.set_graph(graph)
        self.trust.show_notices(graph)
        self.setWindowTitle(f"{path.name} — {APP_NAME}")
        self.graph_view.clear()
        self.relayout(keep_view=False)  # first, so Graphviz works while the panels fill
        self.summary.set_graph(graph)
        self.inspector.show_model(graph)
        self._live_pending = True  # the worker loads the model once the graph is drawn, not competing with it
        self.add_recent(str(self.model_path))

    def relayout(self, keep_view: bool = True) -> None:
        if self.graph is None:
            return
        view = build_view(self.graph, self.expanded)
        sizes = box_sizes(view)  # measured here: fonts belong to the GUI thread
        self.statusBar().showMessage(f"Laying out {len(view.nodes)} layers…")

        def work(cancelled: threading.Event) -> Layout:
            return compute_layout(view, sizes, cancelled)

        self.tasks.submit("layout", work, lambda layout: self._draw(view, layout, keep_view),
                          lambda error: self._layout_failed(error))

    def _layout_failed(self, error: BaseException) -> None:
        self.show_error(f"Cannot lay out the graph: {_message(error)}")
        self._start_live()  # activations do not need the drawing

    def _start_live(self) -> None:
        if self._live_pending and self.graph is not None:
            self._live_pending = False
            self.activations.set_model(self.model_path, self.graph, self.trust.is_trusted())

    def _draw(self, view: ViewGraph, layout: Layout, keep_view: bool) -> None:
        self.graph_view.show_layout(view, layout, keep_view)
        self._start_live()
        graph = view.graph
        total = graph.totals[0]
        self.statusBar().showMessage(
            f"{graph.name}: {len(graph.nodes)} layers, {total:,} params — {self.model_path}")
        if self._pending_selection:
            path, self._pending_selection = self._pending_selection, None
            self.select_layer(path)
        self.graph_drawn.emit()

    def show_error(self, message: str) -> None:
        message = " ".join(message.split())  # one line, bounded: it may quote what the file's author wrote
        message = message if len(message) <= 400 else message[:399] + "…"
        self.banner.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message.splitlines()[0])
        self.model_failed.emit(message)

    # -- selection, expand / collapse
    def select_layer(self, path: str) -> None:
        if self.graph is None or path not in self.graph:
            return
        hidden = self._collapsed_ancestors(path)
        if hidden:  # reveal layers inside collapsed nested models, then select once drawn
            self.expanded.update(hidden)
            self._pending_selection = path
            self.relayout()
            return
        self.graph_view.select(path)
        self.summary.select(path)
        if self.inspector.current != path:
            self.inspector.show_layer(self.graph, path)
        if self.activations.layer != path:
            self.activations.show_layer(path)

    def _request_failed(self, request: int, message: str) -> None:
        if request == self.export_request:
            self.show_error(f"Export failed: {message}")

    def selected_layers(self) -> list[str]:
        """The layers chosen for an export: the multi-selection, else the current layer."""
        paths = self.graph_view.selected_paths() or self.summary.selected_paths()
        return paths or ([self.activations.layer] if self.activations.layer else [])

    def _graph_selection(self, paths: list[str]) -> None:
        if len(paths) > 1:
            self.summary.select_many(paths)

    def _table_selection(self, paths: list[str]) -> None:
        if len(paths) > 1:
            self.graph_view.select_many(paths)

    def _collapsed_ancestors(self, path: str) -> list[str]:
        ancestors, parent = [], self.graph.node(path).parent
        while parent is not None:
            if parent not in self.expanded:
                ancestors.append(parent)
            parent = self.graph.node(parent).parent
        return ancestors

    def toggle_group(self, path: str) -> None:
        if path in self.expanded:
            self.expanded = {p for p in self.expanded if p != path and not p.startswith(path + "/")}
        else:
            self.expanded.add(path)
        self._pending_selection = path
        self.relayout()

    def set_all_expanded(self, expanded: bool) -> None:
        if self.graph:
            self.expanded = {n.path for n in self.graph.nodes if n.is_group} if expanded else set()
            self.relayout(keep_view=False)

    # -- files: dialog, recent list, drag and drop
    def choose_model(self) -> None:
        start = str(self.model_path.parent) if self.model_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open Keras model", start, MODEL_FILTER)
        if path:
            self.open_model(path)

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(Path.home()), IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> None:
        if self.activations.set_image(str(path)):
            self.statusBar().showMessage(f"Image {Path(path).name}")

    def choose_cache_budget(self) -> None:
        current = self.activations.cache.budget >> 20
        megabytes, accepted = QInputDialog.getInt(
            self, "Activation cache", "Memory kept for computed layer outputs (MB):", current, 0, 1 << 20, 256)
        if accepted:
            self.set_cache_budget(megabytes << 20)

    def set_cache_budget(self, budget: int) -> None:
        self.activations.cache.set_budget(budget)
        self.settings.setValue("activationCacheBytes", budget)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        return [value] if isinstance(value, str) else list(value or [])

    def add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recentFiles", files[:MAX_RECENT])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            if Path(files[0]).suffix.lower() in IMAGE_SUFFIXES:
                self.open_image(files[0])
            else:
                self.open_model(files[0])
            event.acceptProposedAction()

    # -- state
    def _restore_state(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("windowState")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.tasks.shutdown()
        self.live.stop()
        super().closeEvent(event)

    def open_later(self, path: str | Path) -> None:
        """Open once the event loop runs, so the window paints before any file work starts."""
        QTimer.singleShot(0, lambda: self.open_model(path))


def _message(error: BaseException) -> str:
    """What the user reads: the reason for our own errors, the exception text for anything unexpected."""
    return getattr(error, "reason", None) or str(error) or type(error).__name__
