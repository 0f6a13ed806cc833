"""summary, graph and check on every file the older Keras generations wrote (tests/fixtures/generations)."""

from __future__ import annotations

import json

import pytest

from explorer.cli import main
from tests.support.generations import GENERATIONS, KERAS_FILES, MANIFEST

# Keras 3 writes ``x / 127.5`` into a legacy .h5 as a TrueDivide entry Keras cannot load back.
KERAS_WOULD_REFUSE = {"keras_3.0.5/nested.h5": "layer 'true_divide'"}


@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_summary_json_gives_the_totals_format_and_version(name, capsys):
    assert main(["summary", "--json", str(GENERATIONS / name)]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    facts = MANIFEST[name]
    assert (model["total_params"], model["trainable_params"]) == (facts["count_params"], facts["trainable_params"])
    assert model["format"] and model["origin"].startswith("saved by ")
    if name.startswith(("tf_keras", "keras_2")):  # Keras 3's JSON and weights files record no version
        assert model["keras_version"] == facts["keras_version"]
        assert f"Keras {facts['keras_version']}" in model["origin"]


@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_graph_draws_every_layer(name, tmp_path, capsys):
    out = tmp_path / "graph.svg"
    assert main(["graph", str(GENERATIONS / name), "-o", str(out)]) == 0
    svg = out.read_text()
    top_level = [path for path in MANIFEST[name]["layers"] if "/" not in path]
    assert all(f">{layer}<" in svg or f">{layer} " in svg for layer in top_level), top_level


@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_check_is_clean_unless_keras_would_refuse(name, capsys):
    code = main(["check", str(GENERATIONS / name)])
    lines = capsys.readouterr().out.splitlines()
    if name in KERAS_WOULD_REFUSE:
        assert code == 1 and len(lines) == 1 and KERAS_WOULD_REFUSE[name] in lines[0], lines
    else:
        assert (code, lines) == (0, [])


def test_check_names_a_savedmodel_without_keras_metadata(capsys):
    (name,) = [n for n in MANIFEST if n not in KERAS_FILES]
    assert main(["check", str(GENERATIONS / name)]) == 2
    assert "without Keras metadata" in capsys.readouterr().err


def test_summary_takes_the_weights_of_an_architecture_json(tmp_path, capsys):
    """The JSON alone has no weights; --weights names the save_weights file wherever it is."""
    alone = tmp_path / "architecture.json"
    alone.write_bytes((GENERATIONS / "tf_keras_2.21" / "nested_arch.json").read_bytes())
    assert main(["summary", "--json", str(alone)]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["total_params"] == 0
    weights = GENERATIONS / "tf_keras_2.21" / "nested_arch.h5"
    assert main(["summary", "--json", str(alone), "--weights", str(weights)]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert model["total_params"] == MANIFEST["tf_keras_2.21/nested_arch.json"]["count_params"]
    assert model["format"] == "architecture JSON with the weights of nested_arch.h5"
