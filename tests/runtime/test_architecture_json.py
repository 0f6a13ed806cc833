"""An architecture JSON (``model.to_json()``) in the live tier: it computes with the weights the structure tier
read with it (saved beside it, or chosen with --weights / File > Open Weights…), for Keras 3 and Keras 2 writers
alike, and is refused in one line when it has none (a model built from it alone would show random numbers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main
from explorer.model.files import load_graph
from explorer.model.graph import Target
from explorer.runtime.errors import ArchitectureWithoutWeights
from explorer.runtime.extraction import extract
from explorer.runtime.loading import open_model
from explorer.runtime.snippet import python_snippet
from tests.support.generations import GENERATIONS

TOLERANCE = 1e-5  # of the outputs' magnitude: float32 rounding
# A layer inside a nested Sequential, one inside a nested Functional, a shared layer's second call, the output.
TARGETS = [("inner_seq/inner_bn", (0, 0)), ("block/block_relu", (0, 0)), ("shared_dense", (1,)), ("add", (0,))]
# (the architecture JSON, its save_weights file beside it, the same model saved whole by the same Keras)
WRITERS = {
    "keras_3.0.5": ("nested_arch.json", "nested_arch.weights.h5", "nested.keras"),
    "tf_keras_2.21": ("nested_arch.json", "nested_arch.h5", "nested.keras"),
}


def difference(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected))) / max(1.0, float(np.max(np.abs(expected))))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(11).uniform(0, 255, (16, 16, 3)).astype(np.float32)


def outputs(live, image: np.ndarray) -> list[np.ndarray]:
    return [extract(live, layer, site, {"image": image})[0] for layer, site in TARGETS]


@pytest.fixture(scope="module")
def whole_model_outputs(image) -> dict[str, list[np.ndarray]]:
    """What each writer's whole-model file computes (the reference the JSON must equal)."""
    return {writer: outputs(open_model(GENERATIONS / writer / whole), image)
            for writer, (_json, _weights, whole) in WRITERS.items()}


def alone(tmp_path: Path, writer: str) -> Path:
    """The writer's architecture JSON copied into a folder of its own: no weights beside it."""
    copy = tmp_path / writer / "architecture.json"
    copy.parent.mkdir()
    shutil.copy(GENERATIONS / writer / WRITERS[writer][0], copy)
    return copy


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_json_computes_with_the_weights_beside_it(writer, image, whole_model_outputs):
    live = open_model(GENERATIONS / writer / WRITERS[writer][0])
    for (layer, _site), got, expected in zip(TARGETS, outputs(live, image), whole_model_outputs[writer],
                                             strict=True):
        assert difference(got, expected) <= TOLERANCE, (writer, layer)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_json_computes_with_weights_chosen_from_elsewhere(writer, image, whole_model_outputs, tmp_path):
    weights = GENERATIONS / writer / WRITERS[writer][1]
    live = open_model(alone(tmp_path, writer), weights=str(weights))
    for (layer, _site), got, expected in zip(TARGETS, outputs(live, image), whole_model_outputs[writer],
                                             strict=True):
        assert difference(got, expected) <= TOLERANCE, (writer, layer)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_json_without_weights_is_refused_not_computed_with_random_ones(writer, tmp_path):
    with pytest.raises(ArchitectureWithoutWeights, match=r"architecture\.json is an architecture without weights"):
        open_model(alone(tmp_path, writer))


def test_the_command_line_takes_the_weights_and_names_the_flag_when_they_are_missing(image, tmp_path, capsys,
                                                                                     whole_model_outputs):
    writer = "keras_3.0.5"
    json_file, weights = alone(tmp_path, writer), GENERATIONS / writer / WRITERS[writer][1]
    np.save(tmp_path / "x.npy", image)
    command = ["activations", str(json_file), "--layer", "shared_dense", "--call", "1",
               "--input", str(tmp_path / "x.npy"), "--npy", str(tmp_path / "out.npy")]
    assert main(command) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "architecture without weights" in error and "--weights FILE.h5" in error
    assert not (tmp_path / "out.npy").exists()
    assert main([*command, "--weights", str(weights)]) == 0
    assert difference(np.load(tmp_path / "out.npy"), whole_model_outputs[writer][2]) <= TOLERANCE


def test_copy_as_python_loads_the_weights_the_json_was_opened_with(tmp_path):
    writer = "tf_keras_2.21"
    json_file, weights = alone(tmp_path, writer), GENERATIONS / writer / WRITERS[writer][1]
    snippet = python_snippet(json_file, [Target("shared_dense", (1,))], load_graph(json_file, weights=weights))
    assert f"model.load_weights({str(weights.resolve())!r})" in snippet
