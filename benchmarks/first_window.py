"""Time from process launch to the first painted main window; run by ``bench.py`` in a fresh process.

``python benchmarks/first_window.py LAUNCH_TIME [MODEL | --bare]``: LAUNCH_TIME is ``time.time()`` taken by the
parent just before it started this process, so interpreter start-up and every import are counted. The app is
started through its entry point, ``explorer.cli.main([MODEL])``, which is what ``keras-explorer MODEL`` and
``python -m explorer MODEL`` run (the command line, logging, the application set-up, the window with the demo
image; the model is read and the live tier started once the window is painted). ``--bare`` is the baseline: a
bare QMainWindow of the same size with a QGraphicsView (the graph canvas's widget) as its central widget, nothing
of ours imported. Once the first paint pass of the main window has finished, one JSON line is printed and the
process quits without waiting for the model to load.
"""

from __future__ import annotations

import sys
import time

launch = float(sys.argv[1])

import json  # noqa: E402  (the launch time is read before anything else is imported)

from PySide6.QtCore import QEvent, QObject, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget  # noqa: E402


class FirstPaint(QObject):
    """Notes the first Paint event of any widget in a main window; reports after that paint pass is over."""

    def __init__(self) -> None:
        super().__init__()
        self.first_paint: float | None = None
        self.painted_widgets = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.Paint and isinstance(watched, QWidget)
                and isinstance(watched.window(), QMainWindow)):
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
    model = sys.argv[2:3]
    app = QApplication.instance() or QApplication(sys.argv[:1])  # the app's set-up reuses it
    watcher = FirstPaint()
    app.installEventFilter(watcher)
    QTimer.singleShot(30_000, lambda: (print("first_window: no paint within 30 s", file=sys.stderr), app.exit(2)))
    if model == ["--bare"]:
        return bare_window(app)
    from explorer.cli import main as explorer_main

    code = explorer_main(model)
    app.removeEventFilter(watcher)
    for window in app.topLevelWidgets():
        if hasattr(window, "session"):
            window.session.close()  # do not leave the model load running while the interpreter exits
    return code


def bare_window(app: QApplication) -> int:
    from PySide6.QtWidgets import QGraphicsView

    window = QMainWindow()
    window.setCentralWidget(QGraphicsView())
    window.resize(1400, 900)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
