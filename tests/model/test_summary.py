"""``summary_dict`` (the data behind ``summary --json``) against the saved Keras models."""

from __future__ import annotations

import json

import pytest

from explorer.model.files import load_graph
from explorer.model.summary import format_shape, output_shape_text, summary_dict, summary_text
from tests.support.zoo import ALL_MODELS

MODEL_KEYS = {"name", "kind", "inputs", "outputs", "total_params", "trainable_params", "non_trainable_params",
              "format", "keras_version", "writer", "origin", "problems"}
LAYER_KEYS = {"name", "class_name", "parent", "output_shapes", "params", "calls", "inbound"}
KINDS = {"sequential", "functional", "subclassed", "unknown"}


def _roundtrip(graph) -> dict:
    """The summary as ``summary --json`` would print it: plain JSON, no custom encoder."""
    return json.loads(json.dumps(summary_dict(graph)))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_summary_keys_are_exact(zoo, name):
    data = _roundtrip(zoo(name).graph)
    assert set(data) == {"model", "layers"}
    assert set(data["model"]) == MODEL_KEYS
    assert data["model"]["kind"] in KINDS
    for port in data["model"]["inputs"] + data["model"]["outputs"]:
        assert set(port) == {"name", "shape"}
    assert data["layers"], "a layer-list model has layers"
    for layer in data["layers"]:
        assert set(layer) == LAYER_KEYS, layer


@pytest.mark.parametrize("name", ALL_MODELS)
def test_summary_model_matches_keras(zoo, name):
    case = zoo(name)
    model = _roundtrip(case.graph)["model"]
    ref = case.reference
    assert model["name"] == ref.name
    assert model["kind"] == ref.kind
    assert model["total_params"] == case.model.count_params()
    assert model["trainable_params"] == ref.trainable
    assert model["non_trainable_params"] == ref.non_trainable
    assert model["total_params"] == model["trainable_params"] + model["non_trainable_params"]
    assert [p["shape"] for p in model["inputs"]] == [list(r.shape) for r in ref.inputs]
    assert sorted(map(str, (p["shape"] for p in model["outputs"]))) == sorted(
        map(str, (list(r.shape) for r in ref.outputs)))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_summary_layers_match_keras(zoo, name):
    case = zoo(name)
    layers = _roundtrip(case.graph)["layers"]
    refs = list(case.reference.layers.values())
    assert [layer["name"] for layer in layers] == [r.name for r in refs]
    for layer, ref in zip(layers, refs, strict=True):
        parent = case.reference.layers[ref.parent].name if ref.parent else None
        expected = {
            "name": ref.name,
            "class_name": ref.class_name,
            "parent": parent,
            "output_shapes": [list(shape) for call in ref.outputs for shape in call],
            "params": ref.params,
            "calls": max(1, len(ref.outputs)),
            "inbound": list(dict.fromkeys(source for call in ref.inbound for source in call)),
        }
        assert layer == expected, ref.path


def test_unknown_dims_are_null(zoo):
    text = json.dumps(summary_dict(zoo("sequential_dense").graph))
    data = json.loads(text)
    assert data["model"]["inputs"] == [{"name": "features", "shape": [None, 16]}]
    assert '"shape": [null, 16]' in text
    assert data["layers"][0]["output_shapes"] == [[None, 16]]


def test_kinds(zoo):
    assert summary_dict(zoo("sequential_dense").graph)["model"]["kind"] == "sequential"
    assert summary_dict(zoo("sequential_built").graph)["model"]["kind"] == "sequential"
    assert summary_dict(zoo("functional_multi_io").graph)["model"]["kind"] == "functional"
    assert summary_dict(zoo("legacy_nested_h5").graph)["model"]["kind"] == "functional"
    assert summary_dict(zoo("ResNet50").graph)["model"]["kind"] == "functional"


def test_dict_outputs_are_named_by_key(zoo):
    model = summary_dict(zoo("functional_multi_io").graph)["model"]
    assert {p["name"]: p["shape"] for p in model["outputs"]} == {"label": [None, 5], "score": [None, 1]}
    assert {p["name"]: p["shape"] for p in model["inputs"]} == {"image": [None, 32, 32, 3], "meta": [None, 7]}


def test_shared_layer_summary(zoo):
    layers = {layer["name"]: layer for layer in summary_dict(zoo("shared_layers").graph)["layers"]}
    shared = layers["shared_dense"]
    assert shared["calls"] == 3
    assert shared["inbound"] == ["in_0", "in_1", "in_2"]
    assert shared["output_shapes"] == [[None, 8]] * 3
    assert shared["params"] == 12 * 8 + 8
    twice = layers["twice"]
    assert twice["calls"] == 2
    assert twice["inbound"] == ["squeeze", "twice"]


def test_nested_summary_parents(zoo):
    layers = summary_dict(zoo("nested").graph)["layers"]
    parents = {layer["name"]: layer["parent"] for layer in layers}
    assert parents["block"] is None
    assert parents["middle"] == "block"
    assert parents["innermost"] == "middle"
    assert parents["seq_dense"] == "innermost"
    calls = {layer["name"]: layer["calls"] for layer in layers}
    assert calls["middle"] == 2
    assert calls["block"] == 1


def test_subclassed_model_kind(tmp_path, keras_module):
    keras = keras_module

    @keras.saving.register_keras_serializable(package="explorer_tests")
    class TwoLayers(keras.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units)
            self.out = keras.layers.Dense(1)

        def call(self, inputs):
            return self.out(self.hidden(inputs))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    model = TwoLayers(name="two_layers")
    model(keras.ops.zeros((2, 4)))
    path = tmp_path / "subclassed.keras"
    model.save(path)
    data = _roundtrip(load_graph(path))
    assert data["model"]["kind"] == "subclassed"
    assert data["model"]["name"] == "two_layers"
    assert data["model"]["inputs"] == [] and data["model"]["outputs"] == []


def test_summary_text_mentions_every_layer_and_totals(zoo):
    case = zoo("shared_layers")
    text = summary_text(case.graph)
    assert text.splitlines()[0] == 'Model: "shared" (functional)'
    for ref in case.reference.layers.values():
        assert ref.name in text
    assert "shared_dense (Dense) x3" in text
    assert f"Total params: {case.model.count_params():,}" in text
    assert output_shape_text(case.graph, "shared_dense") == "(None, 8)"


def test_format_shape():
    assert format_shape(None) == "?"
    assert format_shape((None,)) == "(None,)"
    assert format_shape((None, 3, 4)) == "(None, 3, 4)"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_files_keras_wrote_have_nothing_keras_would_refuse(zoo, name):
    assert zoo(name).graph.problems == ()
