"""What crosses the process boundary between the window and the live-tier worker: small picklable records."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.model.graph import InputSpec, Target
from explorer.model.traced import Trace
from explorer.text import shape_text


class WorkerState:
    """What the worker is doing, as reported by ``Status`` and shown by the status indicator."""

    STARTING, LOADING, READY, COMPUTING = "starting", "loading", "ready", "computing"
    EXPORTING, FAILED, STOPPED = "exporting", "failed", "stopped"
    BUSY = (LOADING, COMPUTING, EXPORTING)  # states the hang watchdog times


KERAS3_FORMAT = "keras 3"  # ExportReport.format of Save as Keras 3 (the whole model, not an extractor)


@dataclass(frozen=True)
class ExportReport:
    path: str
    format: str
    outputs: tuple[str, ...]
    max_abs_diff: float
    verified: bool
    message: str


@dataclass(frozen=True)
class BuildFromCode:
    """A model built by the user's code instead of from its file: ``call`` (e.g. ``Net(pretrained=False)``) is
    evaluated in the custom-objects file; ``input_shape`` (no batch axis) builds it when neither the constructor
    nor the file (a weights-only file records none) does."""

    call: str
    input_shape: tuple[int | None, ...] = ()

    def __str__(self) -> str:
        return self.call if not self.input_shape else f"{self.call} on inputs {shape_text(self.input_shape)}"


@dataclass(frozen=True)
class LoadModel:
    request: int
    path: str
    trusted: bool = False  # the user consented to running the code this file names
    custom_objects: str | None = None  # a Python file defining the model's classes (run only when trusted)
    build: BuildFromCode | None = None  # evaluated in custom_objects; the file's weights go into what it builds
    weights: str | None = None  # an architecture JSON's save_weights file chosen by the user (else the one beside)


@dataclass(frozen=True)
class Compute:
    request: int
    layer: str
    call_site: tuple[int, ...]
    inputs: dict[str, np.ndarray] = field(compare=False)


@dataclass(frozen=True)
class ExportRequest:
    request: int
    targets: tuple[Target, ...]
    path: str
    format: str
    inputs: dict[str, np.ndarray] = field(compare=False)


@dataclass(frozen=True)
class UpgradeRequest:
    """Save as Keras 3: the whole loaded model, verified on ``inputs``; answered with Exported."""

    request: int
    path: str
    inputs: dict[str, np.ndarray] = field(compare=False)


@dataclass(frozen=True)
class ExplainRequest:
    """An attribution map (explorer.runtime.attribution) of ``class_index`` (None: the top-1) on ``inputs``;
    ``layer`` for Grad-CAM (None: the last spatial layer); ``baseline`` for Integrated Gradients."""

    request: int
    method: str
    layer: str | None
    call_site: tuple[int, ...]
    class_index: int | None
    inputs: dict[str, np.ndarray] = field(compare=False)
    baseline: np.ndarray | None = field(default=None, compare=False)
    steps: int = 64
    samples: int = 25


@dataclass(frozen=True)
class Explained:
    request: int
    method: str
    layer: str | None  # the layer Grad-CAM used
    class_index: int
    score: float
    map: np.ndarray = field(compare=False)
    scores: tuple[float, ...] = ()  # every class's score (for the class list)
    baseline_score: float | None = None
    seconds: float = 0.0


class LayerMeasure:
    """What LayerNumbersRequest colours the graph by: one number per layer and call site."""

    MEAN, DEAD, SIMILARITY, WEIGHT_NORM = "activation mean", "dead channels", "A/B similarity", "weight norm"
    CHECKPOINT, WEIGHT_CHANGE = "checkpoint difference", "checkpoint weight change"  # against ``other``
    ALL = (MEAN, DEAD, SIMILARITY, CHECKPOINT, WEIGHT_CHANGE, WEIGHT_NORM)
    BY_LAYER = (WEIGHT_NORM, WEIGHT_CHANGE)  # one number per layer: keyed with the call site ()


@dataclass(frozen=True)
class LayerNumbersRequest:
    """One pass through the model for ``measure`` on ``inputs`` (``second`` for A/B similarity, ``other`` the
    second checkpoint's file for a checkpoint difference)."""

    request: int
    measure: str
    inputs: dict[str, np.ndarray] = field(compare=False)
    second: dict[str, np.ndarray] | None = field(default=None, compare=False)
    other: str | None = None
    other_trusted: bool = False  # the user consented to the code the second checkpoint names


@dataclass(frozen=True)
class LayerNumbers:
    request: int
    measure: str
    values: dict[tuple[str, tuple[int, ...]], float] = field(compare=False)
    seconds: float = 0.0


@dataclass(frozen=True)
class Exported:
    request: int
    report: ExportReport


@dataclass(frozen=True)
class Shutdown:
    request: int = 0


@dataclass(frozen=True)
class Status:
    state: str
    detail: str = ""


@dataclass(frozen=True)
class Loaded:
    request: int
    model_name: str
    inputs: tuple[InputSpec, ...]


@dataclass(frozen=True)
class Traced:
    request: int
    trace: Trace


@dataclass(frozen=True)
class Activation:
    request: int
    layer: str
    call_site: tuple[int, ...]
    outputs: list[np.ndarray] = field(compare=False)
    seconds: float = 0.0


@dataclass(frozen=True)
class Failed:
    request: int
    message: str  # one line for the user
    detail: str = ""  # the worker's traceback, for the log file
