"""Feature extractors cut out of a loaded model: any layer, inside nested models, at any call site.

Keras is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.model.graph import InputSpec
from explorer.runtime.errors import CallSiteOutOfRange, RuntimeFailure, UnknownLayer
from explorer.runtime.keras_graph import flat_inputs, graph_of, input_names, own_nodes
from explorer.runtime.loading import LiveModel
from explorer.runtime.tracing import record_layer_calls


def build_extractor(model: Any, path: str, call_site: tuple[int, ...] | None = None) -> Any:
    """A ``keras.Model`` from the model's inputs to the output(s) of layer ``path`` at one call site.

    ``path`` is ``outer/inner/layer`` for layers of nested models; ``call_site`` gives the call index of
    each path component (default: the first call of each). Keras' own
    ``Model(outer.input, inner_layer.output)`` fails for nested layers ("not connected to inputs"), so each
    nested model on the way is cut at its own inputs and its layers re-applied to the tensors that feed it
    in the enclosing graph. The extractor is a flat graph of the original layers (weights shared), which
    Keras can save and reload; wrapping the cut models as layers instead loses nested weights on saving.
    """
    import keras

    parts = path.split("/")
    calls = tuple(call_site or (0,) * len(parts))
    if len(calls) != len(parts):
        raise RuntimeFailure(f"call site {calls} does not match the path {path}")
    graph = graph_of(model)
    outputs = _layer_outputs(graph, parts, calls)
    return keras.Model(graph.input, outputs[0] if len(outputs) == 1 else outputs, name=f"extract_{parts[-1]}")

def run_extractor(extractor: Any, inputs: dict[str, np.ndarray], specs: list[InputSpec]) -> list[np.ndarray]:
    """Run on one example (a batch axis is added); returns the outputs as numpy arrays without batch axis."""
    batch = {spec.name: np.asarray(inputs[spec.name], dtype=spec.dtype)[None, ...] for spec in specs}
    return [np.asarray(t)[0] for t in run_batch(extractor, batch)]

def run_batch(extractor: Any, batch: dict[str, np.ndarray]) -> list[Any]:
    """The extractor's outputs for a batch, computed node by node (node_outputs)."""
    graph = graph_of(extractor)
    wanted = {id(t) for t in graph.outputs}
    found = {id(t): batch[name] for name, t in zip(input_names(graph), flat_inputs(graph), strict=True)
             if id(t) in wanted}
    for symbolic, value in node_outputs(extractor, batch):
        if id(symbolic) in wanted:
            found[id(symbolic)] = value
    return [found[id(t)] for t in graph.outputs]


def node_outputs(extractor: Any, batch: dict[str, np.ndarray]) -> Iterator[tuple[Any, Any]]:
    """Every tensor the extractor's graph computes for a batch, (symbolic tensor, value), node by node; each is
    dropped after its last use.

    Calling a Keras 3 functional model keeps every intermediate tensor until the call returns (the whole
    network's activations: 5 GB for EfficientNetB7 at 600x600); freeing them as we go keeps the peak near
    the model's own size and is no slower. A caller reducing each tensor as it comes sees the whole model in
    one pass without holding it (explorer.runtime.layer_stats).
    """
    from collections import Counter

    import keras
    from keras.src import tree
    from keras.src.models.functional import operation_fn

    graph = graph_of(extractor)
    nodes = [node for depth in sorted(graph._nodes_by_depth, reverse=True)
             for node in graph._nodes_by_depth[depth] if node.operation and not node.is_input]
    uses = Counter(id(t) for node in nodes for t in node.input_tensors)
    uses.update(id(t) for t in graph.outputs)
    tensors = {id(t): keras.ops.convert_to_tensor(batch[name])
               for name, t in zip(input_names(graph), flat_inputs(graph), strict=True)}
    for node in nodes:
        if any(id(t) not in tensors for t in node.input_tensors):
            continue  # not needed for these outputs
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = operation_fn(node.operation, training=False)(*args, **kwargs)
        del args, kwargs
        for symbolic, value in zip(node.outputs, tree.flatten(outputs), strict=True):
            tensors[id(symbolic)] = value
            yield symbolic, value
            if uses[id(symbolic)] <= 0:  # nothing downstream needs it
                tensors.pop(id(symbolic))
        for symbolic in node.input_tensors:
            uses[id(symbolic)] -= 1
            if uses[id(symbolic)] <= 0:
                tensors.pop(id(symbolic), None)

def _layer_outputs(graph: Any, parts: list[str], calls: tuple[int, ...]) -> list[Any]:
    import keras

    # Operations too: keras.ops calls (relu, add, ...) are graph nodes but not in model.layers.
    layer = next((operation for operation in graph.operations if operation.name == parts[0]), None)
    if layer is None:
        raise UnknownLayer(parts[0], graph.name)
    nodes = own_nodes(graph, layer)
    if calls[0] >= len(nodes):
        raise CallSiteOutOfRange(parts[0], calls[0], len(nodes))
    node = nodes[calls[0]]
    if len(parts) == 1:
        return list(node.output_tensors)
    if not isinstance(layer, keras.Model):
        raise RuntimeFailure(f"'{parts[0]}' is a {type(layer).__name__}, not a nested model")
    inner_graph = graph_of(layer)
    inner_outputs = _layer_outputs(inner_graph, parts[1:], calls[1:])
    cut = keras.Model(inner_graph.inputs, inner_outputs)
    # Symbolic run: the cut's layers are called on the enclosing graph's tensors (new nodes, same weights).
    result = cut._run_through_graph(node.input_tensors, operation_fn=lambda operation: operation)
    return list(result) if isinstance(result, list | tuple) else [result]

@dataclass
class FlatGraph:
    """A model's graph with every nested model inlined (the original layers, weights shared) on fresh inputs:
    each (layer path, call site)'s output and input tensors, and the model's own outputs."""

    inputs: list[Any]
    outputs: list[Any]
    produced: dict[tuple[str, tuple[int, ...]], list[Any]] = field(default_factory=dict)
    fed: dict[tuple[str, tuple[int, ...]], list[Any]] = field(default_factory=dict)

    def of(self, path: str, call_site: tuple[int, ...]) -> list[Any]:
        key = (path, tuple(call_site))
        if key not in self.produced:
            raise RuntimeFailure(f"not in the model graph: {path} (call site {tuple(call_site)})")
        return self.produced[key]


def flat_graph(model: Any) -> FlatGraph:
    import keras

    graph = graph_of(model)
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name)
              for name, t in zip(input_names(graph), flat_inputs(graph), strict=True)]
    flat = FlatGraph(inputs, [])
    flat.outputs = _inline(graph, inputs, (), (), flat)
    return flat


def build_flat_extractor(model: Any, targets: list[tuple[str, tuple[int, ...]]]) -> tuple[Any, list[list[Any]]]:
    """Fresh inputs and, per target, its output tensors in a graph where every nested model is inlined.

    Saving needs this: an extractor that holds a nested model as a layer and, through another path, that
    model's own layers directly is written by Keras with their weights under one path and looked up under
    the other on loading. A flat graph of the original layers (weights shared) saves and reloads exactly.
    """
    flat = flat_graph(model)
    missing = [f"{path} (call site {site})" for path, site in targets if (path, tuple(site)) not in flat.produced]
    if missing:
        raise RuntimeFailure(f"not in the model graph: {', '.join(missing)}")
    return flat.inputs, [flat.of(path, site) for path, site in targets]

def _inline(graph: Any, inputs: list[Any], prefix: tuple[str, ...], site: tuple[int, ...],
            flat: FlatGraph) -> list[Any]:
    """Call the graph's layers on ``inputs`` (symbolically), recursing into nested models; record every
    (layer path, call site) it passes, with the tensors it took and gave."""
    import keras
    from keras.src import tree

    tensors = {id(t): value for t, value in zip(flat_inputs(graph), inputs, strict=True)}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            layer = node.operation
            names, calls = (*prefix, layer.name), (*site, own_nodes(graph, layer).index(node))
            key = ("/".join(names), calls)
            if node.is_input:
                flat.produced[key] = [tensors[id(t)] for t in node.outputs]
                continue
            flat.fed[key] = [tensors[id(t)] for t in node.input_tensors]
            if isinstance(layer, keras.Model):
                outputs = _inline(graph_of(layer), flat.fed[key], names, calls, flat)
            else:
                args, kwargs = node.arguments.fill_in(tensors)
                outputs = tree.flatten(layer(*args, **kwargs))
            for symbolic, value in zip(node.outputs, outputs, strict=True):
                tensors[id(symbolic)] = value
            flat.produced[key] = list(outputs)
    return [tensors[id(t)] for t in graph.outputs]

def extractor_for(live: LiveModel, layer: str, call_site: tuple[int, ...]) -> Any:
    """The model computing layer ``layer`` at ``call_site`` (a tf-keras one for a Keras 2 file)."""
    if live.keras2 is not None:
        return live.keras2.extractor(layer, call_site)
    if live.graph is None:
        raise RuntimeFailure("this subclassed model could not be traced, so no extractor can be cut from it")
    return build_extractor(live.graph, layer, call_site)

def extract(live: LiveModel, layer: str, call_site: tuple[int, ...], inputs: dict[str, np.ndarray],
            extractors: dict | None = None) -> list[np.ndarray]:
    """One layer's outputs for one input; ``extractors`` keeps what each layer needs between calls (its
    extractor, or for a Keras 2 file its node plan)."""
    if live.graph is None and live.keras2 is None:  # no graph: run the model once and capture that layer's output
        batch = np.asarray(inputs[live.specs[0].name], np.float32)[None]
        return [record_layer_calls(live.model, batch, capture=layer)[0]]
    cache = {} if extractors is None else extractors
    key = (layer, tuple(call_site))
    if live.keras2 is not None:  # no extractor model: the layers the output depends on are called directly
        if key not in cache:
            cache[key] = live.keras2.plan(layer, call_site)
        return live.keras2.run(cache[key], inputs)
    if key not in cache:
        cache[key] = extractor_for(live, layer, call_site)
    return run_extractor(cache[key], inputs, live.specs)
