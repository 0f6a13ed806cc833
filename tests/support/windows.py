"""A real main window with its live tier, for module-scoped UI fixtures (where qtbot is not available)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtTest import QTest


def wait_with_events(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Wait with the Qt event loop running."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        QTest.qWait(20)


@contextlib.contextmanager
def live_main_window(folder: Path, start_s: float) -> Iterator[Any]:
    """A shown MainWindow (settings in ``folder``) whose worker process started within ``start_s``; closed
    afterwards."""
    from explorer.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(folder / "explorer.ini"), QSettings.Format.IniFormat), start_live=True)
    window.show()
    QTest.qWaitForWindowExposed(window)
    try:
        wait_with_events(lambda: window.live.tier.pid is not None, start_s, "the worker process to start")
        yield window
    finally:
        window.close()
