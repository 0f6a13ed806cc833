"""Feature-extractor export from the window (real live tier), compared with the command line's features.

``python -m explorer features`` runs on the bundled demo model in the background while the window's tests run
(it costs seconds of TensorFlow import); the other export commands are tested in tests/cli.
The window is one MainWindow with its live-tier worker for the whole module; the only stub is the answer to
the save dialog.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication, QImage

from explorer.resources import demo_model, resources_dir
from explorer.ui.exports import KERAS_FILTER
from tests.support.exports import read_export_metadata
from tests.support.processes import Run, assert_ok, image_folder
from tests.support.windows import live_main_window

DEMO = demo_model().resolve()
IMAGES = resources_dir() / "images"
BRICK = (IMAGES / "brick.png").resolve()
CLI_TIMEOUT_S = 240

START_S = 120.0  # the worker imports TensorFlow: seconds, more on a busy machine
SHOW_MS = 90000
DRAW_MS = 20000
EXPORT_MS = 180000  # build, save, and a verification process that imports TensorFlow again
ATOL = 1e-4

pytestmark = pytest.mark.skipif(not DEMO.exists() or not BRICK.exists(), reason="the bundled demo is missing")

# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export_window")
    image_folder(folder)
    return folder


def _commands(work: Path) -> dict[str, list[str]]:
    """The batch command the window's features are compared with (the other commands: tests/cli)."""
    return {"features": ["features", str(DEMO), "--layer", "global_pool", "--images", str(work / "images"),
                         "--batch-size", "2", "-o", str(work / "feats.npz")]}


class Runs:
    """The commands, running in the background from the start of the module (the window's tests run meanwhile)."""

    def __init__(self, futures: dict[str, Future]) -> None:
        self._futures = futures

    def __getitem__(self, name: str) -> Run:
        return self._futures[name].result(timeout=CLI_TIMEOUT_S)


@pytest.fixture(scope="module")
def runs(work: Path) -> Iterator[Runs]:
    """Every command, started concurrently, with HOME and the settings folder inside the test's folder."""
    home = work / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="3", HOME=str(home),
               XDG_CONFIG_HOME=str(work / "config"))

    def run(args: list[str]) -> Run:
        done = subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=env,
                              cwd=work, timeout=CLI_TIMEOUT_S)
        return Run(args, done.returncode, done.stdout, done.stderr)

    commands = _commands(work)
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        yield Runs({name: pool.submit(run, args) for name, args in commands.items()})


# --------------------------------------------------------------------------- the window


@pytest.fixture(scope="module")
def live_window(qapp, runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One MainWindow WITH its live tier for the whole module; closing it at the end stops the worker.

    It asks for ``runs`` so that the commands start first and run while the window's tests do."""
    with live_main_window(tmp_path_factory.mktemp("export_gui"), START_S) as window:
        yield window


@pytest.fixture
def demo(qtbot, live_window) -> Any:
    """The window showing the demo model with brick.png prepared as its input."""
    window = live_window
    if window.session.path != DEMO:
        # The worker loads the file once the graph is drawn; wait for that too (see the test of a layer
        # selected while it loads).
        with qtbot.waitSignal(window.live.model_loaded, timeout=START_S * 1000), \
                qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS,
                                 check_params_cb=lambda *_: window.session.path == DEMO):
            window.open_model(DEMO)
    panel = window.activations
    if panel.session.image is None or Path(panel.session.image.source).resolve() != BRICK:
        window.open_image(BRICK)
    qtbot.waitUntil(lambda: bool(panel.session.inputs), timeout=DRAW_MS)
    return window


def _show(qtbot, window: Any, path: str) -> np.ndarray:
    """Select ``path`` as a click would and wait until its output is on screen."""
    panel = window.activations
    with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda shown: shown == path):
        if panel.session.layer == path:
            panel.show_current_layer()
        else:
            window.session.select(path)
    return np.array(panel.view.array)


def _answer_save_dialog(monkeypatch, path: Path, chosen_filter: str) -> list[tuple]:
    """The one stub: the save dialog answers ``path``; returns the questions it was asked."""
    asked: list[tuple] = []

    def answer(parent, caption, default, filters):
        asked.append((caption, default, filters))
        return str(path), chosen_filter

    monkeypatch.setattr("explorer.ui.exports.QFileDialog.getSaveFileName", answer)
    return asked


def test_copy_as_python_names_the_model_file(qtbot, demo) -> None:
    _show(qtbot, demo, "stem")
    demo.session.choose(["stem", "shared_mixer"])  # as Ctrl+click does
    assert demo.graph_view.selected_paths() == ["stem", "shared_mixer"]
    assert [t.layer for t in demo.session.export_targets()] == ["stem", "shared_mixer"]
    QGuiApplication.clipboard().clear()
    demo.actions_by_name["copy_python"].trigger()
    code = QGuiApplication.clipboard().text()
    assert repr(str(DEMO)) in code, code
    assert "get_layer('stem')" in code and "get_layer('shared_mixer')" in code, code
    assert "extractor = keras.Model(" in code and "features = extractor(images" in code
    compile(code, "<clipboard>", "exec")  # valid Python


def test_export_activations_as_npy_and_png(qtbot, demo, monkeypatch, tmp_path: Path) -> None:
    shown = _show(qtbot, demo, "stem")
    view = demo.activations.view
    npy = tmp_path / "stem_out.npy"
    asked = _answer_save_dialog(monkeypatch, npy, "NPY (*.npy)")
    demo.actions_by_name["export_activations_npy"].trigger()
    assert asked and asked[0][1] == "stem.npy", asked
    assert np.array_equal(np.load(npy), view.array)
    assert np.array_equal(np.load(npy), shown) and shown.shape == (64, 64, 16)

    png = tmp_path / "stem_out.png"
    asked = _answer_save_dialog(monkeypatch, png, "PNG (*.png)")
    demo.actions_by_name["export_activations_png"].trigger()
    assert asked and asked[0][1] == "stem.png", asked
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 64 and image.height() >= 64
    assert str(png) in demo.statusBar().currentMessage()


def test_window_shows_the_features_the_cli_computed(qtbot, demo, runs: Runs, work: Path) -> None:
    """The batch command (decoded in threads, run in batches of 2) and the window (one image) agree."""
    assert_ok(runs["features"])
    with np.load(work / "feats.npz") as saved:
        features, files = saved["features"], [Path(str(f)).name for f in saved["files"]]
    shown = _show(qtbot, demo, "global_pool")
    assert demo.activations.inputs.preset.currentText() == "none"  # the suggested preset, as in the CLI
    row = features[files.index("brick.png")]
    assert shown.shape == row.shape
    assert np.allclose(shown, row, atol=ATOL), f"max abs difference {np.max(np.abs(shown - row)):.3g}"


def test_layer_selected_while_the_model_loads_is_shown(qtbot, demo) -> None:
    """Open a model and click a layer at once: the request reaches the worker before its Loaded reply, and is
    answered after it. The answer must be displayed, not dropped."""
    with qtbot.waitSignal(demo.graph_drawn, timeout=DRAW_MS):
        demo.open_model(DEMO)  # the worker loads the file again; set_model ran just before graph_drawn
    shown: list[str] = []
    demo.activations.shown.connect(shown.append)
    try:
        with qtbot.waitSignal(demo.live.activation_ready, timeout=SHOW_MS,
                              check_params_cb=lambda activation: activation.layer == "stem"):
            demo.session.select("stem")
        qtbot.waitUntil(lambda: "stem" in shown, timeout=3000)
    finally:
        demo.activations.shown.disconnect(shown.append)


def test_export_extractor_from_the_window(qtbot, demo, monkeypatch, tmp_path: Path) -> None:
    """Select, multi-select, File > Export Feature Extractor, wait for the verification, open the result."""
    _show(qtbot, demo, "stem")
    demo.session.choose(["stem", "shared_mixer"])  # as Ctrl+click does
    assert demo.graph_view.selected_paths() == ["stem", "shared_mixer"]
    assert [t.layer for t in demo.session.export_targets()] == ["stem", "shared_mixer"]
    out = tmp_path / "x.keras"
    asked = _answer_save_dialog(monkeypatch, out, KERAS_FILTER)
    with qtbot.waitSignal(demo.live.export_done, timeout=EXPORT_MS) as done:
        demo.actions_by_name["export_extractor"].trigger()
    assert asked and asked[0][1].endswith("demo_model_features.keras"), asked
    exported = done.args[0]
    report = exported.report
    assert exported.request == demo.exports.request
    assert report.verified, report.message
    assert report.max_abs_diff <= 1e-6
    assert Path(report.path) == out and out.is_file()
    assert report.outputs == ("stem", "shared_mixer")
    qtbot.waitUntil(lambda: "Exported x.keras" in demo.statusBar().currentMessage(), timeout=5000)
    assert not demo.banner.isVisible()
    info = read_export_metadata(out)
    assert info is not None and info["source"] == str(DEMO)
    assert [(e["layer"], e["call_site"]) for e in info["layers"]] == [("stem", [0]), ("shared_mixer", [0])]

    with qtbot.waitSignal(demo.graph_drawn, timeout=DRAW_MS, check_params_cb=lambda *_: demo.session.path == out):
        demo.open_model(out)
    tree = demo.inspector
    sections = {tree.topLevelItem(i).text(0): tree.topLevelItem(i) for i in range(tree.topLevelItemCount())}
    assert "Exported by Keras Explorer" in sections, list(sections)
    origin = sections["Exported by Keras Explorer"]
    rows = [(origin.child(i).text(0), origin.child(i).text(1)) for i in range(origin.childCount())]
    assert ("from", str(DEMO)) in rows, rows
    assert ("layer", "stem (call site [0])") in rows and ("layer", "shared_mixer (call site [0])") in rows, rows
    findings = demo.session.graph.findings
    assert not findings, f"an exported extractor must open without trust: {findings}"


def test_a_keras2_file_computes_and_saves_as_keras3_from_the_window(qtbot, live_window, monkeypatch,
                                                                     tmp_path: Path) -> None:
    """The standard transfer-learning file tf-keras wrote: a layer deep inside the nested base is computed, then
    File > Save as Keras 3 writes a verified Keras 3 file of the whole model."""
    from explorer.model.files import load_graph
    from tests.support.generations import GENERATIONS

    window = live_window
    source = GENERATIONS / "tf_keras_2.21" / "transfer.h5"
    with qtbot.waitSignal(window.live.model_loaded, timeout=START_S * 1000), \
            qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS,
                             check_params_cb=lambda *_: window.session.path == source.resolve()):
        window.open_model(source)
    if window.session.image is None:
        window.open_image(BRICK)
    array = _show(qtbot, window, "mobilenetv2_0.35_96/block_3_expand_relu")
    assert array.shape == (24, 24, 48)
    out = tmp_path / "transfer3.keras"
    asked = _answer_save_dialog(monkeypatch, out, KERAS_FILTER)
    with qtbot.waitSignal(window.live.export_done, timeout=EXPORT_MS) as done:
        window.actions_by_name["save_as_keras3"].trigger()
    assert asked and asked[0][1].endswith("transfer_keras3.keras"), asked
    report = done.args[0].report
    assert report.verified, report.message
    assert "tf-keras" in report.message and out.is_file()
    qtbot.waitUntil(lambda: "as Keras 3" in window.statusBar().currentMessage(), timeout=5000)
    graph = load_graph(out)
    assert graph.keras_version.startswith("3.") and not graph.findings and not graph.problems
    assert graph.totals == load_graph(source).totals
