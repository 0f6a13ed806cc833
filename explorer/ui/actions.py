"""Menus, toolbar and keyboard shortcuts of the main window."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QStyle

from explorer.ui import export_actions
from explorer.ui.canvas.export import export_scene
from explorer.ui.canvas.items import category_legend
from explorer.ui.help_dialogs import show_about, show_shortcuts

if TYPE_CHECKING:
    from explorer.ui.main_window import MainWindow


def install_actions(window: MainWindow) -> dict[str, QAction]:
    view = window.graph_view

    def action(name: str, text: str, slot, shortcut: QKeySequence | str | None = None, tip: str = "") -> QAction:
        item = QAction(text, window)
        if name in _ICONS:
            item.setIcon(window.style().standardIcon(_ICONS[name]))
        item.setObjectName(name)
        if shortcut:
            item.setShortcut(QKeySequence(shortcut))
        item.setToolTip(f"{tip or text.replace('…', '').replace('&', '')}"
                        + (f" ({item.shortcut().toString()})" if shortcut else ""))
        item.triggered.connect(slot)
        return item

    actions = {
        "open": action("open", "&Open Model…", window.choose_model, QKeySequence.StandardKey.Open,
                       "Open a .keras or .h5 model"),
        "open_image": action("open_image", "Open &Image…", window.choose_image, "Ctrl+I",
                             "Choose the image activations are computed on"),
        "custom_objects": action("custom_objects", "Load Custom &Objects…", window.trust.choose_custom_objects,
                                 tip="Run the Python file that defines a subclassed model's classes (needs trust)"),
        "export_extractor": action("export_extractor", "Export &Feature Extractor…",
                                   lambda: export_actions.export_extractor(window), "Ctrl+Shift+S",
                                   "Save the selected layers as a verified .keras or SavedModel feature extractor"),
        "copy_python": action("copy_python", "&Copy as Python", lambda: export_actions.copy_python(window),
                              "Ctrl+Shift+C", "Copy code that rebuilds the extractor for the selected layers"),
        "export_activations_png": action("export_activations_png", "Export Activations as P&NG…",
                                         lambda: export_actions.export_activations(window, "png")),
        "export_activations_npy": action("export_activations_npy", "Export Activations as .np&y…",
                                         lambda: export_actions.export_activations(window, "npy")),
        "export_svg": action("export_svg", "Export Graph as &SVG…", lambda: _export(window, "svg")),
        "export_png": action("export_png", "Export Graph as &PNG…", lambda: _export(window, "png")),
        "cache_budget": action("cache_budget", "Activation &Cache Size…", window.choose_cache_budget,
                               tip="Memory kept for computed layer outputs (default 1 GB)"),
        "quit": action("quit", "&Quit", window.close, QKeySequence.StandardKey.Quit),
        "find": action("find", "&Find Layer…", lambda: window.find_bar.open(window.graph),
                       QKeySequence.StandardKey.Find, "Find a layer by name or class"),
        "fit": action("fit", "&Fit to Window", view.fit, "Ctrl+0", "Fit the whole graph in the window"),
        "zoom_in": action("zoom_in", "Zoom &In", lambda: view.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn),
        "zoom_out": action("zoom_out", "Zoom &Out", lambda: view.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut),
        "expand_all": action("expand_all", "&Expand All Nested Models", lambda: window.set_all_expanded(True),
                             "Ctrl+E"),
        "collapse_all": action("collapse_all", "&Collapse All Nested Models",
                               lambda: window.set_all_expanded(False), "Ctrl+Shift+E"),
    }
    menu_bar = window.menuBar()
    file_menu = menu_bar.addMenu("&File")
    file_menu.addActions([actions["open"], actions["open_image"], actions["custom_objects"]])
    recent = file_menu.addMenu("Open &Recent")
    recent.setObjectName("recentMenu")
    recent.aboutToShow.connect(lambda: _fill_recent(window, recent))
    file_menu.addSeparator()
    file_menu.addActions([actions[n] for n in ("export_extractor", "copy_python", "export_svg", "export_png",
                                               "export_activations_png", "export_activations_npy")])
    file_menu.addSeparator()
    file_menu.addAction(actions["quit"])
    view_menu = menu_bar.addMenu("&View")
    view_menu.addActions([actions[n] for n in ("find", "fit", "zoom_in", "zoom_out", "expand_all", "collapse_all")])
    view_menu.addSeparator()
    view_menu.addActions([window.summary_dock.toggleViewAction(), window.inspector_dock.toggleViewAction(),
                          window.activations_dock.toggleViewAction()])
    settings_menu = menu_bar.addMenu("&Settings")
    settings_menu.addAction(actions["cache_budget"])
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addActions([actions[n] for n in ("open", "open_image", "fit", "zoom_in", "zoom_out", "expand_all",
                                             "collapse_all", "find")])
    window.statusBar().addPermanentWidget(category_legend())
    help_menu = menu_bar.addMenu("&Help")
    listed = list(actions.values())
    help_menu.addAction(action("shortcuts", "&Keyboard Shortcuts", lambda: show_shortcuts(window, listed), "F1",
                               "All keyboard shortcuts"))
    help_menu.addAction(action("about", "&About Keras Explorer", lambda: show_about(window),
                               tip="Versions of Keras Explorer, Keras, TensorFlow and Qt"))
    return actions


_ICONS = {
    "open": QStyle.StandardPixmap.SP_DialogOpenButton,
    "open_image": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "fit": QStyle.StandardPixmap.SP_TitleBarMaxButton,
    "zoom_in": QStyle.StandardPixmap.SP_ArrowUp,
    "zoom_out": QStyle.StandardPixmap.SP_ArrowDown,
    "expand_all": QStyle.StandardPixmap.SP_ToolBarVerticalExtensionButton,
    "collapse_all": QStyle.StandardPixmap.SP_TitleBarShadeButton,
    "find": QStyle.StandardPixmap.SP_FileDialogContentsView,
}


def _fill_recent(window: MainWindow, menu: QMenu) -> None:
    menu.clear()
    files = [p for p in window.recent_files() if Path(p).exists()]
    for path in files:
        menu.addAction(Path(path).name, lambda p=path: window.open_model(p)).setToolTip(path)
    if not files:
        menu.addAction("(no recent files)").setEnabled(False)


def _export(window: MainWindow, suffix: str) -> None:
    if window.graph is None:
        return
    default = str(Path(window.model_path or "graph").with_suffix(f".{suffix}"))
    path, _ = QFileDialog.getSaveFileName(window, f"Export graph as {suffix.upper()}", default,
                                          f"{suffix.upper()} (*.{suffix})")
    if path:
        try:
            export_scene(window.graph_view.scene(), path)
            window.statusBar().showMessage(f"Graph written to {path}")
        except OSError as error:
            window.show_error(f"Cannot write {path}: {error}")
