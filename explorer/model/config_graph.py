"""Turn a Keras model config (``config.json`` or a legacy ``model_config``) into a LayerGraph."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from explorer.model.categories import (
    category_of,
    expected_weight_names,
    is_trainable_weight,
    sublayer_weight_name,
    weight_names,
)
from explorer.model.graph import Edge, LayerGraph, LayerNode, Port, Problem, Shape, Weight, path_part
from explorer.model.known_classes import check_classes
from explorer.model.shapes import infer_output_shapes
from explorer.model.weights import RawWeight, WeightTree

MODEL_CLASSES = {"Sequential", "Functional", "Model"}
TensorRef = tuple[str, int, int]  # (layer name, call index, output index) inside one model


def graph_from_config(
    config: dict[str, Any], weights: WeightTree, keras_version: str | None = None, source: str | None = None,
    provenance: dict[str, Any] | None = None, findings: tuple = (),
) -> LayerGraph:
    class_name = str(config.get("class_name", ""))
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    name = str(inner.get("name") or class_name or "model")
    builder = _Builder()
    if is_layer_list_model(config):
        kind = "sequential" if class_name == "Sequential" else "functional"
        model = builder.model(config, prefix=(), parent=None)
        inputs = tuple(Port(p.rsplit("/", 1)[-1], p, builder.output_shape(p, 0, 0)) for p in model.input_layers)
        outputs = tuple(
            Port(out_name, path, builder.output_shape(path, call, index))
            for out_name, (path, call, index) in model.outputs
        )
    else:
        # Subclassed or otherwise opaque: the file holds constructor arguments, not a layer list. What can be
        # known without running code: the tracked sublayers and their weights, as stored.
        module = str(config.get("module") or "")
        kind = "unknown" if module.startswith("keras") and class_name in MODEL_CLASSES else "subclassed"
        inputs = outputs = ()
        builder.nodes = _tracked_sublayers(weights)
    known = {node.path for node in builder.nodes}
    problems = [Problem(None, f"the model's output '{port.layer}' is a layer that does not exist")
                for port in outputs if port.layer not in known]
    outputs = tuple(port for port in outputs if port.layer in known)
    builder.nodes, missing = _known_group_outputs(builder.nodes, known)
    problems += missing
    output_paths = {p.layer for p in outputs}
    nodes = tuple(
        _finish_node(node, "output" if node.path in output_paths and not node.children else node.category)
        for node in (_spread_group_weights(_assign_weights(builder.nodes, weights))
                     if kind in ("sequential", "functional") else builder.nodes)
    )
    edges, broken = _check_connections(nodes, builder.edges)
    problems += [*broken, *_check_weight_shapes(nodes)]
    if weights.by_layer or weights.by_attribute:  # an architecture alone (a JSON) lacks weights by design
        problems += _check_missing_weights(nodes)
    if kind in ("sequential", "functional"):
        problems += check_classes(nodes)
    own_config = {key: value for key, value in inner.items() if key not in ("layers", "input_layers",
                                                                            "output_layers")}
    if isinstance(config.get("build_config"), dict):
        own_config["build_config"] = config["build_config"]
    return LayerGraph(name, kind, nodes, edges, inputs, outputs, keras_version, source, provenance,
                      findings, own_config, problems=tuple(problems))


def _known_group_outputs(nodes: list[LayerNode], known: set[str]) -> tuple[list[LayerNode], list[Problem]]:
    """A nested model whose outputs name layers it does not have: a problem, and only its real outputs kept."""
    problems, result = [], []
    for node in nodes:
        missing = [path for path, _ in node.output_layers if path not in known]
        if missing:
            problems += [Problem(node.path, f"its output '{path}' is a layer that does not exist") for path in missing]
            node = LayerNode(**{**node.__dict__, "output_layers": tuple(o for o in node.output_layers
                                                                        if o[0] in known)})
        result.append(node)
    return result, problems


def _check_missing_weights(nodes: tuple[LayerNode, ...]) -> Iterator[Problem]:
    """A layer that creates variables but has none in the file: Keras refuses weights that do not cover the model
    (Keras 2: "a weight file containing N layers into a model with M layers"; Keras 3: "could not be loaded")."""
    for node in nodes:
        if not node.children and not node.weights and expected_weight_names(node.class_name, node.config):
            yield Problem(node.path, "the file stores no weights for it (weights and config do not match)")


def _check_weight_shapes(nodes: tuple[LayerNode, ...]) -> Iterator[Problem]:
    """The stored kernel must fit the config (units / filters and the input width): Keras refuses the file."""
    for node in nodes:
        kernel = next((w for w in node.weights if w.name == "kernel"), None)
        if kernel is None or not kernel.shape:
            continue
        width = node.config.get("units", node.config.get("filters"))
        if node.class_name in ("Dense", "Conv1D", "Conv2D", "Conv3D") and isinstance(width, int) \
                and kernel.shape[-1] != width:
            yield Problem(node.path, f"the stored kernel is {kernel.shape} but the config asks for {width} outputs "
                                     "(weights and config do not match)")
            continue
        inputs = node.input_shapes[0] if node.input_shapes else ()
        fan_in = inputs[0][-1] if inputs and inputs[0] and node.class_name == "Dense" else None
        if isinstance(fan_in, int) and kernel.shape[0] != fan_in:
            yield Problem(node.path, f"the stored kernel is {kernel.shape} but its input has {fan_in} features "
                                     "(weights and config do not match)")


def _check_connections(nodes: tuple[LayerNode, ...], edges: list[Edge]) -> tuple[tuple[Edge, ...], list[Problem]]:
    """Inputs from layers that do not exist are problems (the edge is not drawn); a cycle cannot be drawn as a
    model at all (it cannot come from Keras) and fails the file."""
    known = {n.path: n.calls for n in nodes}
    following: dict[tuple[str, int], list[tuple[str, int]]] = {}
    kept, problems = [], []
    for edge in edges:
        if edge.source not in known:
            problems.append(Problem(edge.target, f"takes its input from '{edge.source}', which does not exist"))
            continue
        if edge.source_call >= known[edge.source]:
            problems.append(Problem(edge.target, f"uses call {edge.source_call} of '{edge.source}', which has "
                                                 f"{known[edge.source]}"))
            continue
        kept.append(edge)
        following.setdefault((edge.source, edge.source_call), []).append((edge.target, edge.target_call))
    state: dict[tuple[str, int], int] = {}  # 1: on the current path, 2: done
    for start in list(following):
        stack = [(start, iter(following.get(start, ())))]
        state[start] = state.get(start, 0) or 1
        while stack:
            here, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[here] = 2
                stack.pop()
            elif state.get(child) == 1:
                raise ValueError(f"the connections form a cycle through '{child[0]}'")
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(following.get(child, ()))))
    return tuple(kept), problems


def _tracked_sublayers(weights: WeightTree) -> list[LayerNode]:
    """One node per stored group of variables, named by attribute path; no edges (none are stored)."""
    nodes = []
    for attribute, (name, raw) in sorted(weights.by_attribute.items()):
        stored = [Weight(sublayer_weight_name("", int(w.key)) if w.key.isdigit() else w.key, w.shape, w.dtype, True)
                  for w in raw]
        nodes.append(LayerNode(path=attribute, name=name, class_name="tracked sublayer", category="other",
                               parent=None, config={"attribute": attribute, "layer name": name},
                               weights=tuple(stored)))
    return nodes


def _finish_node(node: LayerNode, category: str) -> LayerNode:
    if category == node.category:
        return node
    return LayerNode(**{**node.__dict__, "category": category})


def is_layer_list_model(config: Any) -> bool:
    return (
        isinstance(config, dict)
        and config.get("class_name") in MODEL_CLASSES
        and isinstance(config.get("config"), dict)
        and isinstance(config["config"].get("layers"), list)
    )


@dataclass
class _Model:
    input_layers: list[str] = field(default_factory=list)
    outputs: list[tuple[str, tuple[str, int, int]]] = field(default_factory=list)


@dataclass
class _Call:
    inputs: list[tuple[TensorRef | None, Shape | None]]


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[LayerNode] = []
        self.edges: list[Edge] = []
        self._outputs: dict[str, list[list[Shape | None]]] = {}  # path -> per call -> per index

    def output_shape(self, path: str, call: int, index: int) -> Shape | None:
        calls = self._outputs.get(path, [])
        if call < len(calls) and index < len(calls[call]):
            return calls[call][index]
        return None

    def model(self, config: dict, prefix: tuple[str, ...], parent: str | None) -> _Model:
        inner = config["config"]
        layers = [entry for entry in inner["layers"] if isinstance(entry, dict)]
        if config.get("class_name") == "Sequential" or not any("inbound_nodes" in e for e in layers):
            return self._sequential(inner, layers, prefix, parent)
        return self._functional(inner, layers, prefix, parent)

    # -- Sequential: a chain; shapes come from the next layer's build config or from rules.
    def _sequential(self, inner: dict, layers: list[dict], prefix: tuple[str, ...], parent: str | None) -> _Model:
        model = _Model()
        previous: str | None = None
        shape = _shape(inner.get("build_input_shape"))
        for position, entry in enumerate(layers):
            name = layer_name(entry, position)
            path = _join(prefix, name)
            calls = [] if previous is None else [_Call([((previous, 0, 0), shape)])]
            next_input = _build_input_shape(layers[position + 1]) if position + 1 < len(layers) else None
            if previous is None:
                model.input_layers.append(path)
            self._add_layer(entry, prefix, parent, calls or [_Call([(None, shape)])], {(0, 0): next_input})
            shape = self.output_shape(path, 0, 0)
            previous = name
        if previous is not None:
            model.outputs.append((previous, (_join(prefix, previous), 0, 0)))
        return model

    # -- Functional: inbound nodes cite (layer, node, index) with the tensor's recorded shape.
    def _functional(self, inner: dict, layers: list[dict], prefix: tuple[str, ...], parent: str | None) -> _Model:
        calls_by_layer = {layer_name(e, i): _parse_inbound(e.get("inbound_nodes") or []) for i, e in enumerate(layers)}
        keras2 = any(isinstance(node, list) for e in layers for node in (e.get("inbound_nodes") or []))
        skip_first = {layer_name(e, i) for i, e in enumerate(layers) if _skips_first_node(e)}
        if keras2:  # cited calls of nested models count from 1: make them the 0-based calls used here
            for calls in calls_by_layer.values():
                for call in calls:
                    call.inputs = [((ref[0], ref[1] - 1, ref[2]) if ref and ref[0] in skip_first and ref[1] > 0
                                    else ref, shape) for ref, shape in call.inputs]
        cited: dict[str, dict[tuple[int, int], Shape | None]] = {}
        for calls in calls_by_layer.values():
            for call in calls:
                for ref, shape in call.inputs:
                    if ref is not None and shape is not None:
                        cited.setdefault(ref[0], {})[(ref[1], ref[2])] = shape
        for position, entry in enumerate(layers):
            name = layer_name(entry, position)
            self._add_layer(entry, prefix, parent, calls_by_layer[name], cited.get(name, {}))
        model = _Model()
        model.input_layers = [_join(prefix, ref[0]) for _, ref in _port_refs(inner.get("input_layers"))]
        # Keras numbers a nested model's calls from 1 in output_layers (call 0 is its own internal node); Keras 3
        # does so for Functional models only, and numbers from 0 in inbound_nodes. Its loaders subtract 1 alike.
        offset = skip_first if keras2 else {layer_name(e, i) for i, e in enumerate(layers)
                                            if e.get("class_name") == "Functional"}
        model.outputs = [
            (key, (_join(prefix, ref[0]), ref[1] - (ref[0] in offset and ref[1] > 0), ref[2]))
            for key, ref in _port_refs(inner.get("output_layers"))
        ]
        return model

    def _add_layer(
        self, entry: dict, prefix: tuple[str, ...], parent: str | None, calls: list[_Call],
        cited: dict[tuple[int, int], Shape | None],
    ) -> None:
        class_name = str(entry.get("class_name", "?"))
        layer_config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        name = layer_name(entry, len(self.nodes))
        names = (*prefix, path_part(name))
        path = "/".join(names)
        resolved_calls = [self._resolve_inputs(call, prefix) for call in calls] or [[_input_shape(layer_config)]]
        nested: _Model | None = None
        children: tuple[str, ...] = ()
        if is_layer_list_model(entry):
            start = len(self.nodes)
            self.nodes.append(None)  # type: ignore[arg-type]  # placeholder keeps parents before children
            nested = self.model(entry, names, path)
            children = tuple(n.path for n in self.nodes[start + 1:] if n.parent == path)
        if class_name == "InputLayer":
            cited = {(0, 0): _input_shape(layer_config)}
            resolved_calls = [[]]
        outputs = []
        for call_index, input_shapes in enumerate(resolved_calls):
            count = 1 + max((index for (c, index) in cited if c == call_index), default=0)
            shapes = [cited.get((call_index, i)) for i in range(count)]
            if any(s is None for s in shapes):
                inferred = self._group_outputs(nested) if nested else infer_output_shapes(
                    class_name, layer_config, input_shapes)
                if inferred:
                    shapes = [s if s is not None else (inferred[i] if i < len(inferred) else None)
                              for i, s in enumerate(shapes + [None] * (len(inferred) - len(shapes)))]
            outputs.append(shapes)
        self._outputs[path] = outputs
        for call_index, call in enumerate(calls):
            for argument, (ref, shape) in enumerate(call.inputs):
                if ref is None:
                    continue
                source = _join(prefix, ref[0])
                edge_shape = shape if shape is not None else self.output_shape(source, ref[1], ref[2])
                self.edges.append(Edge(source, path, edge_shape, ref[1], ref[2], call_index, argument))
        node = LayerNode(
            path=path, name=name, class_name=class_name, category=category_of(class_name), parent=parent,
            config={k: v for k, v in layer_config.items() if k != "layers"},
            calls=max(1, len(calls)),
            input_shapes=tuple(tuple(c) for c in resolved_calls),
            output_shapes=tuple(tuple(o) for o in outputs),
            children=children,
            input_layers=tuple(nested.input_layers) if nested else (),
            output_layers=tuple((p, i) for _, (p, _c, i) in nested.outputs) if nested else (),
            module=entry.get("module"),
        )
        if nested:
            self.nodes[start] = node
        else:
            self.nodes.append(node)

    def _resolve_inputs(self, call: _Call, prefix: tuple[str, ...]) -> list[Shape | None]:
        shapes = []
        for ref, shape in call.inputs:
            if shape is None and ref is not None:
                shape = self.output_shape(_join(prefix, ref[0]), ref[1], ref[2])
            shapes.append(shape)
        return shapes

    def _group_outputs(self, nested: _Model) -> list[Shape | None]:
        return [self.output_shape(path, call, index) for _, (path, call, index) in nested.outputs]



def _join(prefix: tuple[str, ...], name: str) -> str:
    return "/".join((*prefix, path_part(name)))


def _assign_weights(nodes: list[LayerNode], weights: WeightTree) -> list[LayerNode]:
    """Give each layer its weights: a stored group belongs to the deepest layer whose path prefixes it.

    Weight keys are layer names, which Keras 2 let contain "/" (and wrote so into weight names): keys and the
    layers' real names along their paths are compared split at every "/"."""
    by_names = {tuple(n.path.split("/")): n for n in nodes}
    by_path = {n.path: n for n in nodes}
    for node in nodes:
        chain, up = [node.name], node.parent
        while up is not None:
            chain.append(by_path[up].name)
            up = by_path[up].parent
        by_names.setdefault(tuple(part for name in reversed(chain) for part in name.split("/")), node)
    frozen = {n.path for n in nodes if n.config.get("trainable") is False}
    owned: dict[str, list[tuple[tuple[str, ...], RawWeight]]] = {}
    for stored_key, raw_weights in weights.by_layer.items():
        key = tuple(part for name in stored_key for part in name.split("/"))
        owner = next((key[:i] for i in range(len(key), 0, -1) if key[:i] in by_names), None)
        if owner is not None and len(owner) < len(key):
            owner, key = _deeper_owner(owner, key, by_names)
        if owner is not None:
            owned.setdefault(by_names[owner].path, []).extend((key[len(owner):], w) for w in raw_weights)
    result = []
    for node in nodes:
        entries = owned.get(node.path, [])
        own_count = sum(1 for rest, w in entries if not rest and w.key.isdigit())
        labels = iter(weight_names(node.class_name, node.config, own_count))
        is_frozen = any(node.path == p or node.path.startswith(p + "/") for p in frozen)
        assigned = []
        for rest, weight in entries:
            label = "/".join((*rest, _weight_label(weight, labels)))
            trainable = not is_frozen and is_trainable_weight(label, node.class_name)
            assigned.append(Weight(label, weight.shape, weight.dtype, trainable))
        result.append(LayerNode(**{**node.__dict__, "weights": tuple(assigned)}) if assigned else node)
    return result


def _spread_group_weights(nodes: list[LayerNode]) -> list[LayerNode]:
    """Keras 3's legacy .h5 stores a nested model's weights flat in its group (``kernel``, ``bias``, ``gamma``…),
    in the order its loader assigns them back: the trainable variables of its layers in layer order, then the
    non-trainable ones (``legacy_h5_format._legacy_weights``). Give each to its layer when the names line up."""
    by_path = {node.path: index for index, node in enumerate(nodes)}
    frozen = {n.path for n in nodes if n.config.get("trainable") is False}
    result = list(nodes)
    for group in nodes:
        if not (group.children and group.weights and group.class_name in MODEL_CLASSES):
            continue
        leaves = [n for n in nodes if n.path.startswith(group.path + "/") and not n.children]
        slots: list[tuple[bool, LayerNode, str]] = []
        for leaf in leaves:
            is_frozen = any(leaf.path == p or leaf.path.startswith(p + "/") for p in frozen)
            slots += [(not is_frozen and is_trainable_weight(name, leaf.class_name), leaf, name)
                      for name in expected_weight_names(leaf.class_name, leaf.config)]
        ordered = [slot for slot in slots if slot[0]] + [slot for slot in slots if not slot[0]]
        if [name for _, _, name in ordered] != [w.name for w in group.weights]:
            continue  # not the layout above (or layers whose variables are not known): keep them on the group
        spread: dict[str, list[Weight]] = {}
        for (trainable, leaf, _), weight in zip(ordered, group.weights, strict=True):
            spread.setdefault(leaf.path, []).append(Weight(weight.name, weight.shape, weight.dtype, trainable))
        result[by_path[group.path]] = LayerNode(**{**group.__dict__, "weights": ()})
        for path, spread_weights in spread.items():
            leaf = result[by_path[path]]
            result[by_path[path]] = LayerNode(**{**leaf.__dict__, "weights": (*leaf.weights, *spread_weights)})
    return result


def _deeper_owner(owner: tuple[str, ...], key: tuple[str, ...], by_names: dict) -> tuple[tuple, tuple]:
    """Legacy .h5 names skip intermediate models (``innermost/dense/kernel`` inside ``block/middle``):
    find the one layer under ``owner`` whose path ends with the rest of the key."""
    for cut in range(len(key), len(owner), -1):
        tail = key[len(owner):cut]
        deeper = [p for p in by_names
                  if len(p) >= len(owner) + len(tail) and p[:len(owner)] == owner and p[-len(tail):] == tail]
        if len(deeper) == 1:
            return deeper[0], (*deeper[0], *key[cut:])
    return owner, key


def _weight_label(weight: RawWeight, own_labels: Iterator[str]) -> str:
    """Keras 3 stores variables by position: name them the way Keras does (kernel, bias, ...)."""
    if weight.key.isdigit():
        return next(own_labels, f"var_{weight.key}")
    head, _, tail = weight.key.rpartition("/")
    if not tail.isdigit():
        return weight.key.split(":")[0]
    return f"{head}/{sublayer_weight_name(head.rsplit('/', 1)[-1], int(tail))}"


def layer_name(entry: dict, position: int) -> str:
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(entry.get("name") or config.get("name") or f"layer_{position}")


def _shape(value: Any) -> Shape | None:
    if isinstance(value, list | tuple) and all(d is None or isinstance(d, int) for d in value):
        return tuple(value)
    return None


def _input_shape(config: dict) -> Shape | None:
    return _shape(config.get("batch_shape") or config.get("batch_input_shape"))


def _build_input_shape(entry: dict) -> Shape | None:
    build = entry.get("build_config")
    from_build = _shape(build.get("input_shape")) if isinstance(build, dict) else None
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return from_build or _shape(config.get("build_input_shape"))


def _parse_inbound(inbound: list) -> list[_Call]:
    calls = []
    for node in inbound:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            found: list[tuple[TensorRef | None, Shape | None]] = []
            _collect_tensors(node.get("args", []), found)
            _collect_tensors(node.get("kwargs", {}), found)
            calls.append(_Call(found))
        elif isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...], or one entry
            calls.append(_Call([(ref, None) for ref in _keras2_refs(node)]))
    return calls


def _keras2_refs(value: Any) -> list[TensorRef]:
    """The tensors a Keras 2 node entry cites, flattened the way its loader does (``tf.nest.flatten``): an entry
    is ``[layer, node_index, tensor_index(, kwargs)]``; a node is one entry (TFOpLambda) or a nest of them."""
    if not isinstance(value, list):
        return []
    if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int) and isinstance(value[2], int):
        return [(value[0], value[1], value[2])]
    return [ref for item in value for ref in _keras2_refs(item)]


def _skips_first_node(entry: dict) -> bool:
    """A nested model built on an Input has a first node of its own (input to output) that Keras 2 does not
    save: the calls that configs cite are numbered from 1 (tf-keras ``functional._should_skip_first_node``)."""
    if not is_layer_list_model(entry):
        return False
    if entry.get("class_name") != "Sequential":
        return True
    inner = entry["config"]["layers"]
    return bool(inner) and isinstance(inner[0], dict) and inner[0].get("class_name") == "InputLayer"


def _collect_tensors(value: Any, found: list) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = value.get("config", {})
            history = config.get("keras_history") or [None, 0, 0]
            ref = (str(history[0]), int(history[1]), int(history[2])) if history[0] is not None else None
            found.append((ref, _shape(config.get("shape"))))
            return
        for key in sorted(value):  # Keras flattens call arguments with dict keys sorted
            _collect_tensors(value[key], found)
    elif isinstance(value, list):
        for item in value:
            _collect_tensors(item, found)


def _port_refs(value: Any) -> list[tuple[str, TensorRef]]:
    """input_layers / output_layers: one [name, node, index], a list of them, or a dict of them."""
    if isinstance(value, dict):
        return [(str(k), ref) for k, v in value.items() for _, ref in _port_refs(v)]
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [(value[0], (value[0], int(value[1]), int(value[2])))]
    if isinstance(value, list):
        return [pair for item in value for pair in _port_refs(item)]
    return []
