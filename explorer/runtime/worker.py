"""The live-tier worker process: imports TensorFlow, holds the loaded model, answers requests in order.

A newer ``Compute`` already waiting in the pipe supersedes older ones, so clicking through layers quickly
only computes the last one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from explorer.live.protocol import (
    Activation,
    Compute,
    ExplainRequest,
    Exported,
    ExportRequest,
    Failed,
    LayerNumbers,
    LayerNumbersRequest,
    Loaded,
    LoadModel,
    Shutdown,
    Status,
    Traced,
    UpgradeRequest,
    WorkerState,
)
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.export import export_live
from explorer.runtime.extraction import extract
from explorer.runtime.guard import private_home
from explorer.runtime.keras3_file import save_as_keras3
from explorer.runtime.layer_numbers import LayerNumbersSource
from explorer.runtime.loading import LiveModel, open_model, read_file_graph


def worker_main(connection: Connection) -> None:
    # When the window goes away mid-answer there is nobody left to answer: end quietly.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        _serve(connection)


def _serve(connection: Connection) -> None:
    private_home()  # before TensorFlow: its caches, Keras' config and any temp files stay in our folder
    connection.send(Status(WorkerState.STARTING, "importing TensorFlow"))
    import keras  # noqa: F401  (the import is the slow part; do it before reporting ready)

    session = _Session(connection.send)
    connection.send(Status(WorkerState.READY, "no model loaded"))
    inbox: queue.Queue = queue.Queue()
    # A reader thread empties the pipe at once: the window never blocks sending a large input while a layer
    # computes, and a newer request is already here to supersede the older ones.
    threading.Thread(target=_read_all, args=(connection, inbox), daemon=True).start()
    pending: list[Any] = []
    while True:
        if not pending:
            pending.append(inbox.get())
        while not inbox.empty():  # take everything already sent, then keep only the newest compute
            pending.append(inbox.get())
        message = pending.pop(0)
        if isinstance(message, EOFError):
            raise message
        if isinstance(message, Compute) and any(isinstance(m, Compute) for m in pending):
            continue
        if isinstance(message, Shutdown):
            connection.close()
            return
        session.handle(message)


def _read_all(connection: Connection, inbox: queue.Queue) -> None:
    while True:
        try:
            inbox.put(connection.recv())
        except (EOFError, OSError):
            inbox.put(EOFError())
            return


class _Session:
    def __init__(self, send: Callable[[Any], None]) -> None:
        self.send = send
        self.live: LiveModel | None = None
        self.path = ""
        self.trusted = False
        self.custom_objects: str | None = None  # the verification process of an export runs it too
        self.weights: str | None = None  # an architecture JSON's save_weights file the user chose
        self.extractors: dict[tuple[str, tuple[int, ...]], Any] = {}
        self.numbers = LayerNumbersSource()  # the flat model and a second checkpoint, kept between requests

    def handle(self, message: Any) -> None:
        try:
            if isinstance(message, LoadModel):
                self._load(message)
            elif self.live is None:
                self.send(Failed(getattr(message, "request", 0), "no model is loaded"))
            elif isinstance(message, Compute):
                self._compute(message)
            elif isinstance(message, ExportRequest):
                self._export(message)
            elif isinstance(message, UpgradeRequest):
                self._save_as_keras3(message)
            elif isinstance(message, ExplainRequest):
                self._explain(message)
            elif isinstance(message, LayerNumbersRequest):
                self._layer_numbers(message)
            else:
                self.send(Failed(getattr(message, "request", 0), f"unknown request {type(message).__name__}"))
        except Exception as error:  # a model or layer failing must not end the worker
            text = str(error) if isinstance(error, RuntimeFailure) else f"{type(error).__name__}: {error}"
            self.send(Failed(message.request, text, traceback.format_exc()))
            self.send(Status(WorkerState.READY if self.live is not None else WorkerState.FAILED, text))

    def _load(self, message: LoadModel) -> None:
        self.live, self.extractors, self.path, self.trusted = None, {}, message.path, message.trusted
        self.numbers = LayerNumbersSource()
        self.custom_objects, self.weights = message.custom_objects, message.weights
        self.send(Status(WorkerState.LOADING, message.path))
        live = open_model(message.path, message.trusted, message.custom_objects, build=message.build,
                          weights=message.weights)
        if live.trace is not None:
            self.send(Traced(message.request, live.trace))
        self.live = live
        self.send(Loaded(message.request, live.model.name, tuple(live.specs)))
        self.send(Status(WorkerState.READY, live.model.name))

    def _compute(self, message: Compute) -> None:
        self.send(Status(WorkerState.COMPUTING, message.layer))
        started = time.perf_counter()
        outputs = extract(self.live, message.layer, message.call_site, message.inputs, self.extractors)
        seconds = time.perf_counter() - started
        self.send(Activation(message.request, message.layer, message.call_site, outputs, seconds))
        self.send(Status(WorkerState.READY, self.live.model.name))

    def _export(self, message: ExportRequest) -> None:
        self.send(Status(WorkerState.EXPORTING, message.path))
        report = export_live(self.live, self.path, list(message.targets), message.path, message.format,
                             message.inputs, self.trusted, self.custom_objects)
        self.send(Exported(message.request, report))
        self.send(Status(WorkerState.READY, self.live.model.name))

    def _save_as_keras3(self, message: UpgradeRequest) -> None:
        self.send(Status(WorkerState.EXPORTING, message.path))
        report = save_as_keras3(self.path, read_file_graph(self.path, self.weights), message.path, message.inputs,
                                self.trusted, self.live)
        self.send(Exported(message.request, report))
        self.send(Status(WorkerState.READY, self.live.model.name))

    def _explain(self, message: ExplainRequest) -> None:
        self.send(Status(WorkerState.COMPUTING, f"{message.method} attribution"))
        started = time.perf_counter()
        explained = self.numbers.explain(self.live, message)
        self.send(dataclasses.replace(explained, request=message.request, seconds=time.perf_counter() - started))
        self.send(Status(WorkerState.READY, self.live.model.name))

    def _layer_numbers(self, message: LayerNumbersRequest) -> None:
        self.send(Status(WorkerState.COMPUTING, message.measure))
        started = time.perf_counter()
        values = self.numbers.measure(self.live, message, self.path, self.custom_objects)
        self.send(LayerNumbers(message.request, message.measure, values, time.perf_counter() - started))
        self.send(Status(WorkerState.READY, self.live.model.name))
