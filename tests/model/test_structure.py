"""The structure view of real saved Keras models agrees with the live Keras model it was saved from."""

from __future__ import annotations

import pytest

from tests.support.reference import keras_weights, node_weights, reference_of
from tests.support.zoo import ALL_MODELS, APPLICATIONS, SMALL_MODELS, Case

each_model = pytest.mark.parametrize("name", ALL_MODELS)


def _sources(case: Case, path: str, call: int) -> list[tuple[str, int]]:
    """(source path, source call) of each tensor a call receives, by argument position."""
    edges = sorted((e for e in case.graph.edges if e.target == path and e.target_call == call),
                   key=lambda e: e.argument)
    return [(e.source, e.source_call) for e in edges]


def _prefix(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/" if "/" in path else ""


@each_model
def test_layer_paths_match_keras(zoo, name):
    case = zoo(name)
    assert [n.path for n in case.graph.nodes] == list(case.reference.layers)


@each_model
def test_class_names_and_parents(zoo, name):
    case = zoo(name)
    got = {n.path: (n.name, n.class_name, n.parent) for n in case.graph.nodes}
    want = {p: (r.name, r.class_name, r.parent) for p, r in case.reference.layers.items()}
    assert got == want


@each_model
def test_groups_list_their_children(zoo, name):
    case = zoo(name)
    for path, ref in case.reference.layers.items():
        node = case.graph.node(path)
        expected = [p for p, r in case.reference.layers.items() if r.parent == path]
        assert list(node.children) == expected, path
        assert node.is_group == ref.is_model, path


@each_model
def test_calls_per_layer(zoo, name):
    case = zoo(name)
    got = {n.path: n.calls for n in case.graph.nodes}
    want = {p: max(1, len(r.outputs)) for p, r in case.reference.layers.items()}
    assert got == want


@each_model
def test_inbound_layers(zoo, name):
    case = zoo(name)
    got = {path: case.graph.inbound(path) for path in case.reference.layers}
    want = {
        path: list(dict.fromkeys(_prefix(path) + source for call in ref.inbound for source in call))
        for path, ref in case.reference.layers.items()
    }
    assert got == want


@each_model
def test_edges_per_call(zoo, name):
    """Every call's inputs, in argument order, come from the right call of the right layer."""
    case = zoo(name)
    got, want = {}, {}
    for path, ref in case.reference.layers.items():
        for call, (sources, calls) in enumerate(zip(ref.inbound, ref.inbound_calls, strict=True)):
            want[(path, call)] = [(_prefix(path) + s, c) for s, c in zip(sources, calls, strict=True)]
            got[(path, call)] = _sources(case, path, call)
    assert got == want


@each_model
def test_edges_connect_existing_layers(zoo, name):
    graph = zoo(name).graph
    for edge in graph.edges:
        assert edge.source in graph and edge.target in graph, edge
        assert edge.target_call < graph.node(edge.target).calls, edge
        assert edge.source_call < graph.node(edge.source).calls, edge


@each_model
def test_output_shapes_per_call(zoo, name):
    case = zoo(name)
    got = {n.path: [list(call) for call in n.output_shapes] for n in case.graph.nodes}
    want = {p: [list(call) for call in r.outputs] for p, r in case.reference.layers.items()}
    mismatched = {p: (got.get(p), want[p]) for p in want if got.get(p) != want[p]}
    assert not mismatched, f"{len(mismatched)} layers (explorer, keras): {mismatched}"


@each_model
def test_edge_shapes_match_source_outputs(zoo, name):
    case = zoo(name)
    for edge in case.graph.edges:
        source = case.reference.layers[edge.source]
        assert edge.shape == source.outputs[edge.source_call][edge.source_index], edge


@each_model
def test_params_per_layer(zoo, name):
    case = zoo(name)
    got = {n.path: case.graph.params(n.path) for n in case.graph.nodes}
    want = {p: (r.params, r.trainable_params) for p, r in case.reference.layers.items()}
    mismatched = {p: (got.get(p), want[p]) for p in want if got.get(p) != want[p]}
    assert not mismatched, f"(total, trainable) per layer (explorer, keras): {mismatched}"


@each_model
def test_param_totals(zoo, name):
    case = zoo(name)
    ref = case.reference
    assert case.graph.totals == (ref.total, ref.trainable, ref.non_trainable)
    assert case.graph.totals[0] == case.model.count_params()


@each_model
def test_model_name_and_kind(zoo, name):
    case = zoo(name)
    assert case.graph.name == case.reference.name
    assert case.graph.kind == case.reference.kind
    assert case.graph.source == str(case.path)


@each_model
def test_input_ports(zoo, name):
    case = zoo(name)
    got = [(p.layer, p.shape) for p in case.graph.inputs]
    want = [(r.layer, r.shape) for r in case.reference.inputs]
    assert got == want
    for port in case.graph.inputs:
        assert case.graph.node(port.layer).class_name == "InputLayer"


@each_model
def test_output_ports(zoo, name):
    case = zoo(name)
    got = [(p.layer, p.shape) for p in case.graph.outputs]
    want = [(r.layer, r.shape) for r in case.reference.outputs]
    if case.reference.output_names is not None:
        # A dict of outputs: ports are named by key; Keras flattens them in sorted-key order.
        by_name = dict(zip((p.name for p in case.graph.outputs), got, strict=True))
        assert sorted(by_name) == sorted(case.reference.output_names)
        got = [by_name[key] for key in sorted(by_name)]
    assert got == want


@each_model
def test_weights_are_known_for_every_weighted_layer(zoo, name):
    """Each layer's own weights are attached to it with Keras's shapes (no weights left unassigned)."""
    case = zoo(name)
    for path, ref in case.reference.layers.items():
        node = case.graph.node(path)
        if not ref.is_model:
            assert sum(w.size for w in node.weights) == ref.params, path


@pytest.mark.parametrize("name", APPLICATIONS)
def test_applications_are_large(zoo, name):
    case = zoo(name)
    assert len(case.graph.nodes) == len(case.model.layers) > 100
    assert len(case.graph.edges) >= len(case.graph.nodes) - 1


@each_model
def test_weight_names_shapes_and_trainability(zoo, name):
    case = zoo(name)
    model_layers = {}

    def walk(model, prefix):
        for layer in model.layers:
            model_layers[prefix + layer.name] = layer
            if hasattr(layer, "layers"):
                walk(layer, f"{prefix}{layer.name}/")

    walk(case.model, "")
    mismatched = {}
    for path, layer in model_layers.items():
        if case.reference.layers[path].is_model:
            continue
        got, want = node_weights(case.graph.node(path)), keras_weights(layer)
        if got != want:
            mismatched[path] = (got, want)
    assert not mismatched, f"{len(mismatched)} layers (explorer, keras): {mismatched}"


@each_model
def test_group_input_and_output_layers(zoo, name):
    """A nested model's node names the inner layers that take its inputs and produce its outputs."""
    case = zoo(name)
    for path, ref in case.reference.layers.items():
        if not ref.is_model:
            continue
        layer = case.model
        for part in path.split("/"):
            layer = layer.get_layer(part)
        node = case.graph.node(path)
        inputs = [f"{path}/{t._keras_history.operation.name}" for t in layer.inputs]
        outputs = [(f"{path}/{t._keras_history.operation.name}", t._keras_history.tensor_index) for t in layer.outputs]
        assert list(node.input_layers) == inputs, path
        assert list(node.output_layers) == outputs, path


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_reference_survives_keras_reload(zoo, keras_module, name):
    """Sanity check of the reference itself: Keras reloading the file sees the same layers, calls and shapes."""
    case = zoo(name)
    reloaded = reference_of(keras_module.saving.load_model(case.path, compile=False))
    assert {p: (r.class_name, r.inbound, r.outputs, r.params, r.trainable_params)
            for p, r in reloaded.layers.items()} == {
        p: (r.class_name, r.inbound, r.outputs, r.params, r.trainable_params)
        for p, r in case.reference.layers.items()}
    assert (reloaded.total, reloaded.trainable, reloaded.non_trainable) == (
        case.reference.total, case.reference.trainable, case.reference.non_trainable)
