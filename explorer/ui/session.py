"""The window's state in one object: the open file, its graph, the open nested models, the selection, trust,
the current input (and a second one, B, to compare with), a second checkpoint to compare with, and the per-layer
numbers the graph is coloured by. Panels read it and subscribe to its signals; actions change it; nothing else stores
a copy (the napari ViewerModel pattern)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.inputs.images import ImageError, LoadedImage, load_image
from explorer.inputs.sources import PreparedInput
from explorer.live.protocol import BuildFromCode
from explorer.model.files import load_graph
from explorer.model.graph import LayerGraph, Target
from explorer.model.model_file import is_architecture_json
from explorer.model.traced import Trace, traced_graph
from explorer.text import BANNER, one_line
from explorer.ui.layer_values import LayerValues
from explorer.ui.settings import Settings
from explorer.ui.tasks import TaskRunner
from explorer.ui.trust import TrustStore

log = logging.getLogger(__name__)


class Session(QObject):
    file_opened = Signal()  # a file (or the same one again) was opened: drop what belongs to the previous one
    graph_changed = Signal()  # a file was opened, or the live tier traced its structure: ``graph`` is new
    expanded_changed = Signal()  # nested models were opened or closed: redraw
    selection_changed = Signal()  # the current layer or its call site
    chosen_changed = Signal()  # the multi-selection (layers to export)
    trust_changed = Signal()
    image_changed = Signal()
    inputs_changed = Signal()  # the arrays fed to the model
    image_b_changed = Signal()  # the second image (B) was opened or closed
    inputs_b_changed = Signal()  # the arrays of input B
    other_changed = Signal()  # the second checkpoint (File > Compare With…) was chosen or dropped
    model_ready = Signal()  # the live tier has loaded the open file: it answers requests about this model now
    colour_by_changed = Signal()  # the measure the graph is coloured by (None: layer categories)
    numbers_changed = Signal()  # ``numbers``: what the graph and the summary table show per layer
    live_load_requested = Signal()  # load ``path`` into the live tier now (drawn, trusted, custom objects)
    message = Signal(str)  # for the status bar
    failed = Signal(str)  # one line for the error banner

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.trust_store = TrustStore(settings)
        self.tasks = TaskRunner(self)
        self.path: Path | None = None
        self.graph: LayerGraph | None = None
        self.expanded: frozenset[str] = frozenset()
        self.layer: str | None = None
        self.call_site: tuple[int, ...] | None = None
        self.chosen: tuple[str, ...] = ()
        self.custom_objects: str | None = None
        self.build: BuildFromCode | None = None  # the model built by code in custom_objects instead of the file
        self.image: LoadedImage | None = None
        self.inputs: dict[str, PreparedInput] = {}
        self.inputs_version = 0
        self.image_b: LoadedImage | None = None
        self.inputs_b: dict[str, PreparedInput] = {}
        self.inputs_b_version = 0
        self.other_path: Path | None = None  # the second checkpoint: the same architecture, other weights
        self.live_ready = False  # the live tier holds this file's model
        self.colour_by: str | None = None
        self.numbers: LayerValues | None = None
        self._live_pending = False

    # -- the file
    def open(self, path: str | Path, weights: str | Path | None = None) -> None:
        """Read the file in the background; ``graph_changed`` follows, or ``failed``. ``weights``: a save_weights
        file for an architecture JSON (else the one beside it, if any)."""
        path = Path(path)
        self.message.emit(f"Reading {path.name}…")
        self.tasks.submit("load", lambda _cancelled: load_graph(path, weights=weights),
                          lambda graph: self.set_file(path, graph),
                          lambda error: self.fail(f"Cannot open {path.name}: {reason_of(error)}", error))

    def open_weights(self, weights: str | Path) -> None:
        """Attach a save_weights file to the open architecture JSON."""
        if self.path is None or self.graph is None or not is_architecture_json(self.graph):
            self.fail("Open Weights… gives an architecture JSON (model.to_json()) its weights: open the JSON first")
            return
        self.open(self.path, weights)

    def set_file(self, path: Path, graph: LayerGraph) -> None:
        self.path, self.graph = path.resolve(), graph
        self.expanded, self.layer, self.call_site, self.chosen = frozenset(), None, None, ()
        self.custom_objects = self.build = None
        self.other_path, self.live_ready = None, False  # a checkpoint of the previous model is no other of this one
        self._live_pending = True  # the worker loads the model once the graph is drawn, not competing with it
        self.settings.add_recent(str(self.path))
        log.info("opened %s (%d layers, %d findings)", self.path, len(graph.nodes), len(graph.findings))
        self.set_numbers(None)
        self.file_opened.emit()
        self.graph_changed.emit()

    def apply_trace(self, trace: Trace) -> None:
        """The live tier traced a model its file does not list the layers of (subclassed, or weights only and
        built from code): show what was observed, labelled as such."""
        if self.graph is None or self.graph.lists_layers or self.graph.trace:
            return
        self.graph = traced_graph(trace, self.graph)
        # The traced layers are other nodes than the file's tracked sublayers: nothing chosen survives.
        self.expanded, self.layer, self.call_site, self.chosen = frozenset(), None, None, ()
        self.graph_changed.emit()

    def set_live_ready(self) -> None:
        """The live tier answered the load of this file (again, after a restart)."""
        self.live_ready = True
        self.model_ready.emit()

    def drawn(self) -> None:
        """The graph is on screen (or could not be laid out): now the live tier may load the model."""
        if self._live_pending and self.graph is not None:
            self._live_pending = False
            self.live_load_requested.emit()

    # -- expand / collapse
    def toggle_group(self, path: str) -> None:
        if path in self.expanded:
            self._set_expanded({p for p in self.expanded if p != path and not p.startswith(path + "/")})
        else:
            self._set_expanded(self.expanded | {path})

    def set_all_expanded(self, expanded: bool) -> None:
        if self.graph is not None:
            self._set_expanded(self.graph.groups if expanded else frozenset())

    def _set_expanded(self, paths: set[str] | frozenset[str]) -> None:
        self.expanded = frozenset(paths)
        self.expanded_changed.emit()

    # -- selection
    def select(self, path: str) -> None:
        """Make ``path`` the current layer; nested models hiding it are opened first."""
        if self.graph is None or path not in self.graph:
            return
        hidden = self._collapsed_ancestors(path)
        if hidden:
            self._set_expanded(self.expanded | hidden)
        if path != self.layer or hidden:  # hidden: the view must select it again once the models are open
            if path != self.layer:
                self.layer, self.call_site = path, self.graph.call_sites(path)[0]
            self.selection_changed.emit()

    def set_call_site(self, call_site: tuple[int, ...]) -> None:
        if self.layer is not None and tuple(call_site) != self.call_site:
            self.call_site = tuple(call_site)
            self.selection_changed.emit()

    def choose(self, paths: list[str]) -> None:
        """The layers picked together (Ctrl+click) for an export."""
        if tuple(paths) != self.chosen:
            self.chosen = tuple(paths)
            self.chosen_changed.emit()

    def export_targets(self) -> list[Target]:
        """The chosen layers (else the current one), each at its first call site, the current layer at the call
        site picked for it."""
        if self.graph is None:
            return []
        paths = list(self.chosen) or ([self.layer] if self.layer else [])
        return [Target(path, self.call_site if path == self.layer and self.call_site else
                       self.graph.call_sites(path)[0]) for path in paths]

    def shown_call_site(self, path: str) -> tuple[int, ...]:
        """The call site whose numbers ``path`` shows: the selected one for the selected layer, and for the models
        holding it or its siblings inside them the same calls of those models; else every first call."""
        first = self.graph.call_sites(path)[0]
        if self.layer is None or self.call_site is None:
            return first
        parts, chosen = path.split("/"), self.layer.split("/")
        shared = 0
        while shared < min(len(parts), len(chosen)) and parts[shared] == chosen[shared]:
            shared += 1
        return (*self.call_site[:shared], *first[shared:])

    def _collapsed_ancestors(self, path: str) -> set[str]:
        ancestors, parent = set(), self.graph.node(path).parent
        while parent is not None:
            if parent not in self.expanded:
                ancestors.add(parent)
            parent = self.graph.node(parent).parent
        return ancestors

    # -- trust
    @property
    def trusted(self) -> bool:
        """The user consented to running what this file's findings name (remembered by its content hash)."""
        if self.graph is None or not self.graph.findings or self.path is None:
            return False
        return self.trust_store.is_trusted(self.path)

    @property
    def refused(self) -> bool:
        """Nothing from this file may run: it has findings and the user has trusted neither it nor the custom
        objects file it needs."""
        flagged = self.graph is not None and bool(self.graph.findings)
        return flagged and not self.trusted and self.custom_objects is None

    @property
    def refusal(self) -> str | None:
        """Why nothing can be computed with this file (a problem Keras would refuse it for, or an architecture
        JSON without weights), else None."""
        if self.graph is not None and is_architecture_json(self.graph) and self.graph.weights_file is None:
            return ("This architecture JSON has no weights beside it: give it its save_weights file (File > Open "
                    "Weights…); computing without them would show random numbers")
        blocking = [p for p in self.graph.problems if p.blocking] if self.graph is not None else []
        if not blocking:
            return None
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        return f"Keras would refuse this file: {blocking[0]}{more}"

    @property
    def runs_code(self) -> bool:
        """Loading needs the user's consent to run code (trusted findings, or a custom-objects file)."""
        return self.trusted or self.custom_objects is not None

    def trust(self, load: bool = True) -> None:
        if self.path is None:
            return
        self._live_pending = False  # loaded now, not a second time once drawn
        self.trust_store.remember(self.path)
        log.info("trusted %s", self.path)
        self.trust_changed.emit()
        if load:
            self.live_load_requested.emit()

    def set_custom_objects(self, path: str, build: BuildFromCode | None = None) -> None:
        """The Python file defining this model's classes (run in the live tier: the caller has asked for trust);
        ``build``: how code in it builds the model, the file's weights then loaded into it."""
        self.custom_objects, self.build = path, build
        self._live_pending = False
        self.live_load_requested.emit()

    # -- input
    def set_image(self, path: str | Path) -> bool:
        image = self._read_image(path, "Image")
        if image is None:
            return False
        self.image = image
        self.image_changed.emit()
        return True

    def set_image_b(self, path: str | Path | None) -> bool:
        """The second image, compared with the first (None: compare no more)."""
        image = self._read_image(path, "Image B") if path is not None else None
        if image is None and path is not None:
            return False
        self.image_b = image
        self.image_b_changed.emit()
        return True

    def _read_image(self, path: str | Path, what: str) -> LoadedImage | None:
        try:
            image = load_image(path)
        except ImageError as error:
            self.message.emit(str(error))
            return None
        self.message.emit(f"{what} {Path(path).name}")
        return image

    @property
    def image_path(self) -> Path | None:
        return Path(self.image.source) if self.image is not None else None

    def input_arrays(self) -> dict[str, np.ndarray]:
        """What the model is fed, by input name."""
        return {name: prepared.array for name, prepared in self.inputs.items()}

    def set_inputs(self, inputs: dict[str, PreparedInput]) -> None:
        self.inputs = inputs
        self.inputs_version += 1
        self.inputs_changed.emit()

    def input_arrays_b(self) -> dict[str, np.ndarray]:
        return {name: prepared.array for name, prepared in self.inputs_b.items()}

    def set_inputs_b(self, inputs: dict[str, PreparedInput]) -> None:
        self.inputs_b = inputs
        self.inputs_b_version += 1
        self.inputs_b_changed.emit()

    # -- comparing with a second checkpoint, colouring by a per-layer number
    def set_other(self, path: Path | None) -> None:
        """The second checkpoint (the caller has checked it is the same architecture and asked for trust)."""
        self.other_path = path.resolve() if path is not None else None
        if path is not None:
            self.message.emit(f"Comparing with {path.name}")
        self.other_changed.emit()

    def set_colour_by(self, measure: str | None) -> None:
        if measure != self.colour_by:
            self.colour_by = measure
            self.colour_by_changed.emit()

    def set_numbers(self, numbers: LayerValues | None) -> None:
        if numbers is not self.numbers:
            self.numbers = numbers
            self.numbers_changed.emit()

    # -- reporting
    def fail(self, message: str, error: BaseException | None = None) -> None:
        line = one_line(message, BANNER)  # it may quote what the file's author wrote
        if error is not None and not hasattr(error, "reason"):
            log.error("%s", line, exc_info=(type(error), error, error.__traceback__))
        else:
            log.warning("%s", line)
        self.failed.emit(line)

    def close(self) -> None:
        self.tasks.shutdown()


def reason_of(error: BaseException) -> str:
    """What the user reads: the reason for our own errors, the exception text for anything unexpected."""
    return getattr(error, "reason", None) or str(error) or type(error).__name__
