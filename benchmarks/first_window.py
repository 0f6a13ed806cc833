"""Time from process launch to the first painted main window; run by ``bench.py`` in a fresh process.

``python benchmarks/first_window.py LAUNCH_TIME [MODEL | --bare]``: LAUNCH_TIME is ``time.time()`` taken by the
parent just before it started this process, so interpreter start-up and every import are counted. ``--bare`` is
the baseline: an empty QMainWindow of the same size, nothing of ours imported. The window is made the way
``explorer.ui.app.run_app`` makes it (same application set-up, ``show()``, then ``open_later(MODEL)``); once the
first paint pass of the window has finished, one JSON line is printed and the process quits without waiting
for the model to load.
"""

from __future__ import annotations

import sys
import time

launch = float(sys.argv[1])

import json  # noqa: E402  (the launch time is read before anything else is imported)
from pathlib import Path  # noqa: E402

from PySide6.QtCore import QEvent, QObject, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402


class FirstPaint(QObject):
    """Notes the first Paint event of any widget in ``window``; reports after that paint pass is over."""

    def __init__(self, window: QWidget) -> None:
        super().__init__()
        self.window = window
        self.first_paint: float | None = None
        self.painted_widgets = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and isinstance(watched, QWidget) and watched.window() is self.window:
            self.painted_widgets += 1
            if self.first_paint is None:
                self.first_paint = time.time()
                QTimer.singleShot(0, self.report)  # runs once the whole window has been painted and flushed
        return False

    def report(self) -> None:
        done = time.time()
        print(json.dumps({
            "window_shown_s": done - launch,
            "first_paint_event_s": self.first_paint - launch,
            "painted_widgets": self.painted_widgets,
            "tensorflow_imported": "tensorflow" in sys.modules,
            "keras_imported": "keras" in sys.modules,
        }), flush=True)
        QApplication.instance().quit()


def main() -> int:
    model = sys.argv[2] if len(sys.argv) > 2 else None
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if model == "--bare":
        return bare_window(app)
    from explorer import __version__
    from explorer.resources import demo_model
    from explorer.ui.main_window import MainWindow

    app.setApplicationName("Keras Explorer")
    app.setOrganizationName("KerasExplorer")
    app.setApplicationVersion(__version__)
    window = MainWindow()
    watcher = FirstPaint(window)
    app.installEventFilter(watcher)
    window.show()
    window.open_later(Path(model) if model else demo_model())
    QTimer.singleShot(30_000, lambda: (print("first_window: no paint within 30 s", file=sys.stderr), app.exit(2)))
    code = app.exec()
    app.removeEventFilter(watcher)
    window.session.close()  # do not leave the model load running while the interpreter exits
    return code


def bare_window(app: QApplication) -> int:
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    window.resize(1400, 900)
    watcher = FirstPaint(window)
    app.installEventFilter(watcher)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
