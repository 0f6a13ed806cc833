"""Starts the Qt application and the main window."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from explorer import __version__
from explorer.logs import setup_logging
from explorer.model.landmarks import telling_layer
from explorer.resources import demo_images, demo_model, resources_dir
from explorer.ui.main_window import MainWindow
from explorer.ui.theme import apply_theme


def run_app(model: str | None = None, image: str | None = None) -> int:
    setup_logging()
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
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: (apply_theme(app), window.restyle()))
    target = Path(model) if model else demo_model()
    if target.resolve() == demo_model():
        show_first_layer(window)
    window.open_later(target)
    picture = image or next(iter(demo_images()), None)
    if picture:
        window.open_image(picture)
    return app.exec()


def show_first_layer(window: MainWindow) -> None:
    """First run (the demo): select a telling layer once the graph is drawn, so its feature maps appear."""
    def select() -> None:
        forget()
        layer = telling_layer(window.session.graph) if window.session.graph else None
        if layer:
            window.session.select(layer)

    def forget() -> None:  # once only, and not for a later file when this one fails
        window.graph_drawn.disconnect(select)
        window.session.failed.disconnect(forget)

    window.graph_drawn.connect(select)
    window.session.failed.connect(forget)
