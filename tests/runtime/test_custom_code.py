"""Custom objects as users bring them: registered layers whose export must verify in a fresh process,
unregistered classes and functions passed to Keras by name, and models built from code with the file's weights.

The models are defined in ``vit_defs.py`` and ``custom_defs.py`` (the files handed to the explorer), built and
saved here by Keras; every output is compared with the original model run directly in this process.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import runpy
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from explorer.cli.common import resolve_targets
from explorer.live.client import LiveTier
from explorer.live.protocol import BuildFromCode, Exported, Failed, Loaded, Status, WorkerState
from explorer.model.files import load_graph
from explorer.runtime.custom_code import keras_objects, run_custom_code
from explorer.runtime.errors import BuildNeedsCode, CustomObjectsNeedTrust, NotRebuildable, RuntimeFailure
from explorer.runtime.export import KERAS, export_extractor
from explorer.runtime.extraction import extract
from explorer.runtime.loading import LiveModel, load_model, open_model
from explorer.runtime.worker import worker_main
from tests.support.worker_events import WorkerEvents

ROOT = Path(__file__).resolve().parents[2]
VIT_DEFS = (Path(__file__).parent / "vit_defs.py").resolve()
DEFS = (Path(__file__).parent / "custom_defs.py").resolve()
ATOL = 1e-5
TINY_SHAPE = (8, 8, 3)
TINY_BUILD = BuildFromCode("TinyConv(4)", TINY_SHAPE)
CLI_TIMEOUT_S = 240
WORKER_TIMEOUT_S = 120.0


@dataclass
class Saved:
    path: Path
    model: Any  # the original, as built and saved
    batch: np.ndarray  # one example with its batch axis


def _randomise(model: Any, seed: int) -> None:
    """Random values in every variable, so a layer fed the wrong tensor (or weights not loaded) cannot match."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, keras_module: Any) -> dict[str, Saved]:
    folder = tmp_path_factory.mktemp("custom_code")
    vit = runpy.run_path(str(VIT_DEFS))  # registers Patches and PatchEncoder in this process
    # As a training script: the classes belong to __main__, where a loader cannot find them by importing.
    script = runpy.run_path(str(DEFS), run_name="__main__")
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, vit["IMAGE"], vit["IMAGE"], 3)).astype(np.float32)
    values = rng.normal(0, 1, (1, *script["INPUT_SHAPE"])).astype(np.float32)
    pixels = rng.uniform(0, 255, (1, *TINY_SHAPE)).astype(np.float32)
    models = {"vit": (vit["build_vit"](), image), "small": (script["small_functional"](4), values),
              "net": (script["Net"](units=3, name="net"), values), "rigid": (script["Rigid"](units=3), values),
              "tiny": (script["TinyConv"](4), pixels)}
    result = {}
    for seed, (name, (model, batch)) in enumerate(models.items()):
        model(batch)  # builds the subclassed ones
        _randomise(model, seed)
        path = folder / f"{name}.keras"
        model.save(path)
        result[name] = Saved(path, model, batch)
    weights = folder / "small.weights.h5"
    result["small"].model.save_weights(weights)
    result["small_weights"] = Saved(weights, result["small"].model, values)
    tiny_weights = folder / "tiny.weights.h5"  # a subclassed model's weights: no input shape recorded
    result["tiny"].model.save_weights(tiny_weights)
    result["tiny_weights"] = Saved(tiny_weights, result["tiny"].model, pixels)
    return result


def _layer_output(model: Any, layer: str, batch: np.ndarray) -> np.ndarray:
    """A Functional model's layer output, computed by Keras on the original model."""
    import keras

    return np.asarray(keras.Model(model.inputs, model.get_layer(layer).output)([batch]))


def _extract(live: LiveModel, layer: str, batch: np.ndarray) -> np.ndarray:
    outputs = extract(live, layer, (0,), {live.specs[0].name: batch[0]})
    assert len(outputs) == 1, f"{layer}: {len(outputs)} outputs"
    return outputs[0]


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    assert np.allclose(actual, expected, atol=ATOL, rtol=0), \
        f"{what}: max abs diff {float(np.max(np.abs(actual - expected))):.3g}"


def _cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    (tmp / "home").mkdir(exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp / "home"),
           "XDG_CONFIG_HOME": str(tmp / "config")}
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)


# --------------------------------------------------------------------------- (1) registered layers: exports


@pytest.fixture(scope="module")
def cli_runs(saved: dict[str, Saved], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The TensorFlow-loading commands at once (each imports it, an export's verification once more)."""
    folder = tmp_path_factory.mktemp("custom_code_cli")
    x = folder / "x.npy"
    np.save(x, saved["rigid"].batch[0])
    trusted = ["--trust", "--custom-objects", str(DEFS)]
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(11)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, TINY_SHAPE, dtype=np.uint8)).save(images / f"{index}.png")
    (images / "broken.png").write_bytes(b"not an image")
    tiny = ["--build", TINY_BUILD.call, "--input-shape", ",".join(map(str, TINY_SHAPE)), *trusted]
    commands = {
        "vit_export": ["export", str(saved["vit"].path), "--layer", "attention", "--layer", "encoder_norm",
                       "--trust", "--custom-objects", str(VIT_DEFS), "-o", str(folder / "vit_features.keras")],
        "rigid_plain": ["activations", str(saved["rigid"].path), "--layer", "dense", "--input", str(x),
                        "--npy", str(folder / "plain.npy"), *trusted],
        "rigid_build": ["activations", str(saved["rigid"].path), "--layer", "dense", "--input", str(x),
                        "--npy", str(folder / "built.npy"), *trusted, "--build", "Rigid(units=3)"],
        "tiny_features": ["features", str(saved["tiny_weights"].path), "--layer", "conv", "--images", str(images),
                          "--preprocess", "none", "-o", str(folder / "tiny.npz"), *tiny],
        "tiny_export": ["export", str(saved["tiny_weights"].path), "--layer", "pool", "-o",
                        str(folder / "tiny_pool.keras"), *tiny],
        "build_alone": ["activations", str(saved["rigid"].path), "--layer", "dense", "--input", str(x),
                        "--npy", str(folder / "alone.npy"), "--trust", "--build", "Rigid(units=3)"],
    }
    commands["shape_alone"] = [*commands["rigid_plain"], "--input-shape", "6"]
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(commands, pool.map(lambda args: _cli(args, folder), commands.values()), strict=True))
    return {"runs": runs, "folder": folder}


def test_cli_export_after_registered_custom_layers_is_verified(saved, cli_runs):
    run, folder = cli_runs["runs"]["vit_export"], cli_runs["folder"]
    assert run.returncode == 0, run.stderr[-2000:]
    assert "verified" in run.stdout, run.stdout
    exported = load_model(folder / "vit_features.keras", trust=True)  # this process registered the classes
    got = exported(saved["vit"].batch)
    for layer in ("attention", "encoder_norm"):
        _assert_close(np.asarray(got[layer]), _layer_output(saved["vit"].model, layer, saved["vit"].batch),
                      f"exported {layer}")


def test_window_export_after_registered_custom_layers_is_verified(saved, tmp_path):
    """The window's path: a real worker loads the ViT with its custom-objects file, then exports; the
    verification process it starts gets the same file."""
    item = saved["vit"]
    events = WorkerEvents()
    tier = LiveTier(events, worker_main)
    tier.start()
    try:
        events.wait_for(lambda e: isinstance(e, Status) and e.state == WorkerState.READY, "ready worker")
        request = tier.load(str(item.path), True, str(VIT_DEFS))
        loaded = events.wait_for(lambda e: isinstance(e, Loaded | Failed) and e.request == request, "Loaded")
        assert isinstance(loaded, Loaded), loaded.message
        targets = resolve_targets(load_graph(item.path), ["encoder_norm"], None)
        out = tmp_path / "norm.keras"
        request = tier.export(targets, str(out), KERAS, {"image": item.batch[0]})
        answer = events.wait_for(lambda e: isinstance(e, Exported | Failed) and e.request == request, "Exported")
        assert isinstance(answer, Exported), answer.message
        assert answer.report.verified, answer.report.message
    finally:
        tier.stop()
    exported = load_model(out, trust=True)
    _assert_close(np.asarray(exported(item.batch)), _layer_output(item.model, "encoder_norm", item.batch),
                  "exported encoder_norm")


# --------------------------------------------------------------------------- (2) unregistered classes


def test_keras_objects_are_the_files_own_classes_and_functions(keras_module):
    code = run_custom_code(DEFS, trust=True)
    assert set(code.objects) == {"shifted_relu", "Scale", "small_functional", "Net", "Rigid", "TinyConv"}
    assert code.objects["Scale"] is code.namespace["Scale"]
    assert keras_objects({"Dense": keras_module.layers.Dense, "relu": keras_module.ops.relu, "np": np}) == {}
    with pytest.raises(CustomObjectsNeedTrust):
        run_custom_code(DEFS, trust=False)


def test_unregistered_layer_and_function_need_the_file(saved):
    item = saved["small"]
    with pytest.raises(RuntimeFailure, match=r"could not load small\.keras: Could not locate function .shifted_relu"):
        open_model(item.path, trust=True)  # without the file, Keras finds neither the function nor the layer
    live = open_model(item.path, trust=True, custom_objects=str(DEFS))
    for layer in ("dense", "scale", "head"):  # dense applies shifted_relu, scale is the custom layer
        _assert_close(_extract(live, layer, item.batch), _layer_output(item.model, layer, item.batch)[0], layer)


def test_export_of_an_unregistered_layer_is_verified(saved, tmp_path):
    item = saved["small"]
    live = open_model(item.path, trust=True, custom_objects=str(DEFS))
    targets = resolve_targets(load_graph(item.path), ["scale"], None)
    out = tmp_path / "scale.keras"
    report = export_extractor(live.graph, item.path, targets, out, KERAS, {"values": item.batch[0]}, trust=True,
                              custom_objects=str(DEFS))
    assert report.verified, report.message
    reloaded = open_model(out, trust=True, custom_objects=str(DEFS)).model
    _assert_close(np.asarray(reloaded(item.batch)), _layer_output(item.model, "scale", item.batch), "exported scale")


def test_unregistered_subclassed_model_is_traced(saved):
    item = saved["net"]
    live = open_model(item.path, trust=True, custom_objects=str(DEFS))
    assert live.trace is not None and live.trace.method == "symbolic call"
    model, batch = item.model, item.batch
    dense = model.dense(batch)
    scale = model.scale(dense)
    _assert_close(np.asarray(model.head(np.maximum(scale, 0))), np.asarray(model(batch)), "hand-written reference")
    _assert_close(_extract(live, "dense", batch), np.asarray(dense)[0], "Net dense")
    _assert_close(_extract(live, "scale", batch), np.asarray(scale)[0], "Net scale")


# --------------------------------------------------------------------------- (3) building from code


def test_a_class_keras_cannot_rebuild_is_reported_in_one_line(saved):
    with pytest.raises(NotRebuildable) as caught:
        open_model(saved["rigid"].path, trust=True, custom_objects=str(DEFS))
    message = str(caught.value)
    assert "\n" not in message
    assert "unexpected keyword argument 'trainable'" in message and "build the model from its code" in message


def test_build_from_code_loads_the_files_weights(saved):
    item = saved["rigid"]
    live = open_model(item.path, trust=True, custom_objects=str(DEFS), build=BuildFromCode("Rigid(units=3)"))
    assert live.trace is not None and live.trace.method == "symbolic call"
    _assert_close(_extract(live, "dense", item.batch), np.asarray(item.model.dense(item.batch))[0], "built dense")
    _assert_close(_extract(live, "head", item.batch), np.asarray(item.model(item.batch))[0], "built head")


def test_build_from_code_with_a_weights_only_file(saved):
    item = saved["small_weights"]
    live = open_model(item.path, trust=True, custom_objects=str(DEFS), build=BuildFromCode("small_functional(4)"))
    for layer in ("scale", "head"):
        _assert_close(_extract(live, layer, item.batch), _layer_output(item.model, layer, item.batch)[0], layer)


def test_build_from_code_with_a_subclassed_models_weights_file_and_a_given_input_shape(saved):
    """save_weights of a subclassed model records no input shape: the one the user gives builds the model, the
    weights go in, the model is traced, and its layers compute what the original computed."""
    item = saved["tiny_weights"]
    live = open_model(item.path, trust=True, custom_objects=str(DEFS), build=TINY_BUILD)
    assert live.trace is not None and live.trace.method == "symbolic call"
    assert live.specs[0].shape == TINY_SHAPE
    model = item.model
    _assert_close(_extract(live, "conv", item.batch), np.asarray(model.conv(item.batch))[0], "built conv")
    _assert_close(_extract(live, "head", item.batch), np.asarray(model(item.batch))[0], "built head")


def test_build_from_code_on_a_weights_file_without_a_shape_says_what_is_missing(saved):
    with pytest.raises(RuntimeFailure) as caught:
        open_model(saved["tiny_weights"].path, trust=True, custom_objects=str(DEFS), build=BuildFromCode("TinyConv(4)"))
    assert "records no input shape" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("build", "custom", "trust", "error", "text"), [
    ("Rigid(units=5)", True, True, RuntimeFailure, "do not fit the model built from code"),
    ("Rigid(units=", True, True, RuntimeFailure, "building the model with Rigid(units= failed: SyntaxError"),
    ("Scale()", True, True, RuntimeFailure, "gives a Scale, not a Keras model"),
    ("Rigid()", False, True, BuildNeedsCode, "needs the Python file"),
    ("Rigid()", True, False, CustomObjectsNeedTrust, "Python code"),
], ids=["mismatch", "syntax", "not-a-model", "no-file", "untrusted"])
def test_build_from_code_failures_are_one_line(saved, build, custom, trust, error, text):
    with pytest.raises(error) as caught:
        open_model(saved["rigid"].path, trust=trust, custom_objects=str(DEFS) if custom else None,
                   build=BuildFromCode(build))
    assert text in str(caught.value) and "\n" not in str(caught.value)


def test_cli_build_from_code(saved, cli_runs):
    runs, folder = cli_runs["runs"], cli_runs["folder"]
    plain = runs["rigid_plain"]
    assert plain.returncode == 1, plain.stderr[-2000:]
    said = [line for line in plain.stderr.splitlines() if line.startswith("keras-explorer: ")]
    assert len(said) == 1 and "unexpected keyword argument 'trainable'" in said[0] and "--build" in said[0], \
        plain.stderr[-2000:]
    assert "Traceback" not in plain.stderr
    built = runs["rigid_build"]
    assert built.returncode == 0, built.stderr[-2000:]
    item = saved["rigid"]
    _assert_close(np.load(folder / "built.npy"), np.asarray(item.model.dense(item.batch))[0], "CLI built dense")
    shape_alone = runs["shape_alone"]
    assert shape_alone.returncode == 1 and "--input-shape is for a model built from code" in shape_alone.stderr
    alone = runs["build_alone"]
    assert alone.returncode == 1 and "--build needs --custom-objects" in alone.stderr, alone.stderr[-2000:]


def test_cli_features_and_export_of_a_subclassed_weights_file_built_from_code(saved, cli_runs):
    """features and export check the layer on the model built from code (the weights file lists no layers)."""
    runs, folder = cli_runs["runs"], cli_runs["folder"]
    done = runs["tiny_features"]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped" in done.stderr and "broken.png" in done.stderr
    with np.load(folder / "tiny.npz") as result:
        features, files = result["features"], list(result["files"])
    assert [Path(name).name for name in files] == ["0.png", "1.png", "2.png"]
    model = saved["tiny_weights"].model
    for name, got in zip(files, features, strict=True):
        pixels = np.asarray(Image.open(name).convert("RGB"), np.float32)[None]
        _assert_close(got, np.asarray(model.conv(pixels))[0], f"features of {Path(name).name}")
    exported = runs["tiny_export"]
    assert exported.returncode == 0 and "verified" in exported.stdout, exported.stderr[-2000:]


@contextlib.contextmanager
def _built_in_window(qtbot, monkeypatch, tmp_path: Path, path: Path, answers: list[str]) -> Iterator[tuple]:
    """A real window with a live tier on ``path``, File > Build Model from Code… answered with the custom-objects
    file, then ``answers`` to its questions, and trust; yields (window, the questions asked) once traced."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

    from explorer.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "explorer.ini"), QSettings.Format.IniFormat), start_live=True)
    qtbot.addWidget(window)
    given, asked = iter(answers), []

    def answer(_parent, _title, label, *_args, **_kwargs):
        asked.append(label)
        return next(given), True

    try:
        window.show()
        qtbot.waitExposed(window)
        with qtbot.waitSignal(window.graph_drawn, timeout=20_000):
            window.open_model(path)
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *_a, **_k: (str(DEFS), "")))
        monkeypatch.setattr(QInputDialog, "getText", staticmethod(answer))
        monkeypatch.setattr(QMessageBox, "exec", lambda _box: QMessageBox.StandardButton.Yes)
        with qtbot.waitSignal(window.live.traced, timeout=120_000):
            window.actions_by_name["build_from_code"].trigger()
        yield window, asked
    finally:
        window.close()


def _shown(qtbot, window, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """(the layer's output the window shows, the input it was computed on with its batch axis)."""
    qtbot.waitUntil(lambda: layer in window.graph_view.items_by_path and bool(window.session.inputs),
                    timeout=30_000)
    with qtbot.waitSignal(window.activations.shown, timeout=60_000, check_params_cb=lambda p: p == layer):
        window.session.select(layer)
    fed = next(iter(window.session.inputs.values())).array[None].astype(np.float32)
    return window.activations.outputs[0], fed


def test_window_builds_a_model_keras_cannot_rebuild_from_code(qtbot, saved, tmp_path, monkeypatch):
    """File > Build Model from Code…: the Python file, the constructor call, trust; the live tier builds the model,
    loads the file's weights into it, traces it, and a layer computes what the original model computed."""
    item = saved["rigid"]
    with _built_in_window(qtbot, monkeypatch, tmp_path, item.path, ["Rigid(units=3)"]) as (window, _asked):
        assert window.session.build == BuildFromCode("Rigid(units=3)")
        shown, fed = _shown(qtbot, window, "dense")
        assert np.allclose(shown, np.asarray(item.model.dense(fed))[0], atol=1e-5)


def test_window_builds_a_subclassed_weights_file_on_the_input_shape_it_asks_for(qtbot, saved, tmp_path, monkeypatch):
    """A weights-only file records no input shape: after the constructor call the window asks for one."""
    item = saved["tiny_weights"]
    with _built_in_window(qtbot, monkeypatch, tmp_path, item.path, ["TinyConv(4)", "8, 8, 3"]) as (window, asked):
        assert len(asked) == 2 and "Input shape" in asked[1]
        assert window.session.build == TINY_BUILD
        assert window.session.set_image(ROOT / "resources" / "images" / "brick.png")
        shown, fed = _shown(qtbot, window, "conv")
        assert np.allclose(shown, np.asarray(item.model.conv(fed))[0], atol=1e-4)


def test_window_refuses_a_shape_it_cannot_read_in_one_line(qtbot, saved, tmp_path):
    from PySide6.QtCore import QSettings

    from explorer.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "explorer.ini"), QSettings.Format.IniFormat), start_live=False)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.graph_drawn, timeout=20_000):
        window.open_model(saved["tiny_weights"].path)
    with qtbot.waitSignal(window.session.failed, timeout=5_000) as said:
        window.choose_build_from_code(str(DEFS), "TinyConv(4)", "8 by 8")
    assert "not an input shape" in said.args[0] and window.session.build is None


def test_a_subclassed_models_weights_file_opens_as_its_attributes(saved, tmp_path):
    """save_weights of a subclassed model stores its variables under attribute names (dense/vars, head/vars):
    the weights view shows them with the model's exact totals."""
    item = saved["rigid"]
    path = tmp_path / "rigid.weights.h5"
    item.model.save_weights(path)
    graph = load_graph(path)
    assert graph.kind == "weights" and not graph.findings and not graph.problems
    assert {node.path for node in graph.nodes} == {"dense", "head"}
    assert graph.totals[0] == item.model.count_params()
