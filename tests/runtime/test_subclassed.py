"""Subclassed models end to end: what the file alone tells (no code runs), what the live tier recovers by
running the model's own code (symbolic tracing, else eager recording), and the CLI and window on top.

The three models live in ``subclassed_defs.py``, which is also the ``--custom-objects`` file the explorer
runs. Every activation is compared with a reference computed in this process on the ORIGINAL model object
(the one that was saved), by re-running its ``call`` step by step with its own sublayers; each reference is
first checked against ``model(x)`` so it cannot drift from the real ``call``.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.model.files import load_graph
from explorer.model.graph import LayerGraph
from explorer.model.traced import traced_graph
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.extraction import extract
from explorer.runtime.loading import LiveModel, open_model
from explorer.runtime.tracing import is_graph_model
from tests.runtime import subclassed_defs as defs

ROOT = Path(__file__).resolve().parents[2]
DEFS = Path(defs.__file__).resolve()
ATOL = 1e-5
CLI_TIMEOUT_S = 120
WORKER_MS = 90_000  # the window's worker imports TensorFlow, then loads and traces the model
DRAW_MS = 15_000
CLASSES = {"Plain": defs.Plain, "Branchy": defs.Branchy, "RawTF": defs.RawTF}
# Not the defaults, so the stored config must be what was passed.
CONSTRUCTOR = {"Plain": {"filters": 5, "depth": 3, "classes": 3}, "Branchy": {"units": 4}, "RawTF": {"units": 6}}


# --------------------------------------------------------------------------- models and references


@dataclass
class Saved:
    name: str
    path: Path
    model: Any  # the original model object, as built and saved
    batch: np.ndarray  # (1, 8, 8, 3), positive mean (Branchy takes its "positive" branch)

    def sublayers(self) -> list[Any]:
        return list(self.model._flatten_layers(include_self=False, recursive=True))

    def params_by_name(self) -> dict[str, int]:
        """What Keras counts, for every sublayer that holds variables (only those are stored)."""
        return {layer.name: layer.count_params() for layer in self.sublayers() if layer.weights}


def _np(tensor: Any) -> np.ndarray:
    return np.asarray(tensor, dtype=np.float32)


def plain_reference(model: Any, batch: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray],
                                                              list[np.ndarray]]:
    """Plain.call by hand: (sublayer outputs by name, the relu results in order, the add results in order)."""
    import keras

    ops = keras.ops
    layers: dict[str, Any] = {"conv": model.conv(batch)}
    relus = [ops.relu(layers["conv"])]
    layers["pool"] = model.pool(relus[0])
    x, adds = layers["pool"], []
    for block in model.blocks:
        layers[block.name] = block(x)
        relus.append(ops.relu(layers[block.name]))
        x = ops.add(x, relus[-1])
        adds.append(x)
    layers["head"] = model.head(x)
    _same_as_model(model, batch, layers["head"])
    return {k: _np(v) for k, v in layers.items()}, [_np(r) for r in relus], [_np(a) for a in adds]


def branchy_reference(model: Any, batch: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    """Branchy.call by hand: (sublayer outputs by name, the sublayers in the order they ran)."""
    flat = model.flatten(batch)
    stem = model.stem(flat)
    branch = model.positive if float(np.mean(batch)) >= 0 else model.negative
    chosen = branch(stem)
    head = model.head(chosen)
    _same_as_model(model, batch, head)
    order = ["flatten", "stem", branch.name, "head"]
    return dict(zip(order, (_np(flat), _np(stem), _np(chosen), _np(head)), strict=True)), order


def rawtf_reference(model: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    conv = model.conv(batch)
    dense = model.dense(tf.reduce_mean(tf.nn.relu(conv), axis=[1, 2]))
    head = model.head(tf.nn.relu(dense))
    _same_as_model(model, batch, head)
    return {"conv": _np(conv), "dense": _np(dense), "head": _np(head)}


def reference_layers(item: Saved, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The sublayer outputs of ``item``'s original model on ``batch``, by layer name."""
    if item.name == "Plain":
        return plain_reference(item.model, batch)[0]
    if item.name == "Branchy":
        return branchy_reference(item.model, batch)[0]
    return rawtf_reference(item.model, batch)


def _same_as_model(model: Any, batch: np.ndarray, by_hand: Any) -> None:
    np.testing.assert_allclose(_np(by_hand), _np(model(batch, training=False)), atol=1e-6,
                               err_msg=f"the hand-written reference no longer matches {model.name}.call")


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, reference {expected.shape}"
    worst = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
    assert np.allclose(actual, expected, atol=ATOL, rtol=0), f"{what}: max abs diff {worst:.3g}"


@pytest.fixture(scope="session")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Saved]:
    import keras

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("subclassed")
    batch = np.random.default_rng(0).random((1, *defs.INPUT_SHAPE)).astype(np.float32)
    rng = np.random.default_rng(1)
    result = {}
    for name, cls in CLASSES.items():
        model = cls(name=name.lower(), **CONSTRUCTOR[name])
        model(batch)  # builds it (Branchy through its own build; the others by running call)
        # Random biases, so that a layer fed the wrong tensor (or nothing) cannot match by accident.
        for layer in model._flatten_layers(include_self=False):
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape).astype(np.float32))
        path = folder / f"{name.lower()}.keras"
        model.save(path)
        result[name] = Saved(name, path, model, batch)
    return result


@pytest.fixture(scope="module")
def live(saved: dict[str, Saved]) -> dict[str, LiveModel]:
    """Each file opened in this process the way the worker and the CLI do: trusted, with the defs file."""
    return {name: open_model(item.path, trust=True, custom_objects=str(DEFS)) for name, item in saved.items()}


def _traced(live_model: LiveModel, item: Saved) -> LayerGraph:
    assert live_model.trace is not None, "a subclassed model must come back with a trace"
    return traced_graph(live_model.trace, load_graph(item.path))


def _extract(live_model: LiveModel, layer: str, batch: np.ndarray) -> np.ndarray:
    outputs = extract(live_model, layer, (0,), {live_model.specs[0].name: batch[0]})
    assert len(outputs) == 1, f"{layer}: {len(outputs)} outputs"
    return outputs[0]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="3", HOME=str(tmp_path / "home"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONFAULTHANDLER="1")
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)


# --------------------------------------------------------------------------- (1) structure, no code runs


@pytest.mark.parametrize("name", list(CLASSES))
def test_file_alone_gives_tracked_sublayers_and_constructor_config(saved, name):
    item = saved[name]
    graph = load_graph(item.path)
    assert graph.kind == "subclassed"
    assert graph.name == name.lower()
    assert graph.edges == () and graph.inputs == () and graph.outputs == (), "no connection may be guessed"
    assert all(node.class_name == "tracked sublayer" and node.parent is None for node in graph.nodes)
    stored = {node.name: graph.params(node.path)[0] for node in graph.nodes}
    assert stored == item.params_by_name(), "tracked sublayers (by layer name) and their parameter counts"
    assert len({node.path for node in graph.nodes}) == len(graph.nodes)
    assert graph.totals[0] == item.model.count_params()
    for key, value in CONSTRUCTOR[name].items():
        assert graph.model_config[key] == value, f"constructor argument {key}"
    assert graph.model_config["build_config"]["input_shape"] == list(item.batch.shape)
    assert any(f"explorer_subclassed>{name}" in str(finding) for finding in graph.findings)


def test_summary_json_says_subclassed(saved, tmp_path):
    item = saved["Plain"]
    run = _cli(["summary", str(item.path), "--json"], _env(tmp_path))
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["model"]["kind"] == "subclassed"
    assert data["model"]["total_params"] == item.model.count_params()
    assert {layer["name"]: layer["params"] for layer in data["layers"]} == item.params_by_name()
    assert all(layer["inbound"] == [] for layer in data["layers"])


def test_check_reports_the_custom_class(saved, tmp_path):
    run = _cli(["check", str(saved["Plain"].path)], _env(tmp_path))
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "a custom class 'explorer_subclassed>Plain'" in run.stdout


@pytest.mark.parametrize("extra", [[], ["--custom-objects", str(DEFS)]], ids=["plain", "custom-objects"])
def test_activations_without_trust_refuses(saved, tmp_path, extra):
    x = tmp_path / "x.npy"
    np.save(x, saved["Plain"].batch[0])
    out = tmp_path / "out.npy"
    run = _cli(["activations", str(saved["Plain"].path), "--layer", "conv", "--input", str(x), "--npy", str(out),
                *extra], _env(tmp_path))
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert "refusing to load" in run.stderr and "--trust" in run.stderr
    assert not out.exists()


def test_open_model_refuses_without_trust(saved):
    with pytest.raises(RuntimeFailure, match="custom objects are Python code"):
        open_model(saved["Plain"].path, trust=False, custom_objects=str(DEFS))
    with pytest.raises(RuntimeFailure, match="refusing to load"):
        open_model(saved["Plain"].path)


# --------------------------------------------------------------------------- (2) tracing


def test_plain_is_traced_symbolically_with_edges(saved, live):
    item, live_model = saved["Plain"], live["Plain"]
    assert live_model.trace.method == "symbolic call"
    assert live_model.graph is not None and is_graph_model(live_model.graph)
    assert [(s.shape, s.dtype) for s in live_model.specs] == [(defs.INPUT_SHAPE, "float32")]
    graph = _traced(live_model, item)
    assert graph.kind == "subclassed"
    assert graph.trace.startswith("traced (symbolic call)")
    assert graph.edges, "a symbolic trace observes connections"
    assert [p.layer for p in graph.inputs] == ["input"] and [p.layer for p in graph.outputs] == ["head"]
    # The observed wiring: input > conv > relu > pool > block_0 > relu > add(pool, .) > ... > head.
    assert graph.inbound("conv") == ["input"]
    assert graph.node(graph.inbound("pool")[0]).class_name == "Relu"
    assert graph.inbound("block_0") == ["pool"]
    last_add = graph.node(graph.inbound("head")[0])
    assert last_add.class_name == "Add"
    assert graph.node(graph.inbound(last_add.path)[0]).class_name == "Add"  # the residual path
    assert graph.inbound(graph.inbound(last_add.path)[1]) == [f"block_{CONSTRUCTOR['Plain']['depth'] - 1}"]
    # Weights: the traced layers carry what the file stores for them (matched by layer name).
    assert {n.name: graph.params(n.path)[0] for n in graph.nodes if n.weights} == item.params_by_name()
    assert graph.totals[0] == item.model.count_params()
    layers, _, _ = plain_reference(item.model, item.batch)
    for name in ("conv", "pool", *(f"block_{i}" for i in range(CONSTRUCTOR["Plain"]["depth"])), "head"):
        assert name in graph
        _assert_close(_extract(live_model, name, item.batch), layers[name][0], f"Plain {name}")


def test_plain_traced_operation_nodes_can_be_computed(saved, live):
    """The keras.ops calls (relu, add) are nodes of the traced graph, drawn and selectable like layers; their
    outputs must be computable too. (Fails: _layer_outputs looks nodes up with get_layer, which
    only knows Layers, not the Operations keras.ops leaves in a Functional graph.)"""
    item, live_model = saved["Plain"], live["Plain"]
    graph = _traced(live_model, item)
    _, relus, adds = plain_reference(item.model, item.batch)
    expected = {"Relu": relus, "Add": adds}
    for class_name, references in expected.items():
        nodes = [n for n in graph.nodes if n.class_name == class_name]  # in graph (= call) order
        assert len(nodes) == len(references), class_name
        for node, reference in zip(nodes, references, strict=True):
            _assert_close(_extract(live_model, node.path, item.batch), reference[0], f"Plain {node.path}")


def test_branchy_falls_back_to_eager_recording(saved, live):
    item, live_model = saved["Branchy"], live["Branchy"]
    assert live_model.trace.method == "eager recording"
    assert live_model.graph is None, "no graph is claimed when only recording worked"
    assert "symbolic tracing failed" in live_model.trace.note and "boolean" in live_model.trace.note
    assert [(s.shape, s.dtype) for s in live_model.specs] == [(defs.INPUT_SHAPE, "float32")]
    graph = _traced(live_model, item)
    assert graph.trace.startswith("traced (eager recording)")
    assert graph.edges == () and graph.inputs == () and graph.outputs == ()
    # The recording runs once on zeros: mean 0 >= 0 takes the positive branch; "negative" never ran.
    zeros = np.zeros((1, *defs.INPUT_SHAPE), np.float32)
    on_zeros, order = branchy_reference(item.model, zeros)
    assert [n.name for n in graph.nodes] == order == ["flatten", "stem", "positive", "head"]
    assert [n.output_shapes for n in graph.nodes] == [((tuple(on_zeros[name].shape),),) for name in order]
    assert [n.class_name for n in graph.nodes] == ["Flatten", "Dense", "Dense", "Dense"]
    params = item.params_by_name()
    assert {n.name: graph.params(n.path)[0] for n in graph.nodes if n.weights} == \
        {name: params[name] for name in order if name in params}
    layers, _ = branchy_reference(item.model, item.batch)
    for name in order:
        _assert_close(_extract(live_model, name, item.batch), layers[name][0], f"Branchy {name}")


def test_branchy_other_branch_is_computed_for_inputs_that_take_it(saved, live):
    item, live_model = saved["Branchy"], live["Branchy"]
    negative = -item.batch
    layers, order = branchy_reference(item.model, negative)
    assert order == ["flatten", "stem", "negative", "head"]
    for name in order:
        _assert_close(_extract(live_model, name, negative), layers[name][0], f"Branchy (negative input) {name}")
    with pytest.raises(RuntimeFailure, match="'positive' did not run"):
        _extract(live_model, "positive", negative)


def test_raw_tf_ops_defeat_symbolic_tracing_and_are_recorded(saved, live):
    """Keras 3 KerasTensors cannot enter TensorFlow functions (tf.nn.relu, tf.reduce_mean), so model.call on
    a symbolic input fails; the explorer says so and records the sublayer calls instead."""
    item, live_model = saved["RawTF"], live["RawTF"]
    assert live_model.trace.method == "eager recording"
    assert live_model.graph is None
    assert "KerasTensor cannot be used as input to a TensorFlow function" in live_model.trace.note
    graph = _traced(live_model, item)
    assert graph.trace.startswith("traced (eager recording): symbolic tracing failed")
    assert graph.edges == ()
    layers = rawtf_reference(item.model, np.zeros((1, *defs.INPUT_SHAPE), np.float32))
    assert [n.name for n in graph.nodes] == ["conv", "dense", "head"]
    assert [n.output_shapes for n in graph.nodes] == [((layers[name].shape,),) for name in ("conv", "dense", "head")]
    assert {n.name: graph.params(n.path)[0] for n in graph.nodes} == item.params_by_name()
    layers = rawtf_reference(item.model, item.batch)
    for name in ("conv", "dense", "head"):
        _assert_close(_extract(live_model, name, item.batch), layers[name][0], f"RawTF {name}")


# --------------------------------------------------------------------------- (3) CLI


CLI_CASES = {"Plain": ("block_1", "symbolic call"), "Branchy": ("positive", "eager recording")}


@dataclass
class CliResult:
    run: subprocess.CompletedProcess
    output: Path


@pytest.fixture(scope="module")
def cli_runs(saved, tmp_path_factory) -> dict[str, CliResult]:
    """Both TensorFlow-loading commands at once (each spends seconds importing it)."""
    folder = tmp_path_factory.mktemp("subclassed_cli")
    env = _env(folder)
    x = folder / "x.npy"
    np.save(x, saved["Plain"].batch[0])  # without the batch axis; the CLI accepts both

    def run(name: str) -> CliResult:
        output = folder / f"{name}.npy"
        layer, _ = CLI_CASES[name]
        args = ["activations", str(saved[name].path), "--layer", layer, "--trust", "--custom-objects", str(DEFS),
                "--input", str(x), "--npy", str(output)]
        return CliResult(_cli(args, env), output)

    with ThreadPoolExecutor(len(CLI_CASES)) as pool:
        return dict(zip(CLI_CASES, pool.map(run, CLI_CASES), strict=True))


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_activations_of_a_traced_layer(saved, cli_runs, name):
    result, item = cli_runs[name], saved[name]
    layer, method = CLI_CASES[name]
    assert result.run.returncode == 0, result.run.stderr[-2000:]
    assert f"traced ({method})" in result.run.stderr
    assert result.run.stdout.strip().splitlines()[-1] == str(result.output)
    _assert_close(np.load(result.output), reference_layers(item, item.batch)[layer][0], f"CLI {name} {layer}")


# --------------------------------------------------------------------------- (4) the window


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "picture.png"
    pixels = np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


WINDOW_CASES = {"Plain": ("block_1", "symbolic call"), "Branchy": ("positive", "eager recording")}


@pytest.mark.parametrize("name", list(WINDOW_CASES))
def test_window_traces_after_custom_objects(qtbot, saved, tmp_path, monkeypatch, picture, name):
    """Open the file (structure only, activations off), answer the custom-objects and trust dialogs, then the
    traced structure replaces the drawn one and a traced layer's activations show."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from explorer.ui.main_window import MainWindow

    item = saved[name]
    layer, method = WINDOW_CASES[name]
    settings = QSettings(str(tmp_path / "settings" / "explorer.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, start_live=True)
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitExposed(window)
        window.open_image(picture)
        with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS):
            window.open_model(item.path)
        assert window.session.graph.kind == "subclassed" and window.session.graph.trace is None
        notice = window.notice.text.text()
        assert "subclassed" in notice and "stores no connections" in notice, notice
        assert not window.session.graph.edges
        assert window.session.refused, "an untrusted file with a custom class is not loaded into Keras"

        # Answer the two dialogs: the Python file defining the classes, then "trust and run it".
        monkeypatch.setattr(QMessageBox, "exec", lambda _box: QMessageBox.StandardButton.Yes)
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *_a, **_k: (str(DEFS), "")))
        drawn: list[int] = []
        window.graph_drawn.connect(lambda: drawn.append(1))
        traced_at: list[int] = []
        window.live.traced.connect(lambda _event: traced_at.append(len(drawn)))
        with qtbot.waitSignal(window.live.traced, timeout=WORKER_MS):
            window.choose_custom_objects()
        qtbot.waitUntil(lambda: bool(traced_at) and len(drawn) > traced_at[0], timeout=DRAW_MS)

        graph = window.session.graph
        assert graph.trace and "traced" in graph.trace and f"({method})" in graph.trace
        assert bool(graph.edges) == (method == "symbolic call"), "edges only when they were observed"
        assert layer in window.graph_view.items_by_path
        assert "recovered by the live tier" in window.notice.text.text()
        assert not window.session.refused

        qtbot.waitUntil(lambda: "input" in window.session.inputs, timeout=WORKER_MS)
        with qtbot.waitSignal(window.activations.shown, timeout=WORKER_MS, check_params_cb=lambda p: p == layer):
            window.session.select(layer)
        fed = window.session.inputs["input"].array
        assert fed.shape == defs.INPUT_SHAPE
        batch = fed[None].astype(np.float32)
        _assert_close(window.activations.outputs[0], reference_layers(item, batch)[layer][0], f"window {name} {layer}")
    finally:
        window.close()
