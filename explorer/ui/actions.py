"""Menus, toolbar and keyboard shortcuts: which command has which text, shortcut, icon and menu.

The commands themselves are given by the window as a name -> slot table, so this module knows no window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QStyle

Shortcut = QKeySequence.StandardKey | str | None


@dataclass(frozen=True)
class Command:
    name: str
    text: str
    shortcut: Shortcut = None
    tip: str = ""
    icon: QStyle.StandardPixmap | None = None


_PIXMAP = QStyle.StandardPixmap
COMMANDS = (
    Command("open", "&Open Model…", QKeySequence.StandardKey.Open, "Open a .keras or .h5 model",
            _PIXMAP.SP_DialogOpenButton),
    Command("open_weights", "Open &Weights…", tip="Give an architecture JSON (model.to_json()) the weights that "
            "save_weights wrote"),
    Command("open_image", "Open &Image…", "Ctrl+I", "Choose the image activations are computed on",
            _PIXMAP.SP_FileDialogDetailedView),
    Command("open_image_b", "Open Ima&ge B…", "Ctrl+Shift+I", "A second image to compare with: A, B and A-B in the "
            "Activations, and each layer's A/B similarity on the graph"),
    Command("compare_with", "Co&mpare With…", tip="Another checkpoint of this model (the same architecture, other "
            "weights): colour the graph by how far each layer moved"),
    Command("custom_objects", "Load Custom &Objects…",
            tip="Run the Python file that defines a subclassed model's classes (needs trust)"),
    Command("build_from_code", "&Build Model from Code…",
            tip="Build the model with a constructor call in its Python file and load this file's weights into it "
                "(for classes Keras cannot rebuild, and weights-only files; needs trust)"),
    Command("export_extractor", "Export &Feature Extractor…", "Ctrl+Shift+S",
            "Save the selected layers as a verified .keras or SavedModel feature extractor"),
    Command("features_on_folder", "Run Features on a Fol&der…",
            tip="Compute the selected layer on every image of a folder and save the features (Parquet or .npz), "
                "in the background"),
    Command("stats_on_folder", "Layer S&tatistics over a Folder…",
            tip="Every layer's mean and dead channels over the images of a folder (Parquet), in the background; "
                "then colour the graph by them"),
    Command("save_as_keras3", "Save as &Keras 3…", tip="Write the whole model as a Keras 3 .keras file (Keras 2 "
            "files rebuilt in Keras 3), verified against the original on the current input"),
    Command("copy_python", "&Copy as Python", "Ctrl+Shift+C", "Copy code that rebuilds the extractor for the "
            "selected layers"),
    Command("export_activations_png", "Export Activations as P&NG…"),
    Command("export_activations_npy", "Export Activations as .np&y…"),
    Command("export_svg", "Export Graph as &SVG…"),
    Command("export_png", "Export Graph as &PNG…"),
    Command("cache_budget", "Activation &Cache Size…", tip="Memory kept for computed layer outputs (default 1 GB)"),
    Command("quit", "&Quit", QKeySequence.StandardKey.Quit),
    Command("find", "&Find Layer…", QKeySequence.StandardKey.Find, "Find a layer by name or class",
            _PIXMAP.SP_FileDialogContentsView),
    Command("fit", "&Fit to Window", "Ctrl+0", "Fit the whole graph in the window", _PIXMAP.SP_TitleBarMaxButton),
    Command("zoom_in", "Zoom &In", QKeySequence.StandardKey.ZoomIn, icon=_PIXMAP.SP_ArrowUp),
    Command("zoom_out", "Zoom &Out", QKeySequence.StandardKey.ZoomOut, icon=_PIXMAP.SP_ArrowDown),
    Command("expand_all", "&Expand All Nested Models", "Ctrl+E", icon=_PIXMAP.SP_ToolBarVerticalExtensionButton),
    Command("collapse_all", "&Collapse All Nested Models", "Ctrl+Shift+E", icon=_PIXMAP.SP_TitleBarShadeButton),
    Command("shortcuts", "&Keyboard Shortcuts", "F1", "All keyboard shortcuts"),
    Command("open_log_folder", "Open &Log Folder", tip="The folder of the log file to attach to a bug report"),
    Command("about", "&About Keras Explorer", tip="Versions of Keras Explorer, Keras, TensorFlow and Qt"),
)
FILE_MENU = ("open", "open_weights", "open_image", "open_image_b", "compare_with", "custom_objects", "build_from_code",
             "|recent", "-", "export_extractor", "features_on_folder", "stats_on_folder", "save_as_keras3",
             "copy_python", "export_svg", "export_png", "export_activations_png", "export_activations_npy", "-", "quit")
VIEW_MENU = ("find", "fit", "zoom_in", "zoom_out", "expand_all", "collapse_all")
SETTINGS_MENU = ("cache_budget",)
HELP_MENU = ("shortcuts", "open_log_folder", "about")
TOOLBAR = ("open", "open_image", "fit", "zoom_in", "zoom_out", "expand_all", "collapse_all", "find")


def install_actions(window: QMainWindow, slots: dict[str, Callable[[], object]], docks: list[QDockWidget],
                    recent_files: Callable[[], list[str]], open_recent: Callable[[str], None]) -> dict[str, QAction]:
    """Create every command's QAction bound to ``slots[name]``, and the menus and toolbar holding them."""
    actions = {command.name: _action(window, command, slots[command.name]) for command in COMMANDS}
    menu_bar = window.menuBar()
    file_menu = menu_bar.addMenu("&File")
    for name in FILE_MENU:
        if name == "-":
            file_menu.addSeparator()
        elif name == "|recent":
            recent = file_menu.addMenu("Open &Recent")
            recent.setObjectName("recentMenu")
            recent.aboutToShow.connect(lambda menu=recent: _fill_recent(menu, recent_files(), open_recent))
        else:
            file_menu.addAction(actions[name])
    view_menu = menu_bar.addMenu("&View")
    view_menu.addActions([actions[n] for n in VIEW_MENU])
    view_menu.addSeparator()
    view_menu.addActions([dock.toggleViewAction() for dock in docks])
    menu_bar.addMenu("&Settings").addActions([actions[n] for n in SETTINGS_MENU])
    menu_bar.addMenu("&Help").addActions([actions[n] for n in HELP_MENU])
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addActions([actions[n] for n in TOOLBAR])
    return actions


def _action(window: QMainWindow, command: Command, slot: Callable[[], object]) -> QAction:
    item = QAction(command.text, window)
    if command.icon is not None:
        item.setIcon(window.style().standardIcon(command.icon))
    item.setObjectName(command.name)
    if command.shortcut:
        item.setShortcut(QKeySequence(command.shortcut))
    item.setToolTip(f"{command.tip or command.text.replace('…', '').replace('&', '')}"
                    + (f" ({item.shortcut().toString()})" if command.shortcut else ""))
    item.triggered.connect(lambda _checked=False: slot())
    return item


def _fill_recent(menu: QMenu, files: list[str], open_recent: Callable[[str], None]) -> None:
    menu.clear()
    existing = [p for p in files if Path(p).exists()]
    for path in existing:
        menu.addAction(Path(path).name, lambda p=path: open_recent(p)).setToolTip(path)
    if not existing:
        menu.addAction("(no recent files)").setEnabled(False)
