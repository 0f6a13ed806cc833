"""``stats`` over a folder and ``compare`` of two checkpoints: real commands on real Keras files, checked
against Keras computing the same numbers in the test."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.inputs.images import Preprocessing, load_image
from explorer.inputs.sources import IMAGE, InputSource, prepare_input
from explorer.model.files import load_graph
from explorer.model.graph import InputSpec
from explorer.resources import resources_dir

pq = pytest.importorskip("pyarrow.parquet")
IMAGES = resources_dir() / "images"
SPEC = InputSpec("image", (32, 32, 3), "float32")


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=env,
                          timeout=240)


@pytest.fixture(scope="module")
def checkpoints(keras_module, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A small classifier with a nested block, and a second checkpoint whose 'head' weights moved by 10%."""
    import keras

    folder = tmp_path_factory.mktemp("checkpoints")
    keras.utils.set_random_seed(3)
    block = keras.Sequential([keras.Input((32, 32, 8)), keras.layers.Conv2D(8, 3, padding="same", name="inner_conv"),
                              keras.layers.ReLU(name="inner_relu")], name="block")
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(block(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    for variable in model.get_layer("head").weights:
        variable.assign(np.random.default_rng(1).normal(size=variable.shape).astype(np.float32))
    model.save(folder / "a.keras")
    for variable in model.get_layer("head").weights:
        variable.assign(np.asarray(variable) * 1.1)
    model.save(folder / "b.keras")
    other = keras.Model(inputs, keras.layers.Dense(4, name="head4")(x))
    other.save(folder / "other.keras")
    return folder / "a.keras", folder / "b.keras", folder / "other.keras"


def test_compare_finds_the_layer_whose_weights_moved(checkpoints, tmp_path):
    a, b, _ = checkpoints
    done = _cli("compare", str(a), str(b), "--image", str(IMAGES / "brick.png"), "--preprocess", "none", "--json",
                home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    layers = {row["layer"]: row for row in json.loads(done.stdout)["layers"]}
    assert layers["head"]["weight_change"] == pytest.approx(0.1, rel=1e-6)
    assert layers["conv"]["weight_change"] == 0 and layers["block/inner_conv"]["weight_change"] == 0
    assert layers["block/inner_relu"]["activation_change"] == 0
    assert layers["head"]["activation_change"] > 0  # the softmax of logits 10% larger


def test_compare_refuses_two_architectures_with_their_differences(checkpoints, tmp_path):
    a, _, other = checkpoints
    done = _cli("compare", str(a), str(other), home=tmp_path)
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("keras-explorer: ")]
    assert "not one architecture" in line and "head: only in" in line and "head4: only in" in line


def test_stats_over_a_folder_equal_keras_per_channel(checkpoints, tmp_path):
    import keras

    a, _, _ = checkpoints
    images = tmp_path / "images"
    images.mkdir()
    for name in ("brick.png", "grass.png", "gravel.png"):
        (images / name).write_bytes((IMAGES / name).read_bytes())
    (images / "broken.png").write_bytes(b"no")
    out = tmp_path / "stats.parquet"
    done = _cli("stats", str(a), "--images", str(images), "--preprocess", "none", "--batch-size", "2", "-o", str(out),
                home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "over 3 images, 1 skipped" in done.stdout
    table = pq.read_table(out).to_pylist()
    model = keras.saving.load_model(a, compile=False)
    block = model.get_layer("block")
    pixels = np.stack([prepare_input(SPEC, InputSource(IMAGE), load_image(images / n), Preprocessing("none")).array
                       for n in ("brick.png", "grass.png", "gravel.png")])
    before = keras.Model(model.input, model.get_layer("conv").output)(pixels)
    inner = np.asarray(keras.Model(block.inputs, block.get_layer("inner_relu").output)(before))
    rows = [row for row in table if row["layer"] == "block/inner_relu"]
    assert [row["channel"] for row in rows] == list(range(8)) and {row["images"] for row in rows} == {3}
    for row in rows:
        channel = inner[..., row["channel"]]
        assert row["mean"] == pytest.approx(float(channel.mean()), rel=1e-5, abs=1e-6)
        assert row["max"] == pytest.approx(float(channel.max()), rel=1e-5)
        assert row["dead_fraction"] == pytest.approx(float(np.mean(channel.reshape(3, -1).max(axis=1) <= 0)))
    layers = {(row["layer"], tuple(row["call_site"])) for row in table}
    graph = load_graph(a)
    assert {n.path for n in graph.nodes if n.class_name != "InputLayer"} == {path for path, _ in layers}
