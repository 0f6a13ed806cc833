"""Starts the Qt application and the main window."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from explorer import __version__
from explorer.resources import demo_images, demo_model, resources_dir
from explorer.ui.main_window import MainWindow
from explorer.ui.theme import apply_theme


def run_app(model: str | None = None, image: str | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Keras Explorer")
    app.setOrganizationName("KerasExplorer")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("keras-explorer")  # matches packaging/linux/keras-explorer.desktop (Wayland needs it)
    icon = resources_dir() / "icons" / "keras-explorer.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    apply_theme(app)
    window = MainWindow()
    window.show()
    # The system switched light/dark: new palette, and the canvas is redrawn in the new colours.
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: (apply_theme(app), window.relayout()))
    target = Path(model) if model else demo_model()
    window.open_later(target)
    picture = image or next(iter(demo_images()), None)
    if picture:
        window.open_image(picture)
    return app.exec()
