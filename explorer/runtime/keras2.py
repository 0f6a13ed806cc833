"""Files Keras 2 wrote (tf-keras, tf.keras, Keras 2.x): loaded with tf-keras, which computes their activations
and features (tf-keras' own numbers at tf-keras' speed); exports and Save as Keras 3 use the model rebuilt in
Keras 3 (explorer.runtime.upgrade), checked against tf-keras' numbers and built on first use, so a file with an
op Keras 3 lacks still computes.

Keras 3 cannot load most of these files (``TFOpLambda``, a DepthwiseConv2D's ``groups``, the ``Functional`` class
path of tf.keras ``.keras`` archives). tf-keras loads legacy ``.h5`` Lambda bytecode with no safe mode at all, so
the static check gates these files exactly as it gates Keras 3 files (explorer.runtime.loading).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.model.graph import InputSpec, Target
from explorer.model.model_file import SAVEDMODEL_FORMAT, is_architecture_json
from explorer.runtime.architecture_json import architecture_weights
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.upgrade import upgrade_model
from explorer.text import one_line

TOLERANCE = 1e-5  # the Keras 3 twin computes what tf-keras computes, to float32 rounding
KERAS2_WRITERS = ("tf-keras", "tf.keras")


def is_keras2(graph: Any) -> bool:
    """Whether the structure tier found the file written by Keras 2 (its version, or its module paths)."""
    return str(graph.keras_version or "").startswith("2.") or graph.writer in KERAS2_WRITERS \
        or graph.file_format == SAVEDMODEL_FORMAT


def load_keras2(path: str | Path, graph: Any, trust: bool) -> Any:
    """The tf-keras model of a Keras 2 file: ``.h5``, ``.keras``, a SavedModel folder, or an architecture JSON
    with the weights the structure tier read with it (architecture_weights)."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # tf-keras stays tf-keras; keras stays Keras 3
    import tf_keras

    path = Path(path)
    if is_architecture_json(graph):
        from tf_keras.src.saving.serialization_lib import SafeModeScope

        weights = architecture_weights(path, graph)
        with SafeModeScope(not trust):  # model_from_json has no safe_mode argument: the scope is its switch
            model = tf_keras.models.model_from_json(path.read_text(encoding="utf-8"))
        model.load_weights(weights)
        return model
    folder = path.parent if path.name in ("saved_model.pb", "keras_metadata.pb") else path
    return tf_keras.models.load_model(str(folder), compile=False, safe_mode=not trust)


class Keras2Model:
    """A Keras 2 file's model as tf-keras loaded it, with its Keras 3 twin built and checked on first use."""

    def __init__(self, model: Any, file_graph: Any, file_name: str) -> None:
        self.model, self.file_graph, self.file_name = model, file_graph, file_name
        self._twin: Any = None

    @property
    def specs(self) -> list[InputSpec]:
        return [InputSpec(name, tuple(t.shape[1:]), t.dtype.name)
                for name, t in zip(self.model.input_names, self.model.inputs, strict=True)]

    def twin(self) -> Any:
        """The Keras 3 rebuild, its outputs checked against tf-keras' on a fixed input (RuntimeFailure if not)."""
        if self._twin is None:
            twin = upgrade_model(self.model)
            inputs = fixed_inputs(twin)
            check_outputs(outputs_of(self.model, inputs), outputs_of(twin, inputs),
                          f"the Keras 3 rebuild of {self.file_name}")
            self._twin = twin
        return self._twin

    def extractor(self, layer: str, call_site: tuple[int, ...]) -> Any:
        """A tf-keras model computing the layer (for batches: features, exports)."""
        return keras2_extractor(self.model, self.file_graph, [Target(layer, tuple(call_site))])

    def plan(self, layer: str, call_site: tuple[int, ...]) -> NodePlan:
        """What computing one layer at one call site takes (for single examples: activations)."""
        return node_plan(_keras2_output(self.model, self.file_graph, Target(layer, tuple(call_site))))

    def run(self, plan: NodePlan, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One example's outputs (a batch axis added, then removed), flattened in order."""
        import tensorflow as tf

        batch = {spec.name: tf.convert_to_tensor(np.asarray(inputs[spec.name], dtype=spec.dtype)[None])
                 for spec in self.specs}
        return [np.asarray(output)[0] for output in run_plan(plan, batch)]


@dataclass(frozen=True)
class NodePlan:
    """The ancestor nodes of some tensors of a tf-keras graph in the order they run, how many times each tensor
    is consumed (the targets once more), and the targets' ids as tf-keras' nodes name tensors."""

    nodes: tuple[Any, ...]
    uses: Mapping[str, int]
    targets: tuple[str, ...]


def node_plan(output: Any) -> NodePlan:
    """The plan computing ``output`` (a symbolic tensor, or a structure of them) and nothing else."""
    import tensorflow as tf

    tensors = tf.nest.flatten(output)
    order: list[Any] = []
    expanded: set[int] = set()
    stack = [(t._keras_history.layer._inbound_nodes[t._keras_history.node_index], False) for t in tensors]
    while stack:  # depth-first, a node after all its parents (deep models exceed Python's recursion limit)
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
        elif id(node) not in expanded:
            expanded.add(id(node))
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.parent_nodes if id(parent) not in expanded)
    targets = tuple(str(id(t)) for t in tensors)
    uses = Counter(tensor_id for node in order for tensor_id in node.flat_input_ids) + Counter(targets)
    return NodePlan(tuple(order), uses, targets)


def run_plan(plan: NodePlan, inputs: dict[str, Any]) -> list[Any]:
    """The targets' values for ``inputs`` (by input layer name): each node's layer called as tf-keras'
    Functional.call calls it in inference (``training=False`` unless the node was given its own), each
    value dropped after its last use. Only the target's ancestors run and no extractor model is built:
    a first activation takes 5-10% less time than cutting a model and calling it."""
    import tensorflow as tf

    values: dict[str, list[Any]] = {}
    for node in plan.nodes:
        if node.is_input:
            outputs = inputs[node.layer.name]
        else:
            args, kwargs = node.map_arguments(values)  # takes each input value once
            if node.layer._expects_training_arg and "training" not in kwargs:
                kwargs["training"] = False
            outputs = node.layer(*args, **kwargs)
        for tensor_id, value in zip(node.flat_output_ids, tf.nest.flatten(outputs), strict=True):
            values[tensor_id] = [value] * plan.uses[tensor_id]
    return [values[tensor_id].pop() for tensor_id in plan.targets]


def open_keras2(path: str | Path, graph: Any, trust: bool) -> Keras2Model:
    """load_keras2 with tf-keras' failures as one RuntimeFailure line."""
    try:
        return Keras2Model(load_keras2(path, graph, trust), graph, Path(path).name)
    except Exception as error:  # tf-keras raises many types for files it cannot read
        raise RuntimeFailure(f"tf-keras could not load {Path(path).name}: {one_line(str(error))}") from error


def load_both(path: str | Path, graph: Any, trust: bool) -> tuple[Any, Any]:
    """(the tf-keras model, its checked Keras 3 twin)."""
    source = open_keras2(path, graph, trust)
    return source.model, source.twin()


def fixed_inputs(model: Any) -> list[np.ndarray]:
    """One batch of inputs in the pixel range (a fixed seed), free dimensions set to 32."""
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, tuple(32 if d is None else int(d) for d in (1, *tuple(t.shape)[1:])))
            .astype(str(getattr(t.dtype, "name", t.dtype)) if "float" in str(t.dtype) else np.float32)
            for t in model.inputs]


def outputs_of(model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on ``inputs``, flattened in order (tf-keras and Keras 3 models alike)."""
    result = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    flat = list(result.values()) if isinstance(result, dict) else list(result) if isinstance(result, list | tuple) \
        else [result]
    return [np.asarray(value) for value in flat]


def check_outputs(expected: list[np.ndarray], got: list[np.ndarray], what: str) -> float:
    """The largest difference, scaled to the outputs' magnitude; RuntimeFailure above TOLERANCE."""
    if len(expected) != len(got) or any(e.shape != g.shape for e, g in zip(expected, got, strict=False)):
        raise RuntimeFailure(f"{what} has other outputs than tf-keras' model")
    difference = max((float(np.max(np.abs(e.astype(np.float64) - g))) / max(1.0, float(np.max(np.abs(e))))
                      for e, g in zip(expected, got, strict=True) if e.size), default=0.0)
    if difference > TOLERANCE:
        raise RuntimeFailure(f"{what} computes other numbers than tf-keras (difference {difference:.3g})")
    return difference


def keras2_extractor(model: Any, graph: Any, targets: list[Any]) -> Any:
    """A tf-keras model from ``model``'s inputs to the targets' outputs (a dict named after them for several),
    nested layers cut the way Copy as Python does it (explorer.runtime.snippet)."""
    import tf_keras

    outputs = {target.output_name: _keras2_output(model, graph, target) for target in targets}
    result = next(iter(outputs.values())) if len(outputs) == 1 else outputs
    return tf_keras.Model(model.inputs, result, name=f"{graph.name}_features")


def _keras2_output(model: Any, graph: Any, target: Any) -> Any:
    import tf_keras

    parts = target.layer.split("/")
    calls = target.call_site or (0,) * len(parts)
    layers, parent = [], model
    for depth in range(len(parts)):
        parent = parent.get_layer(graph.node("/".join(parts[: depth + 1])).name)
        layers.append(parent)

    def index(depth: int) -> int:
        from_end = calls_from_end(graph, "/".join(parts[: depth + 1]), calls[depth])
        return calls[depth] if from_end is None else len(layers[depth].inbound_nodes) - from_end

    if calls[-1] == 0 and target.layer not in graph.groups:
        tensor = layers[-1].output
    else:
        tensor = layers[-1].get_output_at(index(len(parts) - 1))
    for depth in range(len(parts) - 2, -1, -1):  # re-apply each enclosing nested model, innermost first
        tensor = tf_keras.Model(layers[depth].inputs, tensor)(layers[depth].get_input_at(index(depth)))
    return tensor


def calls_from_end(graph: Any, path: str, call: int) -> int | None:
    """How far from the end of a nested model's tf-keras ``inbound_nodes`` its call ``call`` is (it may have a
    node of its own before its calls in the enclosing model); None for other layers, whose index is the call."""
    return graph.node(path).calls - call if path in graph.groups else None
