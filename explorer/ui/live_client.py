"""Qt face of the live tier: worker events become signals delivered on the GUI thread."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.live.client import LiveTier, WorkerLost
from explorer.live.protocol import (
    Activation,
    BuildFromCode,
    Explained,
    Exported,
    Failed,
    LayerNumbers,
    Loaded,
    Status,
    Traced,
    WorkerState,
)
from explorer.runtime.worker import worker_main


class LiveClient(QObject):
    status_changed = Signal(str, str)  # state, detail
    model_loaded = Signal(object)  # Loaded
    activation_ready = Signal(object)  # Activation
    request_failed = Signal(int, str)
    worker_lost = Signal(str)
    export_done = Signal(object)  # Exported
    traced = Signal(object)  # Traced: the structure recovered from a subclassed model
    explained = Signal(object)  # Explained: an attribution map
    layer_numbers_ready = Signal(object)  # LayerNumbers: one number per layer, for the graph overlay

    def __init__(self, parent: QObject | None = None, **tier_options: Any) -> None:
        super().__init__(parent)
        self.tier = LiveTier(self._dispatch, worker_main, **tier_options)
        self.state = WorkerState.STOPPED

    def start(self) -> None:
        self.tier.start()

    def stop(self) -> None:
        self.tier.stop()

    def load(self, path: str, trusted: bool = False, custom_objects: str | None = None,
             build: BuildFromCode | None = None, weights: str | None = None) -> int:
        return self.tier.load(path, trusted, custom_objects, build, weights)

    def explain(self, method: str, layer: str | None, call_site: tuple[int, ...], class_index: int | None,
                inputs: dict[str, np.ndarray], baseline: np.ndarray | None = None, steps: int = 64) -> int:
        return self.tier.explain(method, layer, call_site, class_index, inputs, baseline, steps)

    def layer_numbers(self, measure: str, inputs: dict[str, np.ndarray], second: dict[str, np.ndarray] | None = None,
                      other: str | None = None, other_trusted: bool = False) -> int:
        return self.tier.layer_numbers(measure, inputs, second, other, other_trusted)

    def compute(self, layer: str, call_site: tuple[int, ...], inputs: dict[str, np.ndarray]) -> int:
        return self.tier.compute(layer, call_site, inputs)

    def export(self, targets: list, path: str, fmt: str, inputs: dict[str, np.ndarray]) -> int:
        return self.tier.export(targets, path, fmt, inputs)

    def save_as_keras3(self, path: str, inputs: dict[str, np.ndarray]) -> int:
        return self.tier.save_as_keras3(path, inputs)

    def _dispatch(self, event: Any) -> None:
        """Runs on the tier's reader thread; Qt queues each signal to the receivers' (GUI) thread."""
        try:
            self._emit(event)
        except RuntimeError:  # the window (and this object) is gone: stop the worker, nobody is listening
            self.tier.detach()

    def _emit(self, event: Any) -> None:
        if isinstance(event, Status):
            self.state = event.state
            self.status_changed.emit(event.state, event.detail)
        elif isinstance(event, Loaded):
            self.model_loaded.emit(event)
        elif isinstance(event, Activation):
            self.activation_ready.emit(event)
        elif isinstance(event, Failed):
            self.request_failed.emit(event.request, event.message)
        elif isinstance(event, Traced):
            self.traced.emit(event)
        elif isinstance(event, Exported):
            self.export_done.emit(event)
        elif isinstance(event, Explained):
            self.explained.emit(event)
        elif isinstance(event, LayerNumbers):
            self.layer_numbers_ready.emit(event)
        elif isinstance(event, WorkerLost):
            self.worker_lost.emit(event.reason)
