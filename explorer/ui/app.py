"""Starts the Qt application and the main window."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QWidget

from explorer import __version__
from explorer.logs import setup_logging
from explorer.model.landmarks import telling_layer
from explorer.resources import demo_images, demo_model, resources_dir
from explorer.ui.main_window import MainWindow
from explorer.ui.theme import apply_theme

PAINT_WAIT_MS = 1000


def run_app(model: str | None = None, image: str | None = None) -> int:
    setup_logging()
    app = application()
    open_window(app, model, image)
    return app.exec()


def application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Keras Explorer")
    app.setOrganizationName("KerasExplorer")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("keras-explorer")  # matches packaging/linux/keras-explorer.desktop (Wayland needs it)
    icon = resources_dir() / "icons" / "keras-explorer.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    apply_theme(app)
    return app


def open_window(app: QApplication, model: str | None = None, image: str | None = None) -> MainWindow:
    """Show the main window; the live tier starts and the image (default: a demo one) and the model (default: the
    demo) are read once the window is painted, so that nothing delays its first paint."""
    window = MainWindow(start_live=False)
    window.show()
    # The system switched light/dark: new palette, and the canvas is redrawn in the new colours.
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: (apply_theme(app), window.restyle()))
    target = Path(model) if model else demo_model()
    if target.resolve() == demo_model():
        show_first_layer(window)

    def start() -> None:
        window.live.start()  # TensorFlow loads in its own process while the files are read here
        picture = image or next(iter(demo_images()), None)
        if picture:
            window.open_image(picture)
        window.open_model(target)

    after_first_paint(window, start)
    return window


def after_first_paint(window: QWidget, then: Callable[[], None]) -> None:
    """Run ``then`` once the window's first paint pass is over (a zero timer set before ``show`` runs before it),
    or after PAINT_WAIT_MS if no paint comes (a window that starts hidden or minimised)."""
    class Watcher(QObject):
        done = False

        def run(self) -> None:
            if not self.done:
                self.done = True
                window.removeEventFilter(self)
                self.deleteLater()
                then()

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                QTimer.singleShot(0, self.run)
            return False

    watcher = Watcher(window)
    window.installEventFilter(watcher)
    QTimer.singleShot(PAINT_WAIT_MS, watcher.run)


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
