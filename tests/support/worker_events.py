"""The events a real live-tier worker sends, collected from its reader thread for a test to wait on."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

WORKER_TIMEOUT_S = 120.0


class WorkerEvents:
    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()

    def __call__(self, event: Any) -> None:
        self.queue.put(event)

    def wait_for(self, predicate: Callable[[Any], bool], what: str) -> Any:
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                break
            if predicate(event):
                return event
        raise AssertionError(f"no {what} within {WORKER_TIMEOUT_S:.0f} s")
