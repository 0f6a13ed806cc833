"""Everything that needs Keras: loading a model safely and cutting feature extractors out of it.

Keras is imported inside the functions, so importing this module stays cheap; only the live-tier worker
process (and the headless ``activations`` command) ever calls them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class RuntimeFailure(Exception):
    """A model that cannot be loaded or a layer whose output cannot be computed; message is for the user."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]  # without the batch axis
    dtype: str


def load_model(path: str | Path, trust: bool = False, file_graph: Any = None) -> Any:
    """Load a model file into Keras, never compiling it (no optimizer or loss code runs).

    The file is first checked statically (explorer.core.safety); a file with findings is refused unless
    ``trust`` is given, the user's explicit consent, which also lets Keras' safe mode allow Python code
    (Lambda layers). Loading runs under an audit hook that refuses sockets and new processes.
    ``file_graph``: the file's structure when the caller has already read it (the check is not repeated).
    """
    from explorer.core.guard import loading_guard

    findings = (file_graph or read_file_graph(path)).findings
    if findings and not trust:
        raise RuntimeFailure(f"refusing to load {Path(path).name} into Keras: {len(findings)} safety finding(s), "
                             f"first: {findings[0]}; trust the file to load it anyway (--trust)")
    import keras

    try:
        with loading_guard(allow_code=trust):
            model = keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except Exception as error:  # Keras raises many types for bad files; all mean "cannot load"
        raise RuntimeFailure(f"Keras could not load {Path(path).name}: {_trim(str(error))}") from error
    if not isinstance(model, keras.Model):
        raise RuntimeFailure(f"{Path(path).name} holds a {type(model).__name__}, not a Keras model")
    return model


def read_file_graph(path: str | Path) -> Any:
    """The file's structure and safety findings (no Keras), with unreadable files as RuntimeFailure."""
    from explorer.core.keras_file import ModelFileError, load_graph

    try:
        return load_graph(path)
    except ModelFileError as error:
        raise RuntimeFailure(f"{Path(path).name}: {error.reason}") from error


def _trim(text: str, limit: int = 300) -> str:
    """Keras errors can quote the file's own strings: one printable line, bounded."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def input_specs(model: Any) -> list[InputSpec]:
    graph = _graph_of(model)
    names = _input_names(graph)
    return [InputSpec(name, tuple(t.shape[1:]), str(t.dtype)) for name, t in zip(names, _flat_inputs(graph),
                                                                                   strict=True)]


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
    graph = _graph_of(model)
    outputs = _layer_outputs(graph, parts, calls)
    return keras.Model(graph.input, outputs[0] if len(outputs) == 1 else outputs, name=f"extract_{parts[-1]}")


def run_extractor(extractor: Any, inputs: dict[str, np.ndarray], specs: list[InputSpec]) -> list[np.ndarray]:
    """Run on one example (a batch axis is added); returns the outputs as numpy arrays without batch axis."""
    batch = {spec.name: np.asarray(inputs[spec.name], dtype=spec.dtype)[None, ...] for spec in specs}
    return [np.asarray(t)[0] for t in run_batch(extractor, batch)]


def run_batch(extractor: Any, batch: dict[str, np.ndarray]) -> list[Any]:
    """The extractor's outputs for a batch, computed node by node, each tensor dropped after its last use.

    Calling a Keras 3 functional model keeps every intermediate tensor until the call returns (the whole
    network's activations: 5 GB for EfficientNetB7 at 600x600); freeing them as we go keeps the peak near
    the model's own size and is no slower.
    """
    from collections import Counter

    import keras
    from keras.src import tree
    from keras.src.models.functional import operation_fn

    graph = _graph_of(extractor)
    nodes = [node for depth in sorted(graph._nodes_by_depth, reverse=True)
             for node in graph._nodes_by_depth[depth] if node.operation and not node.is_input]
    uses = Counter(id(t) for node in nodes for t in node.input_tensors)
    uses.update(id(t) for t in graph.outputs)
    tensors = {id(t): keras.ops.convert_to_tensor(batch[name])
               for name, t in zip(_input_names(graph), _flat_inputs(graph), strict=True)}
    for node in nodes:
        if any(id(t) not in tensors for t in node.input_tensors):
            continue  # not needed for these outputs
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = operation_fn(node.operation, training=False)(*args, **kwargs)
        del args, kwargs
        for symbolic, value in zip(node.outputs, tree.flatten(outputs), strict=True):
            tensors[id(symbolic)] = value
        for symbolic in node.input_tensors:
            uses[id(symbolic)] -= 1
            if uses[id(symbolic)] <= 0:
                tensors.pop(id(symbolic), None)
    return [tensors[id(t)] for t in graph.outputs]


def _layer_outputs(graph: Any, parts: list[str], calls: tuple[int, ...]) -> list[Any]:
    import keras

    # Operations too: keras.ops calls (relu, add, ...) are graph nodes but not in model.layers.
    layer = next((operation for operation in graph.operations if operation.name == parts[0]), None)
    if layer is None:
        raise RuntimeFailure(f"no layer named '{parts[0]}' in {graph.name}")
    nodes = _own_nodes(graph, layer)
    if calls[0] >= len(nodes):
        raise RuntimeFailure(f"layer '{parts[0]}' is called {len(nodes)} time(s); call {calls[0]} does not exist")
    node = nodes[calls[0]]
    if len(parts) == 1:
        return list(node.output_tensors)
    if not isinstance(layer, keras.Model):
        raise RuntimeFailure(f"'{parts[0]}' is a {type(layer).__name__}, not a nested model")
    inner_graph = _graph_of(layer)
    inner_outputs = _layer_outputs(inner_graph, parts[1:], calls[1:])
    cut = keras.Model(inner_graph.inputs, inner_outputs)
    # Symbolic run: the cut's layers are called on the enclosing graph's tensors (new nodes, same weights).
    result = cut._run_through_graph(node.input_tensors, operation_fn=lambda operation: operation)
    return list(result) if isinstance(result, list | tuple) else [result]


def build_flat_extractor(model: Any, targets: list[tuple[str, tuple[int, ...]]]) -> tuple[Any, list[list[Any]]]:
    """Fresh inputs and, per target, its output tensors in a graph where every nested model is inlined.

    Saving needs this: an extractor that holds a nested model as a layer and, through another path, that
    model's own layers directly is written by Keras with their weights under one path and looked up under
    the other on loading. A flat graph of the original layers (weights shared) saves and reloads exactly.
    """
    import keras

    graph = _graph_of(model)
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name)
              for name, t in zip(_input_names(graph), _flat_inputs(graph), strict=True)]
    found: dict[tuple[str, tuple[int, ...]], list[Any]] = {}
    _inline(graph, inputs, (), (), found)
    missing = [f"{path} (call site {site})" for path, site in targets if (path, tuple(site)) not in found]
    if missing:
        raise RuntimeFailure(f"not in the model graph: {', '.join(missing)}")
    return inputs, [found[(path, tuple(site))] for path, site in targets]


def _inline(graph: Any, inputs: list[Any], prefix: tuple[str, ...], site: tuple[int, ...],
            found: dict[tuple[str, tuple[int, ...]], list[Any]]) -> list[Any]:
    """Call the graph's layers on ``inputs`` (symbolically), recursing into nested models; record every
    (layer path, call site) it passes."""
    import keras
    from keras.src import tree

    tensors = {id(t): value for t, value in zip(_flat_inputs(graph), inputs, strict=True)}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            layer = node.operation
            names, calls = (*prefix, layer.name), (*site, _own_nodes(graph, layer).index(node))
            key = ("/".join(names), calls)
            if node.is_input:
                found[key] = [tensors[id(t)] for t in node.outputs]
                continue
            if isinstance(layer, keras.Model):
                outputs = _inline(_graph_of(layer), [tensors[id(t)] for t in node.input_tensors], names, calls, found)
            else:
                args, kwargs = node.arguments.fill_in(tensors)
                outputs = tree.flatten(layer(*args, **kwargs))
            for symbolic, value in zip(node.outputs, outputs, strict=True):
                tensors[id(symbolic)] = value
            found[key] = list(outputs)
    return [tensors[id(t)] for t in graph.outputs]


@dataclass
class LiveModel:
    """A loaded model ready for extraction: ``graph`` is the model, or the graph traced from a subclassed
    one (None when only eager recording worked)."""

    model: Any
    graph: Any
    specs: list[InputSpec]
    trace: Trace | None = None


def open_model(path: str | Path, trust: bool = False, custom_objects: str | None = None,
               file_graph: Any = None) -> LiveModel:
    """Load (see load_model), first running ``custom_objects`` (a Python file defining the model's classes,
    only with ``trust``); subclassed models are traced. ``file_graph`` as for load_model."""
    if custom_objects:
        if not trust:
            raise RuntimeFailure("custom objects are Python code: trust the file to run them (--trust)")
        import runpy

        runpy.run_path(str(custom_objects), run_name="keras_explorer_custom_objects")
    file_graph = file_graph or read_file_graph(path)
    model = load_model(path, trust=trust, file_graph=file_graph)
    if is_graph_model(model):
        if file_graph.kind not in ("subclassed", "unknown"):
            return LiveModel(model, model, input_specs(model))
        # A Functional subclass (or a keras_hub backbone) whose file holds only constructor arguments: the
        # loaded model has the real graph, which the window can show (labelled as coming from the model).
        import json

        import keras

        graph = _graph_of(model)
        config = {"module": "keras.src.models.functional", "class_name": "Functional",
                  "config": keras.Model(graph.inputs, graph.outputs).get_config()}
        trace = Trace("loaded model", json.dumps(config, default=str),
                      "the file stores only constructor arguments; this is the graph the loaded model built")
        return LiveModel(model, model, input_specs(model), trace)
    build = file_graph.model_config.get("build_config", {})
    shape = tuple(build.get("input_shape") or ()) if isinstance(build, dict) else ()
    if not shape:
        raise RuntimeFailure("the file records no input shape to trace this subclassed model with")
    traced, trace = trace_subclassed(model, shape)
    specs = input_specs(traced) if traced is not None else [InputSpec("input", tuple(shape[1:]), "float32")]
    return LiveModel(model, traced, specs, trace)


def extract(live: LiveModel, layer: str, call_site: tuple[int, ...], inputs: dict[str, np.ndarray],
            extractors: dict | None = None) -> list[np.ndarray]:
    """One layer's outputs for one input; ``extractors`` caches built extractors between calls."""
    if live.graph is None:  # no graph: run the model once and capture that layer's output
        batch = np.asarray(inputs[live.specs[0].name], np.float32)[None]
        return [record_layer_calls(live.model, batch, capture=layer)[0]]
    cache = {} if extractors is None else extractors
    key = (layer, tuple(call_site))
    if key not in cache:
        cache[key] = build_extractor(live.graph, layer, call_site)
    return run_extractor(cache[key], inputs, live.specs)


@dataclass(frozen=True)
class Trace:
    method: str  # "symbolic call" or "eager recording"
    config_json: str  # a Functional config (symbolic call) or the recorded layer calls (eager recording)
    note: str


def is_graph_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")


def trace_subclassed(model: Any, input_shape: tuple[int | None, ...]) -> tuple[Any | None, Trace]:
    """Recover what a subclassed model's ``call`` does, without guessing.

    First ``model.call`` on symbolic inputs: in Keras 3 this often yields the real graph (sublayers and
    keras.ops), returned as a Functional model sharing the weights. It fails on Python branching over
    tensors and raw TensorFlow ops; then one eager forward pass records each sublayer call (order and
    shapes) and no connection is claimed.
    """
    import json

    import keras

    shape = tuple(input_shape)
    try:
        symbolic = keras.Input(batch_shape=(None, *shape[1:]), name="input")
        traced = keras.Model(symbolic, model.call(symbolic), name=f"{model.name}_traced")
        config = {"module": "keras.src.models.functional", "class_name": "Functional", "config": traced.get_config()}
        note = ("connections observed by calling model.call on symbolic inputs; Python branches not taken for "
                "these inputs are not shown")
        return traced, Trace("symbolic call", json.dumps(config, default=str), note)
    except Exception as error:  # any failure of symbolic tracing falls back to recording
        reason = _trim(f"{type(error).__name__}: {error}", 160)
    calls = record_layer_calls(model, np.zeros((1, *(1 if d is None else d for d in shape[1:])), np.float32))
    note = (f"symbolic tracing failed ({reason}); the sublayer calls of one forward pass on zeros are listed in "
            "order with their output shapes, without connections")
    return None, Trace("eager recording", json.dumps(calls), note)


def record_layer_calls(model: Any, batch: np.ndarray, capture: str | None = None) -> Any:
    """Run ``model`` once eagerly, recording each sublayer call (name, class, output shapes) in order; with
    ``capture``, return that layer's first output value instead."""
    import keras

    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if not isinstance(layer, keras.Model)]
    calls: list[dict[str, Any]] = []
    captured: list[Any] = []
    originals = {id(layer): layer.call for layer in layers}

    def wrap(layer: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = originals[id(layer)](*args, **kwargs)
            flat = result if isinstance(result, list | tuple) else [result]
            calls.append({"name": layer.name, "class_name": type(layer).__name__,
                          "output_shapes": [list(getattr(t, "shape", ())) for t in flat]})
            if layer.name == capture and not captured:
                captured.append(np.asarray(flat[0]))
            return result
        return recorded

    try:
        for layer in layers:
            layer.call = wrap(layer)
        model(batch, training=False)
    finally:
        for layer in layers:
            layer.call = originals[id(layer)]
    if capture is not None:
        if not captured:
            raise RuntimeFailure(f"layer '{capture}' did not run in the forward pass")
        return captured[0]
    return calls


def _graph_of(model: Any) -> Any:
    """The Functional graph of a model: itself, or the one a Sequential builds from its input."""
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise RuntimeFailure(f"Sequential model '{model.name}' has no known input shape, so it has no graph")
        return functional
    if not hasattr(model, "_nodes_by_depth"):
        raise RuntimeFailure(f"'{model.name}' is a subclassed model: its connections are Python code")
    return model


def _own_nodes(graph: Any, layer: Any) -> list[Any]:
    """The layer's calls inside this graph, in the order the saved config numbers them."""
    from keras.src.ops.function import make_node_key

    return [node for index, node in enumerate(layer._inbound_nodes) if make_node_key(layer, index) in graph._nodes]


def _flat_inputs(graph: Any) -> list[Any]:
    value = graph.input
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list | tuple) else [value]


def _input_names(graph: Any) -> list[str]:
    value = graph.input
    if isinstance(value, dict):
        return list(value.keys())
    return [t.name for t in _flat_inputs(graph)]
