"""Runs plain functions off the GUI thread; the newest request per channel wins, stale results are dropped.

Work functions are ordinary module-level functions taking a ``threading.Event`` to honour cancellation
(the Orange3 pattern), so they are tested without Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal


class TaskRunner(QObject):
    finished = Signal(str, int, object)  # channel, ticket, result
    failed = Signal(str, int, object)  # channel, ticket, exception

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explorer-task")
        self._tickets: dict[str, int] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._callbacks: dict[tuple[str, int], tuple[Callable, Callable]] = {}
        self.finished.connect(self._deliver)
        self.failed.connect(self._deliver_error)

    def submit(self, channel: str, work: Callable[[threading.Event], Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None]) -> int:
        """Run ``work(cancelled)`` in the background; a newer submit on the channel cancels this one."""
        self.cancel(channel)
        ticket = self._tickets.get(channel, 0) + 1
        self._tickets[channel] = ticket
        cancelled = threading.Event()
        self._cancel[channel] = cancelled
        self._callbacks[(channel, ticket)] = (on_done, on_error)
        future = self._executor.submit(work, cancelled)
        future.add_done_callback(lambda f: self._report(channel, ticket, f))
        return ticket

    def cancel(self, channel: str) -> None:
        if channel in self._cancel:
            self._cancel[channel].set()
        self._tickets[channel] = self._tickets.get(channel, 0) + 1

    def shutdown(self) -> None:
        for event in self._cancel.values():
            event.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _report(self, channel: str, ticket: int, future: Future) -> None:
        error = future.exception()
        if error is None:
            self.finished.emit(channel, ticket, future.result())
        else:
            self.failed.emit(channel, ticket, error)

    def _take(self, channel: str, ticket: int) -> tuple[Callable, Callable] | None:
        callbacks = self._callbacks.pop((channel, ticket), None)
        return callbacks if self._tickets.get(channel) == ticket else None

    def _deliver(self, channel: str, ticket: int, result: Any) -> None:
        callbacks = self._take(channel, ticket)
        if callbacks:
            callbacks[0](result)

    def _deliver_error(self, channel: str, ticket: int, error: BaseException) -> None:
        callbacks = self._take(channel, ticket)
        if callbacks:
            callbacks[1](error)
