"""The main window: docks and wiring. The state lives in the session; the panels follow it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from explorer.inputs.images import IMAGE_SUFFIXES
from explorer.live.protocol import BuildFromCode
from explorer.logs import log_folder
from explorer.model.weights_graph import WEIGHTS_KIND
from explorer.text import one_line, parse_shape
from explorer.ui.actions import install_actions
from explorer.ui.activations.input_panel import IMAGE_FILTER
from explorer.ui.activations.panel import ActivationsPanel
from explorer.ui.canvas.canvas import GraphCanvas
from explorer.ui.canvas.colour_by_bar import ColourByBar
from explorer.ui.canvas.items import category_legend
from explorer.ui.canvas.view import GraphView
from explorer.ui.command_job import refusal_to_run
from explorer.ui.compare_with import CompareWith
from explorer.ui.exports import Exports
from explorer.ui.folder_features import FeatureJob, FolderFeaturesDialog
from explorer.ui.folder_stats import FolderStats
from explorer.ui.help_dialogs import show_about, show_shortcuts
from explorer.ui.layer_numbers import PerLayerNumbers
from explorer.ui.live_client import LiveClient
from explorer.ui.panels.find_bar import FindBar
from explorer.ui.panels.findings import FindingsList
from explorer.ui.panels.inspector import Inspector
from explorer.ui.panels.notices import NoticeBar
from explorer.ui.panels.summary_table import SummaryPanel
from explorer.ui.session import Session
from explorer.ui.settings import CACHE_BYTES, GEOMETRY, WINDOW_STATE, Settings
from explorer.ui.theme import notice_style
from explorer.ui.trust import confirm_trust
from explorer.ui.why.panel import WhyPanel

APP_NAME = "Keras Explorer"
# Bumped when docks are added: a layout saved before (without them) is not restored, the new ones go where
# they belong (the Why dock as a tab behind Activations) instead of wherever Qt puts unknown docks.
DOCK_LAYOUT_VERSION = 2
MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5 *.json saved_model.pb);;All files (*)"
WEIGHTS_FILTER = "Keras weights (*.weights.h5 *.h5 *.hdf5);;All files (*)"
STATUS_MS = 8000


class MainWindow(QMainWindow):
    graph_drawn = Signal()  # the current model's graph is on screen (tests and benchmarks wait for it)

    def __init__(self, settings: QSettings | None = None, live: LiveClient | None = None,
                 start_live: bool = True) -> None:
        super().__init__()
        self.settings = Settings(settings)
        self.session = session = Session(self.settings, self)
        self.live = live or LiveClient(self)
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self.banner = QLabel()
        self.banner.setObjectName("errorBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.PlainText)  # error text can quote the file's own strings
        self.banner.hide()
        self.notice = NoticeBar()
        self.find_bar = FindBar()
        self.find_bar.hide()
        self.graph_view = GraphView()
        self.canvas = GraphCanvas(session, self.graph_view)
        self.numbers = PerLayerNumbers(session, self.live, self)
        self.colour_by = ColourByBar(session, self.numbers)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        for widget in (self.banner, self.notice, self.find_bar, self.colour_by, self.graph_view):
            column.addWidget(widget)
        self.setCentralWidget(central)

        self.summary = SummaryPanel()
        self.inspector = Inspector()
        self.activations = ActivationsPanel(session, self.live, self.numbers)
        self.findings = FindingsList()
        self.exports = Exports(session, self.live, self.activations.view, self)
        self.compare = CompareWith(session, MODEL_FILTER, self)
        self.features_job: FeatureJob | None = None  # the latest Run Features on a Folder… run
        self.folder_stats = FolderStats(session, self.numbers, self)
        self.activations_dock = self._dock("Activations", self.activations, Qt.DockWidgetArea.RightDockWidgetArea)
        self.why = WhyPanel(session, self.live, self.activations.inputs.preprocessing)
        self.why_dock = self._dock("Why", self.why, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.activations_dock, self.why_dock)
        self.activations_dock.raise_()
        self.why.set_on_screen(False)
        self.why_dock.visibilityChanged.connect(self.why.set_on_screen)
        self.findings_dock = self._dock("Findings", self.findings, Qt.DockWidgetArea.RightDockWidgetArea)
        self.findings_dock.hide()
        self.summary_dock = self._dock("Summary", self.summary, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(self.summary_dock, self.inspector_dock, Qt.Orientation.Horizontal)
        self.resizeDocks([self.activations_dock], [620], Qt.Orientation.Horizontal)
        self.resizeDocks([self.summary_dock], [250], Qt.Orientation.Vertical)
        self.statusBar().addPermanentWidget(self.activations.status)
        legend = category_legend()
        self.statusBar().addPermanentWidget(legend)
        session.numbers_changed.connect(lambda: legend.setVisible(session.numbers is None))  # not what is drawn
        self.activations.set_cache_budget(self.settings.integer(CACHE_BYTES))

        for panel in (self.summary, self.inspector, self.find_bar, self.findings):
            panel.follow(session)
        self.notice.follow(session, self.ask_trust)
        self.findings.presence_changed.connect(self.findings_dock.setVisible)
        self.canvas.drawn.connect(self.graph_drawn)
        session.file_opened.connect(self._file_opened)
        session.message.connect(lambda text: self.statusBar().showMessage(text, STATUS_MS))
        session.failed.connect(self._show_banner)
        self.activations.failed.connect(lambda message: self.statusBar().showMessage(message, STATUS_MS))
        self.activations.image_requested.connect(self.choose_image)
        self.activations.image_b_requested.connect(self.choose_image_b)

        self.actions_by_name = install_actions(
            self, self._slots(), [self.summary_dock, self.inspector_dock, self.activations_dock, self.why_dock],
            self.settings.recent_files, self.open_model)
        self.statusBar().showMessage("Open a Keras model (Ctrl+O) or drop a .keras file here")
        self._restore_state()
        if start_live:  # TensorFlow loads in its own process while the window shows
            QTimer.singleShot(0, self.live.start)

    def _slots(self) -> dict[str, object]:
        session, view, exports = self.session, self.graph_view, self.exports
        return {
            "open": self.choose_model, "open_weights": self.choose_weights, "open_image": self.choose_image,
            "open_image_b": self.choose_image_b, "compare_with": self.compare.choose,
            "stats_on_folder": lambda: self.folder_stats.run(self.activations.inputs.preprocessing().preset),
            "custom_objects": self.choose_custom_objects, "build_from_code": self.choose_build_from_code,
            "export_extractor": exports.export_extractor, "features_on_folder": self.run_features_on_folder,
            "save_as_keras3": exports.save_as_keras3,
            "copy_python": exports.copy_python,
            "export_activations_png": lambda: exports.export_activations("png"),
            "export_activations_npy": lambda: exports.export_activations("npy"),
            "export_svg": lambda: exports.export_graph(view, "svg"),
            "export_png": lambda: exports.export_graph(view, "png"),
            "cache_budget": self.choose_cache_budget, "quit": self.close, "find": self.find_bar.open,
            "fit": view.fit, "zoom_in": lambda: view.zoom_by(1.25), "zoom_out": lambda: view.zoom_by(0.8),
            "expand_all": lambda: session.set_all_expanded(True),
            "collapse_all": lambda: session.set_all_expanded(False),
            "shortcuts": lambda: show_shortcuts(self, list(self.actions_by_name.values())),
            "open_log_folder": self.open_log_folder, "about": lambda: show_about(self),
        }

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # -- files
    def open_model(self, path: str | Path) -> None:
        self.session.open(path)

    def open_later(self, path: str | Path) -> None:
        """Open once the event loop runs, so the window paints before any file work starts."""
        QTimer.singleShot(0, lambda: self.open_model(path))

    def open_image(self, path: str | Path) -> bool:
        return self.session.set_image(path)

    def choose_model(self) -> None:
        start = str(self.session.path.parent) if self.session.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open Keras model", start, MODEL_FILTER)
        if path:
            self.open_model(path)

    def choose_weights(self) -> None:
        start = str(self.session.path.parent) if self.session.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open weights for the architecture", start, WEIGHTS_FILTER)
        if path:
            self.session.open_weights(path)

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(Path.home()), IMAGE_FILTER)
        if path:
            self.open_image(path)

    def choose_image_b(self) -> None:
        start = self.session.image_path.parent if self.session.image_path else Path.home()
        path, _ = QFileDialog.getOpenFileName(self, "Open image B (compared with the first)", str(start),
                                              IMAGE_FILTER)
        if path:
            self.session.set_image_b(path)

    def _file_opened(self) -> None:
        self.banner.hide()
        self.setWindowTitle(f"{self.session.path.name} — {APP_NAME}")

    def _show_banner(self, line: str) -> None:
        self._style_banner()
        self.banner.setText(line)
        self.banner.show()
        self.statusBar().showMessage(line)

    def _style_banner(self) -> None:
        self.banner.setStyleSheet(f"#errorBanner {{ {notice_style('error')} padding: 8px; }}")

    def restyle(self) -> None:
        """The theme changed: strips and canvas take the new colours."""
        self._style_banner()
        self.notice.restyle()
        self.activations.restyle()
        self.canvas.repaint_scene()

    # -- trust
    def ask_trust(self, extra: str = "", load: bool = True) -> bool:
        """Ask, naming what would run; on yes the session remembers this exact file and loads it live."""
        session = self.session
        if session.graph is None or session.path is None:
            return False
        if not confirm_trust(self, session.path.name, session.graph.findings, extra):
            return False
        session.trust(load)
        return True

    def choose_custom_objects(self) -> None:
        """Point the live tier at the Python file that defines this model's classes (runs it: needs trust)."""
        session = self.session
        if session.graph is None or session.path is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Python file defining the model's classes",
                                              str(session.path.parent), "Python (*.py)")
        if path and (session.trusted or self.ask_trust(extra=f"the Python file {path}", load=False)):
            session.set_custom_objects(path)

    def choose_build_from_code(self, path: str | None = None, call: str | None = None,
                               input_shape: str | None = None) -> None:
        """For a model Keras cannot rebuild from its file (or a weights-only file): the Python file with its class,
        the constructor call and, for a weights-only file (it records none), the input shape; the live tier builds
        it (needs trust) and loads the file's weights into it."""
        session = self.session
        if session.graph is None or session.path is None:
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Python file defining the model's class",
                                                  str(session.path.parent), "Python (*.py)")
        if path and call is None:
            call, accepted = QInputDialog.getText(self, "Build model from code",
                                                  "Constructor call in that file, e.g. Net(pretrained=False):")
            call = call.strip() if accepted else ""
        if path and call and input_shape is None and session.graph.kind == WEIGHTS_KIND:
            input_shape, accepted = QInputDialog.getText(
                self, "Build model from code", "Input shape without the batch axis, e.g. 224,224,3\n"
                "(a weights-only file records none; leave empty if the constructor builds the model):")
            if not accepted:
                return
        try:
            build = BuildFromCode(call, parse_shape(input_shape or "")) if call else None
        except ValueError as error:
            session.fail(str(error))
            return
        if path and build and (session.trusted or self.ask_trust(extra=f"the Python file {path} and {build}",
                                                                  load=False)):
            session.set_custom_objects(path, build)

    # -- batch features
    def run_features_on_folder(self) -> FeatureJob | None:
        """Ask for a folder of images and compute the selected layer on all of them in the background."""
        session = self.session
        if session.layer is None or session.path is None:
            session.fail("Select a layer first")
            return None
        refusal = refusal_to_run(session)
        if refusal:
            session.fail(refusal)
            return None
        if self.features_job is not None and self.features_job.running:
            session.fail("A features run is under way: cancel it first")
            return None
        dialog = FolderFeaturesDialog(session, self.activations.inputs.preprocessing().preset, self)
        accepted, run = dialog.exec() == QDialog.DialogCode.Accepted, dialog.folder_run()
        dialog.deleteLater()
        if not accepted:
            return None
        if self.features_job is not None:
            self.features_job.deleteLater()
        self.features_job = FeatureJob(session, self)
        self.features_job.start(run)
        return self.features_job

    # -- settings, help
    def choose_cache_budget(self) -> None:
        current = self.activations.cache_budget >> 20
        megabytes, accepted = QInputDialog.getInt(
            self, "Activation cache", "Memory kept for computed layer outputs (MB):", current, 0, 1 << 20, 256)
        if accepted:
            self.set_cache_budget(megabytes << 20)

    def set_cache_budget(self, budget: int) -> None:
        self.activations.set_cache_budget(budget)
        self.settings.set(CACHE_BYTES, budget)

    def open_log_folder(self) -> Path:
        folder = log_folder()
        folder.mkdir(parents=True, exist_ok=True)
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.statusBar().showMessage(one_line(f"The log is in {folder}"), STATUS_MS * 2)
        return folder

    # -- drag and drop, window state
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

    def _restore_state(self) -> None:
        geometry = self.settings.blob(GEOMETRY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.blob(WINDOW_STATE)
        if state is not None:
            self.restoreState(state, DOCK_LAYOUT_VERSION)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.set(GEOMETRY, self.saveGeometry())
        self.settings.set(WINDOW_STATE, self.saveState(DOCK_LAYOUT_VERSION))
        self.canvas.shutdown()
        if self.features_job is not None:
            self.features_job.shutdown()
        self.folder_stats.shutdown()
        self.session.close()
        self.live.stop()
        super().closeEvent(event)
