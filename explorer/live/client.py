"""Client side of the live tier: starts the worker process, sends requests, watches it, restarts it.

Events from the worker (and ``WorkerLost`` when it dies, hangs or grows past its memory cap) are passed to
``on_event`` from a background thread; the Qt layer turns them into signals. Nothing here imports Qt or
TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from explorer.live.protocol import (
    BuildFromCode,
    Compute,
    ExplainRequest,
    ExportRequest,
    Failed,
    LayerNumbersRequest,
    LoadModel,
    Shutdown,
    Status,
    UpgradeRequest,
    WorkerState,
)
from explorer.model.graph import Target

log = logging.getLogger(__name__)
DEFAULT_MEMORY_CAP = 8 << 30
DEFAULT_TIMEOUT_S = 300.0
MAX_FAILED_STARTS = 3  # workers in a row that end before reporting ready


@dataclass(frozen=True)
class WorkerLost:
    reason: str


WorkerMain = Callable[[Connection], None]


class LiveTier:
    """The worker process seen from the window. ``worker_main`` is what the spawned process runs (the
    runtime's ``explorer.runtime.worker.worker_main``): passed in, since this side never imports the runtime."""

    def __init__(self, on_event: Callable[[Any], None], worker_main: WorkerMain, memory_cap: int = DEFAULT_MEMORY_CAP,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.on_event = on_event
        self.worker_main = worker_main
        self.memory_cap = memory_cap
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._generation = 0
        self._busy_since: float | None = None
        self._model_path: str | None = None
        self._trusted = self._tainted = False
        self._custom_objects: str | None = None
        self._build: BuildFromCode | None = None
        self._weights: str | None = None
        self._load_id = 0
        self._stopping = False
        self._failed_starts = 0
        self.peak_rss = 0
        atexit.register(self.detach)  # at interpreter exit the worker dies with us: do not restart it

    def detach(self) -> None:
        """Nobody listens any more (interpreter exit, window gone): end the worker, never restart it."""
        self._stopping = True
        self._kill()

    # -- lifecycle
    def start(self) -> None:
        with self._lock:
            self._stopping = False
        self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping:  # stop() came while a restart was under way
                return
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe(duplex=True)
            # Not a daemon: export verification starts a process of its own (daemons may not have children).
            process = context.Process(target=self.worker_main, args=(child,), name="explorer-live-tier")
            process.start()
            child.close()
            self._process, self._connection = process, parent
            self._generation += 1
            generation = self._generation
        threading.Thread(target=self._read, args=(parent, generation), daemon=True).start()
        threading.Thread(target=self._watch, args=(process, generation), daemon=True).start()
        if self._model_path:  # after a restart the model comes back by itself, answering the same request
            self._send(LoadModel(self._load_id, self._model_path, self._trusted, self._custom_objects, self._build,
                                 self._weights))

    def stop(self, wait: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            process, connection = self._process, self._connection
            self._process = self._connection = None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            connection.send(Shutdown())
        process.join(wait)
        if process.is_alive():
            process.kill()
            process.join()
        connection.close()
        self.on_event(Status(WorkerState.STOPPED))

    def restart(self, reason: str) -> None:
        if self._stopping:
            return
        log.warning("live tier restarted: %s", reason)
        self._kill()
        self.on_event(WorkerLost(reason))
        self._spawn()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- requests
    def load(self, path: str, trusted: bool = False, custom_objects: str | None = None,
             build: BuildFromCode | None = None, weights: str | None = None) -> int:
        """Load a model in the worker (``build``: the model built by code in ``custom_objects`` instead,
        the file's weights loaded into it; ``weights``: an architecture JSON's save_weights file). A worker
        that ran a trusted (flagged) file is replaced first: whatever that file's code did to the process must
        not carry over to the next one."""
        if self._tainted and str(path) != self._model_path and self._process is not None:
            self._model_path = None  # the fresh worker must not reload the flagged file
            self._kill()
            self._spawn()
        self._model_path, self._trusted, self._tainted = str(path), trusted, trusted
        self._custom_objects, self._build, self._weights = custom_objects, build, weights
        self._load_id = next(self._ids)
        return self._send(LoadModel(self._load_id, str(path), trusted, custom_objects, build, weights))

    def compute(self, layer: str, call_site: tuple[int, ...], inputs: dict[str, np.ndarray]) -> int:
        return self._send(Compute(next(self._ids), layer, tuple(call_site), inputs))

    def export(self, targets: list[Target], path: str, fmt: str, inputs: dict[str, np.ndarray]) -> int:
        return self._send(ExportRequest(next(self._ids), tuple(targets), str(path), fmt, inputs))

    def save_as_keras3(self, path: str, inputs: dict[str, np.ndarray]) -> int:
        return self._send(UpgradeRequest(next(self._ids), str(path), inputs))

    def explain(self, method: str, layer: str | None, call_site: tuple[int, ...], class_index: int | None,
                inputs: dict[str, np.ndarray], baseline: np.ndarray | None = None, steps: int = 64,
                samples: int = 25) -> int:
        return self._send(ExplainRequest(next(self._ids), method, layer, tuple(call_site), class_index, inputs,
                                         baseline, steps, samples))

    def layer_numbers(self, measure: str, inputs: dict[str, np.ndarray], second: dict[str, np.ndarray] | None = None,
                      other: str | None = None, other_trusted: bool = False) -> int:
        return self._send(LayerNumbersRequest(next(self._ids), measure, inputs, second, other, other_trusted))

    def _send(self, message: Any) -> int:
        with self._lock:
            connection = self._connection
        if connection is None:
            self.on_event(Failed(message.request, "the live tier is not running"))
            return message.request
        try:
            connection.send(message)
        except (OSError, ValueError) as error:
            self.on_event(Failed(message.request, f"the live tier is gone ({error})"))
        return message.request

    # -- background threads
    def _read(self, connection: Connection, generation: int) -> None:
        came_up = False
        while True:
            try:
                event = connection.recv()
            except (EOFError, OSError):
                break
            if isinstance(event, Status) and event.state == WorkerState.READY:
                came_up, self._failed_starts = True, 0
            if isinstance(event, Failed) and event.detail:
                log.error("live tier, request %d: %s\n%s", event.request, event.message, event.detail)
            if isinstance(event, Status):
                self._busy_since = time.monotonic() if event.state in WorkerState.BUSY else None
            self.on_event(event)
        if generation != self._generation or self._stopping:
            return
        self._failed_starts = 0 if came_up else self._failed_starts + 1
        if self._failed_starts >= MAX_FAILED_STARTS:  # it dies before it is up: restarting would only loop
            log.error("live tier gave up: the worker ended %d times before it was ready", self._failed_starts)
            self.on_event(Status(WorkerState.FAILED, "the live tier cannot start (details in the log)"))
            return
        self.on_event(Status(WorkerState.FAILED, "the live tier stopped unexpectedly; restarting it"))
        self.restart("the worker process ended unexpectedly")

    def _watch(self, process: multiprocessing.process.BaseProcess, generation: int) -> None:
        while generation == self._generation and process.is_alive():
            rss = _rss_bytes(process.pid)
            self.peak_rss = max(self.peak_rss, rss)
            if rss > self.memory_cap:
                self.restart(f"the worker used {rss / 2**30:.1f} GB, over its {self.memory_cap / 2**30:.1f} GB cap")
                return
            busy = self._busy_since
            if busy is not None and time.monotonic() - busy > self.timeout:
                self.restart(f"the worker did not answer within {self.timeout:.0f} s")
                return
            time.sleep(0.1)

    def _kill(self) -> None:
        with self._lock:
            process, connection = self._process, self._connection
            self._process = self._connection = None
            self._generation += 1
            self._busy_since = None
        if process is not None:
            process.kill()
            process.join()
        if connection is not None:
            connection.close()


def _rss_bytes(pid: int | None) -> int:
    return proc_status_bytes(pid, "VmRSS:")


def proc_status_bytes(pid: int | None, key: str) -> int:
    """A memory figure of a process from /proc/PID/status (Linux), e.g. ``VmRSS:``; 0 where it is not available."""
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
