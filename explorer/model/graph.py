"""Format-neutral, Qt-free description of a model's layer graph.

Layers are addressed by *path*: the layer name prefixed by the names of the nested models that enclose it,
joined with "/" (``outer_block/conv``). Edges connect call sites: a shared layer is one node with several
calls, a nested model is one node (a group) whose children are its own layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Shape = tuple[int | None, ...]


def path_part(name: str) -> str:
    """A layer name as one component of a layer path. Keras 2 allowed "/" in names (tf-keras DenseNet's
    ``conv1/conv``), which paths use as their separator and Keras 3 forbids: it becomes "_", as in Keras 3's own
    names for the same layers (``conv1_conv``). The node keeps its real name for display."""
    return name.replace("/", "_")


@dataclass(frozen=True)
class Finding:
    """Something the static safety check found that could run code or touch the user's system."""

    where: str  # location in the file, e.g. "config.json layers[3].config.function"
    what: str  # what would run or be touched

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True)
class Problem:
    """Something in the file that Keras itself would refuse to load; the structure is drawn around it."""

    layer: str | None  # the layer's path, None for the model as a whole
    what: str
    # Keras loads nothing of a file with such a problem, so neither does the live tier. Not blocking: what only
    # the user's code can supply (a class Keras lacks); Keras names it itself when asked to load the file.
    blocking: bool = True

    def __str__(self) -> str:
        return f"layer '{self.layer}': {self.what}" if self.layer else self.what


@dataclass(frozen=True)
class InputSpec:
    """A model input as the tiers feed it."""

    name: str
    shape: tuple[int | None, ...]  # without the batch axis
    dtype: str


@dataclass(frozen=True)
class Target:
    """One output to extract: a layer path and the call index of each path component."""

    layer: str
    call_site: tuple[int, ...]

    @property
    def output_name(self) -> str:
        """A name usable as a Keras output and a SavedModel signature key."""
        name = self.layer.replace("/", "__")
        return name if not any(self.call_site) else f"{name}__call{'_'.join(map(str, self.call_site))}"


@dataclass(frozen=True)
class Weight:
    name: str
    shape: tuple[int, ...]
    dtype: str
    trainable: bool

    @property
    def size(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class Port:
    """A model input or output: the layer path that produces it and its tensor shape."""

    name: str
    layer: str
    shape: Shape | None


@dataclass(frozen=True)
class Edge:
    """A tensor flowing from one call of ``source`` to one call of ``target``."""

    source: str
    target: str
    shape: Shape | None
    source_call: int = 0
    source_index: int = 0
    target_call: int = 0
    argument: int = 0  # position of the tensor among the target call's flattened inputs


@dataclass(frozen=True)
class LayerNode:
    path: str
    name: str
    class_name: str
    category: str
    parent: str | None
    config: Mapping[str, Any] = field(default_factory=dict, compare=False)
    calls: int = 1
    # Per call: the shapes of the tensors it receives and those it returns.
    input_shapes: tuple[tuple[Shape | None, ...], ...] = ()
    output_shapes: tuple[tuple[Shape | None, ...], ...] = ()
    weights: tuple[Weight, ...] = ()
    children: tuple[str, ...] = ()
    # For nested models: inner layers that receive the group's inputs / produce its outputs, in order.
    input_layers: tuple[str, ...] = ()
    output_layers: tuple[tuple[str, int], ...] = ()
    module: str | None = None

    @property
    def is_group(self) -> bool:
        return bool(self.children)

    @property
    def depth(self) -> int:
        return self.path.count("/")


@dataclass(frozen=True)
class LayerGraph:
    name: str
    kind: str  # "sequential" | "functional" | "subclassed" | "unknown" | "weights" (a save_weights file)
    nodes: tuple[LayerNode, ...]
    edges: tuple[Edge, ...]
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    keras_version: str | None = None
    source: str | None = None
    # Where an exported feature extractor came from (recorded by Keras Explorer's export), else None.
    provenance: Mapping[str, Any] | None = field(default=None, compare=False)
    # What the static safety check found; the live tier refuses such files unless the user trusts them.
    findings: tuple[Finding, ...] = field(default=(), compare=False)
    # The model's own config: for a subclassed model, its constructor arguments and build input shape.
    model_config: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # Set when the structure was recovered by running the model (subclassed models): method and caveats.
    trace: str | None = None
    # What Keras would refuse in the file (explorer.model.config_graph checks); empty for a sound file.
    problems: tuple[Problem, ...] = field(default=(), compare=False)
    # What wrote the file and what kind of file it is (explorer.model.origin): None for a model built in memory.
    writer: str | None = field(default=None, compare=False)
    file_format: str | None = field(default=None, compare=False)
    # An architecture JSON's weights (the file beside it, or the one the user chose): what the live tier loads.
    weights_file: str | None = field(default=None, compare=False)
    _by_path: Mapping[str, LayerNode] = field(init=False, repr=False, compare=False)
    _inbound: Mapping[str, list[str]] = field(init=False, repr=False, compare=False)
    _outbound: Mapping[str, list[str]] = field(init=False, repr=False, compare=False)

    @property
    def lists_layers(self) -> bool:
        """Whether the file lists the model's layers and connections (not a subclassed model's constructor
        arguments, nor a weights-only file)."""
        return self.kind not in ("subclassed", "unknown", "weights")

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_path", MappingProxyType({n.path: n for n in self.nodes}))
        inbound: dict[str, dict[str, None]] = {}
        outbound: dict[str, dict[str, None]] = {}
        for edge in self.edges:
            inbound.setdefault(edge.target, {})[edge.source] = None
            outbound.setdefault(edge.source, {})[edge.target] = None
        object.__setattr__(self, "_inbound", {k: list(v) for k, v in inbound.items()})
        object.__setattr__(self, "_outbound", {k: list(v) for k, v in outbound.items()})

    def node(self, path: str) -> LayerNode:
        return self._by_path[path]

    def __contains__(self, path: object) -> bool:
        return path in self._by_path

    def children_of(self, parent: str | None) -> list[LayerNode]:
        return [n for n in self.nodes if n.parent == parent]

    def params(self, path: str) -> tuple[int, int]:
        """(total, trainable) parameter count of a layer, including everything nested inside it."""
        node = self.node(path)
        total = sum(w.size for w in node.weights)
        trainable = sum(w.size for w in node.weights if w.trainable)
        for child in node.children:
            child_total, child_trainable = self.params(child)
            total += child_total
            trainable += child_trainable
        return total, trainable

    @property
    def groups(self) -> frozenset[str]:
        """Paths of the nested models."""
        return frozenset(n.path for n in self.nodes if n.is_group)

    @property
    def totals(self) -> tuple[int, int, int]:
        """(total, trainable, non-trainable) parameters of the whole model."""
        total = trainable = 0
        for node in self.children_of(None):
            node_total, node_trainable = self.params(node.path)
            total += node_total
            trainable += node_trainable
        return total, trainable, total - trainable

    def inbound(self, path: str) -> list[str]:
        """Paths of the layers this layer receives tensors from, in order, without repeats."""
        return list(self._inbound.get(path, ()))

    def outbound(self, path: str) -> list[str]:
        return list(self._outbound.get(path, ()))

    def call_sites(self, path: str) -> list[tuple[int, ...]]:
        """Every place a layer runs: one call index per path component (outermost model first).

        A layer inside a nested model that is called twice runs at two call sites, like a shared layer.
        """
        sites: list[tuple[int, ...]] = [()]
        parts = path.split("/")
        for depth in range(len(parts)):
            calls = self.node("/".join(parts[: depth + 1])).calls
            sites = [(*site, call) for site in sites for call in range(calls)]
        return sites

    def find(self, text: str) -> list[LayerNode]:
        """Layers whose name or class contains ``text`` (case-insensitive), in graph order."""
        needle = text.strip().lower()
        if not needle:
            return []
        return [n for n in self.nodes if needle in n.name.lower() or needle in n.class_name.lower()]

