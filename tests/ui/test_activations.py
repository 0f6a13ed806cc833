"""The Activations dock end to end: a real window with its live-tier worker (real TensorFlow in a child process),
driven by pytest-qt. Every displayed array is compared with a reference computed directly with Keras in the
test process on the input array the panel prepared.

One window (and so one worker) is shared by the whole module; each test first makes sure the model and image
it needs are open. Starting a worker imports TensorFlow (a few seconds), so only the crash test (the worker
restarts) and the close test (its own window) start more.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QObject, QPointF, QSettings, Qt, Slot
from PySide6.QtTest import QTest

from explorer.inputs import feature_maps as fm
from explorer.live.protocol import WorkerState
from explorer.resources import demo_model, resources_dir
from explorer.ui.activations.feature_view import CHANNEL, GRID, MESSAGE, PLOT
from explorer.ui.activations.qtgraph import pyqtgraph
from explorer.ui.panels.summary_table import PATH_ROLE
from tests.support.windows import live_main_window

pg = pyqtgraph()  # as the view imports it
DEMO = demo_model()
BRICK = (resources_dir() / "images" / "brick.png").resolve()
CLASS_NAMES = json.loads((resources_dir() / "demo_model_classes.json").read_text())
START_S = 90.0  # a worker start imports TensorFlow: seconds, more on a busy machine
SHOW_MS = 60000  # a first compute may wait for the worker to start
DRAW_MS = 15000
ATOL, RTOL = 1e-4, 1e-4

pytestmark = pytest.mark.skipif(not DEMO.exists() or not BRICK.exists(), reason="the bundled demo is missing")


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _close(actual: np.ndarray, expected: np.ndarray) -> bool:
    return actual.shape == expected.shape and bool(np.allclose(actual, expected, atol=ATOL, rtol=RTOL))


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != Keras {expected.shape}"
    worst = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
    assert _close(actual, expected), f"{what}: differs from Keras (max abs diff {worst:.3g})"


def _fitted(side: int) -> np.ndarray:
    """brick.png as the model gets it before preprocessing: RGB, stretched to side x side (bilinear)."""
    with Image.open(BRICK) as image:
        return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), np.float32)


# --------------------------------------------------------------------------- Keras references


def _run(model: Any, inputs: Any) -> np.ndarray:
    """One example through a Keras model (batch axis added and removed)."""
    if isinstance(inputs, list):
        result = model([a[None] for a in inputs], training=False)
    else:
        result = model(inputs[None], training=False)
    return np.asarray(result)[0]


class DemoReference:
    """Layer outputs of the demo model computed directly with Keras, on a given model input array."""

    def __init__(self) -> None:
        import keras

        self.keras = keras
        self.model = keras.saving.load_model(DEMO, compile=False)

    def top(self, name: str, x: np.ndarray) -> np.ndarray:
        """A top-level layer called once: ``keras.Model(model.input, layer.output)``."""
        return _run(self.keras.Model(self.model.input, self.model.get_layer(name).output), x)

    def shared_mixer(self, call: int, x: np.ndarray) -> np.ndarray:
        """The shared Conv2D at call 0 (on the max-pool branch) or 1 (on the average-pool branch)."""
        branch = self.top(("branch_maxpool", "branch_avgpool")[call], x)
        return np.asarray(self.model.get_layer("shared_mixer")(branch[None]))[0]

    def nested(self, outer: str, feed: np.ndarray, inner: list[str]) -> np.ndarray:
        """The second stage for a layer inside nested model ``outer``: ``feed`` is the tensor that feeds
        ``outer`` in the top-level graph (computed by a first stage), ``inner`` the path inside ``outer``
        (empty: ``outer`` itself, as called at the top level)."""
        layer = self.model.get_layer(outer)
        for name in inner:
            layer = layer.get_layer(name)
        return np.asarray(layer(feed[None], training=False))[0]


@pytest.fixture(scope="module")
def demo_ref() -> DemoReference:
    return DemoReference()


@dataclass
class Built:
    slow: Path  # small input (32x32x3, a 12 kB message) but 'squeeze' takes a good fraction of a second
    wide: Path  # a 224x224x3 input (600 kB, more than a pipe buffer) and slow layers behind it
    multi: Path  # an image input and a vector input
    models: dict[str, Any]  # the saved models, loaded back with Keras

    def reference(self, model: str, layer: str, inputs: Any) -> np.ndarray:
        import keras

        loaded = self.models[model]
        return _run(keras.Model(loaded.input, loaded.get_layer(layer).output), inputs)


def _heavy(hidden: Any, layers: Any, channels: int) -> Any:
    for index in range(4):  # tenths of a second of convolutions in the worker: a compute is reliably in flight
        hidden = layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"heavy_{index}")(hidden)
    return layers.Conv2D(4, 1, name="squeeze")(hidden)


def _build_models(folder: Path) -> Built:
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    pixels = keras.Input((32, 32, 3), name="pixels")
    early = layers.Conv2D(8, 3, padding="same", name="early")(pixels)
    slow = keras.Model(pixels, _heavy(layers.UpSampling2D(8, name="up")(early), layers, 128), name="slow_net")

    pixels = keras.Input((224, 224, 3), name="pixels")
    early = layers.Conv2D(8, 3, padding="same", name="early")(pixels)
    early_mix = layers.Conv2D(4, 1, name="early_mix")(early)
    pooled = layers.GlobalAveragePooling2D(name="pool")(_heavy(early, layers, 192))
    probs = layers.Dense(3, activation="softmax", name="probs")(pooled)
    wide = keras.Model(pixels, [probs, early_mix], name="wide_net")

    picture = keras.Input((32, 32, 3), name="picture")
    extras = keras.Input((4,), name="extras")
    conv = layers.Conv2D(6, 3, activation="relu", name="conv")(picture)
    pooled = layers.GlobalAveragePooling2D(name="pool")(conv)
    side = layers.Dense(3, name="extras_dense")(extras)
    mixed = layers.Concatenate(name="mix")([pooled, side])
    out = layers.Dense(2, activation="softmax", name="out")(mixed)
    multi = keras.Model([picture, extras], out, name="two_inputs")

    paths = {}
    for model in (slow, wide, multi):
        paths[model.name] = folder / f"{model.name}.keras"
        model.save(paths[model.name])
    loaded = {name: keras.saving.load_model(path, compile=False) for name, path in paths.items()}
    return Built(paths["slow_net"], paths["wide_net"], paths["two_inputs"], loaded)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build_models(tmp_path_factory.mktemp("activation_models"))


_slow_refs: dict[tuple[str, str], np.ndarray] = {}


def _slow_ref(built: Built, layer: str, preset: str, x: np.ndarray) -> np.ndarray:
    """Keras reference on the slow model, memoised per (layer, preset): the input only depends on the preset."""
    if (layer, preset) not in _slow_refs:
        _slow_refs[layer, preset] = built.reference("slow_net", layer, x)
    return _slow_refs[layer, preset]


# --------------------------------------------------------------------------- the live window


@pytest.fixture(scope="module")
def live_window(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One MainWindow WITH its live tier for the whole module; closing it at the end stops the worker."""
    with live_main_window(tmp_path_factory.mktemp("live_settings"), START_S) as window:
        yield window


def _ensure(qtbot, window: Any, model: Path, preset: str) -> Any:
    """Make ``window`` show ``model`` with brick.png, preset ``preset`` and the default display options."""
    if window.session.path != model.resolve():
        with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS,
                              check_params_cb=lambda *_: window.session.path == model.resolve()):
            window.open_model(model)
    panel = window.activations
    assert panel.specs, "the panel has the model's inputs (and preset) once its graph is drawn"
    if panel.session.image is None or Path(panel.session.image.source).resolve() != BRICK:
        window.open_image(BRICK)
    if panel.inputs.preset.currentText() != preset:
        panel.inputs.preset.setCurrentText(preset)
    view = panel.view
    for combo in (view.order, view.scale, view.colours):
        combo.setCurrentIndex(0)
    view.overlay.setChecked(False)
    qtbot.waitUntil(lambda: bool(panel.session.inputs), timeout=DRAW_MS)
    return window


@pytest.fixture
def demo(qtbot, live_window) -> Any:
    return _ensure(qtbot, live_window, DEMO, "none")  # the demo model rescales inside: "none" is suggested


def _show(qtbot, window: Any, path: str, timeout: int = SHOW_MS) -> np.ndarray:
    """Select ``path`` like a click would and wait until its output is on screen; returns what is shown."""
    panel = window.activations
    with qtbot.waitSignal(panel.shown, timeout=timeout, check_params_cb=lambda shown: shown == path):
        if panel.session.layer == path:  # the window ignores re-selecting the current layer: ask the panel again
            panel.show_current_layer()
        else:
            window.session.select(path)
    assert panel.session.layer == path
    assert path in _plain(panel.title.text())
    return np.array(panel.view.array)


def _image_input(window: Any, name: str = "image") -> np.ndarray:
    return window.session.inputs[name].array


def _click_box(qtbot, view: Any, path: str) -> None:
    item = view.items_by_path[path]
    view.centerOn(item)
    point = view.mapFromScene(item.sceneBoundingRect().center())
    assert view.viewport().rect().contains(point)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)


def _tile_centre(mosaic: fm.Mosaic, position: int) -> QPointF:
    """Mosaic pixel coordinates of the centre of the tile at ``position`` (row-major)."""
    row, column = divmod(position, mosaic.columns)
    return QPointF(column * (mosaic.tile_width + mosaic.gap) + mosaic.tile_width / 2,
                   row * (mosaic.tile_height + mosaic.gap) + mosaic.tile_height / 2)


def _click_tile(qtbot, view: Any, position: int) -> None:
    """A real mouse click on the grid picture, on the tile at ``position``."""
    scene_point = view.grid_image.mapToScene(_tile_centre(view.current_mosaic, position))
    point = view.grid_widget.mapFromScene(scene_point)
    assert view.grid_widget.viewport().rect().contains(point), "the tile is not on screen"
    qtbot.mouseClick(view.grid_widget.viewport(), Qt.MouseButton.LeftButton, pos=point)


# --------------------------------------------------------------------------- input and grid


def test_prepared_input_is_the_fitted_image_with_the_suggested_preset(demo):
    panel = demo.activations
    assert list(panel.session.inputs) == ["image"]
    assert panel.inputs.preset.currentText() == "none"
    assert "Rescaling" in panel.inputs.reason.text()
    _assert_close(_image_input(demo), _fitted(64), "model input (brick.png fitted to 64x64, 0..255)")
    assert "brick.png" in panel.inputs.image_name.text()
    assert panel.session.inputs["image"].preview.shape == (64, 64, 3)


def test_selected_layer_shows_a_grid_equal_to_keras(qtbot, demo, demo_ref):
    shown = _show(qtbot, demo, "stem")
    expected = demo_ref.top("stem", _image_input(demo))
    _assert_close(shown, expected, "stem")
    view = demo.activations.view
    assert view.pages.currentIndex() == GRID
    assert view.tile_count == expected.shape[-1] == 16
    # The picture on screen is the mosaic of the Keras output (each tile scaled to its own range).
    picture = fm.mosaic(expected).image
    assert view.grid_image.image.shape == picture.shape
    assert np.allclose(view.grid_image.image, picture, atol=1e-3, equal_nan=True)
    assert f"shape {expected.shape}" in view.stats.text()
    assert f"max {expected.max():.4g}" in view.stats.text()


def test_clicking_a_box_in_the_graph_computes_that_layer(qtbot, demo, demo_ref):
    if demo.session.layer == "branch_maxpool":
        _show(qtbot, demo, "rescale")
    with qtbot.waitSignal(demo.activations.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == "branch_maxpool"):
        _click_box(qtbot, demo.graph_view, "branch_maxpool")
    assert demo.summary.selected_path() == "branch_maxpool"
    expected = demo_ref.top("branch_maxpool", _image_input(demo))
    _assert_close(demo.activations.view.array, expected, "branch_maxpool")
    assert demo.activations.view.tile_count == 64


def test_clicking_a_row_of_the_summary_table_computes_that_layer(qtbot, demo, demo_ref):
    path = "res_stage2/res_stage2_block_a/res_stage2_block_a_relu"  # nested twice: the graph expands first
    if demo.session.layer == path:
        _show(qtbot, demo, "rescale")
    table = demo.summary.table
    proxy = demo.summary.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, 0).data(PATH_ROLE) == path)
    index = proxy.index(row, 0)
    table.scrollTo(index)
    with qtbot.waitSignal(demo.activations.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == path):
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualRect(index).center())
    # Two stages: what feeds res_stage2 (the output of res_stage1), then its block_a (a Sequential ending in relu).
    stage1 = demo_ref.nested("res_stage1", demo_ref.top("stem", _image_input(demo)), [])
    expected = demo_ref.nested("res_stage2", stage1, ["res_stage2_block_a"])
    _assert_close(demo.activations.view.array, expected, path)
    assert demo.activations.view.tile_count == 64
    assert {"res_stage2", "res_stage2/res_stage2_block_a"} <= demo.session.expanded
    qtbot.waitUntil(lambda: demo.graph_view.selected_path() == path, timeout=DRAW_MS)  # drawn after it computes


def test_layer_inside_a_nested_model(qtbot, demo, demo_ref):
    path = "res_stage1/res_stage1_block_a/res_stage1_block_a_conv"
    shown = _show(qtbot, demo, path)
    stem = demo_ref.top("stem", _image_input(demo))
    expected = demo_ref.nested("res_stage1", stem, ["res_stage1_block_a", "res_stage1_block_a_conv"])
    _assert_close(shown, expected, path)
    assert shown.shape == (32, 32, 32)
    assert demo.activations.view.tile_count == 32
    qtbot.waitUntil(lambda: demo.graph_view.selected_path() == path, timeout=DRAW_MS)  # drawn after it computes
    # A nested model itself shows its output, as Keras computes it at the top level.
    shown = _show(qtbot, demo, "res_stage1")
    _assert_close(shown, demo_ref.nested("res_stage1", stem, []), "res_stage1")


def test_opening_a_tile_shows_that_channel(qtbot, demo, demo_ref):
    expected = demo_ref.top("stem", _image_input(demo))
    _show(qtbot, demo, "stem")
    view = demo.activations.view
    mosaic = view.current_mosaic
    assert (mosaic.columns * mosaic.rows >= 16) and (mosaic.tile_height, mosaic.tile_width) == (64, 64)

    with qtbot.waitSignal(view.channel_opened, timeout=2000) as opened:
        _click_tile(qtbot, view, 5)
    assert opened.args == [5]
    assert view.pages.currentIndex() == CHANNEL
    assert np.allclose(view.channel_view.image.T, expected[:, :, 5], atol=ATOL)
    assert view.channel_title.text().endswith("channel 5")

    # Tiles sorted by decreasing maximum: the first tile is the channel with the highest maximum.
    view.order.setCurrentText("max")
    assert view.pages.currentIndex() == GRID
    strongest = int(np.argmax(expected.reshape(-1, 16).max(axis=0)))
    with qtbot.waitSignal(view.channel_opened, timeout=2000) as opened:
        _click_tile(qtbot, view, 0)
    assert opened.args == [strongest]
    assert np.allclose(view.channel_view.image.T, expected[:, :, strongest], atol=ATOL)
    view.order.setCurrentText("index")

    view.open_channel(11)
    assert view.pages.currentIndex() == CHANNEL
    assert np.allclose(view.channel_view.getImageItem().image.T, expected[:, :, 11], atol=ATOL)

    # Moving the mouse over the channel shows the value under it.
    graphics = view.channel_view.ui.graphicsView
    x, y = 20, 41
    scene_point = view.channel_view.getImageItem().mapToScene(QPointF(x + 0.5, y + 0.5))
    QTest.mouseMove(graphics.viewport(), graphics.mapFromScene(scene_point))
    qtbot.waitUntil(lambda: view.pixel_value.text() != "", timeout=2000)
    assert view.pixel_value.text() == f"x {x}, y {y}: {float(expected[y, x, 11]):.5g}"


def test_switching_layers_replaces_the_display(qtbot, demo, demo_ref):
    x = _image_input(demo)
    _assert_close(_show(qtbot, demo, "rescale"), demo_ref.top("rescale", x), "rescale")
    assert np.allclose(demo.activations.view.array, x / 255.0, atol=1e-6)  # Rescaling(1/255) on the raw pixels
    assert demo.activations.view.tile_count == 3
    _assert_close(_show(qtbot, demo, "merge_branches"), demo_ref.top("merge_branches", x), "merge_branches")
    assert demo.activations.view.tile_count == 128
    assert demo.activations.view.pages.currentIndex() == GRID
    assert "merge_branches" in demo.activations.view.stats.text()


def test_shared_layer_offers_each_call_site(qtbot, demo, demo_ref):
    panel = demo.activations
    x = _image_input(demo)
    first = _show(qtbot, demo, "shared_mixer")
    assert panel.call_site.count() == 2
    assert [panel.call_site.itemText(i) for i in range(2)] == ["call 1 of 2", "call 2 of 2"]
    assert panel.call_site.isVisibleTo(demo)
    assert panel.call_site.currentIndex() == 0
    _assert_close(first, demo_ref.shared_mixer(0, x), "shared_mixer call 1")

    with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == "shared_mixer"):
        panel.call_site.setCurrentIndex(1)
    second = np.array(panel.view.array)
    _assert_close(second, demo_ref.shared_mixer(1, x), "shared_mixer call 2")
    assert not np.allclose(first, second, atol=1e-3), "the two calls of shared_mixer show the same values"

    # A layer called once hides the combo again.
    _show(qtbot, demo, "global_pool")
    assert panel.call_site.count() == 1
    assert not panel.call_site.isVisibleTo(demo)


def test_predictions_are_a_bar_plot_with_named_top_classes(qtbot, demo, demo_ref):
    shown = _show(qtbot, demo, "predictions")
    expected = demo_ref.top("predictions", _image_input(demo))
    _assert_close(shown, expected, "predictions")
    view = demo.activations.view
    assert view.pages.currentIndex() == PLOT
    text = _plain(view.top_classes.text())
    names = re.findall(r"(\w+) (\d\.\d{3})", text)
    order = np.argsort(-expected)
    assert [n for n, _ in names] == [CLASS_NAMES[i] for i in order]
    assert [float(s) for _, s in names] == pytest.approx([float(expected[i]) for i in order], abs=1e-3)
    assert names[0][0] == "brick"  # the demo model recognises the brick texture
    bars = [i for i in view.plot.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert len(bars) == 1 and np.allclose(bars[0].opts["height"], expected, atol=ATOL)


def test_switching_fast_shows_only_the_last_layer(qtbot, demo, demo_ref):
    panel = demo.activations
    panel.cache.clear()
    if panel.session.layer != "stem":
        _show(qtbot, demo, "stem")
    shown: list[str] = []
    panel.shown.connect(shown.append)
    try:
        layers = ["rescale", "branch_avgpool", "merge_branches", "global_pool", "branch_maxpool"]
        with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == layers[-1]):
            for layer in layers:
                demo.session.select(layer)
        qtbot.wait(800)  # any late answer for an earlier layer would arrive here
    finally:
        panel.shown.disconnect(shown.append)
    assert shown == [layers[-1]]
    assert panel.session.layer == layers[-1]
    assert layers[-1] in _plain(panel.title.text())
    _assert_close(panel.view.array, demo_ref.top(layers[-1], _image_input(demo)), layers[-1])
    assert not panel.progress.isVisible()


def test_going_back_to_a_computed_layer_uses_the_cache(qtbot, demo, demo_ref):
    panel = demo.activations
    panel.cache.clear()
    _show(qtbot, demo, "branch_avgpool")
    assert panel.latest_request > 0  # computed by the worker
    _show(qtbot, demo, "global_pool")
    assert len(panel.cache) == 2

    started = time.perf_counter()
    with qtbot.waitSignal(panel.shown, timeout=100, check_params_cb=lambda p: p == "branch_avgpool"):
        demo.session.select("branch_avgpool")
    assert time.perf_counter() - started < 0.1
    assert panel.latest_request == -1  # no new request
    _assert_close(panel.view.array, demo_ref.top("branch_avgpool", _image_input(demo)), "branch_avgpool")


def test_changing_the_preset_changes_the_input_and_recomputes(qtbot, demo, demo_ref):
    panel = demo.activations
    raw = np.array(_image_input(demo))
    before = _show(qtbot, demo, "stem")
    try:
        with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == "stem"):
            panel.inputs.preset.setCurrentText("symmetric")
        assert panel.latest_request > 0  # a new computation, not the cached one
        fed = _image_input(demo)
        assert np.allclose(fed, raw / 127.5 - 1.0, atol=1e-6)
        after = np.array(panel.view.array)
        _assert_close(after, demo_ref.top("stem", fed), "stem with the symmetric preset")
        assert not np.allclose(before, after, atol=1e-3)
    finally:
        with qtbot.waitSignal(panel.shown, timeout=SHOW_MS):
            panel.inputs.preset.setCurrentText("none")
    assert np.array_equal(_image_input(demo), raw)
    _assert_close(panel.view.array, before, "stem back with the 'none' preset")


def test_an_unreadable_image_is_reported_and_the_app_stays_usable(qtbot, demo, demo_ref, tmp_path):
    panel = demo.activations
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture\n" * 10)
    before = np.array(_image_input(demo))
    with qtbot.waitSignal(demo.session.message, timeout=2000, check_params_cb=lambda text: "broken.png" in text) \
            as failed:
        assert not demo.open_image(broken)
    message = failed.args[0]
    assert "broken.png" in message and "not an image" in message
    assert "Traceback" not in message and "\n" not in message
    assert demo.statusBar().currentMessage() == message
    # The previous image is kept, and layers still compute on it.
    assert "brick.png" in panel.inputs.image_name.text()
    assert np.array_equal(_image_input(demo), before)
    layer = "global_pool" if panel.session.layer != "global_pool" else "branch_avgpool"
    _assert_close(_show(qtbot, demo, layer), demo_ref.top(layer, before), layer)


# --------------------------------------------------------------------------- other models


def test_multi_input_model_offers_a_source_per_input(qtbot, live_window, built):
    window = _ensure(qtbot, live_window, built.multi, "unit")
    panel = window.activations
    form = panel.inputs.other_inputs
    labels = [form.itemAt(row, form.ItemRole.LabelRole).widget().text() for row in range(form.rowCount())]
    combos = [form.itemAt(row, form.ItemRole.FieldRole).widget() for row in range(form.rowCount())]
    assert labels == ["picture (32, 32, 3)", "extras (4,)"]
    assert [c.currentText() for c in combos] == ["image", "zeros"]
    assert sorted(panel.session.inputs) == ["extras", "picture"]
    assert np.allclose(panel.session.inputs["picture"].array, _fitted(32) / 255.0, atol=1e-6)
    assert np.array_equal(panel.session.inputs["extras"].array, np.zeros(4, np.float32))

    def reference(layer: str) -> np.ndarray:
        return built.reference("two_inputs", layer, [panel.session.inputs["picture"].array,
                                                     panel.session.inputs["extras"].array])

    _assert_close(_show(qtbot, window, "conv"), reference("conv"), "conv")
    assert panel.view.tile_count == 6
    zeros_mix = _show(qtbot, window, "mix")
    _assert_close(zeros_mix, reference("mix"), "mix with zeros for 'extras'")
    assert panel.view.pages.currentIndex() == PLOT
    bias = np.asarray(built.models["two_inputs"].get_layer("extras_dense").bias)
    assert np.allclose(zeros_mix[-3:], bias, atol=1e-6)  # zeros in: the Dense gives its bias

    # Another source for the vector input: the prepared array changes and the layer is recomputed.
    with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == "mix"):
        combos[1].setCurrentText("random")
    extras = panel.session.inputs["extras"].array
    assert extras.shape == (4,) and np.abs(extras).sum() > 0
    random_mix = np.array(panel.view.array)
    _assert_close(random_mix, reference("mix"), "mix with random values for 'extras'")
    assert not np.allclose(random_mix[-3:], zeros_mix[-3:])
    with qtbot.waitSignal(panel.shown, timeout=SHOW_MS):
        combos[1].setCurrentText("zeros")


class _LiveLog(QObject):
    """What the live tier reports, with the status label as it reads after each report (queued slots, called
    after the panel's own)."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window = window
        self.texts: list[str] = []
        self.computing: list[str] = []
        window.live.status_changed.connect(self.on_status)
        window.live.worker_lost.connect(self.on_lost)

    @Slot(str, str)
    def on_status(self, state: str, detail: str) -> None:
        self.texts.append(self.window.activations.status.text())
        if state == WorkerState.COMPUTING:
            self.computing.append(detail)

    @Slot(str)
    def on_lost(self, _reason: str) -> None:
        self.texts.append(self.window.activations.status.text())
        self.texts.append("view: " + self.window.activations.view.message.text())

    def detach(self) -> None:
        self.window.live.status_changed.disconnect(self.on_status)
        self.window.live.worker_lost.disconnect(self.on_lost)


def _settle(qtbot, window: Any, layer: str) -> None:
    """Show ``layer``, let the worker go idle and deliver everything it sent, then forget cached results."""
    if window.session.layer != layer:
        _show(qtbot, window, layer)
    qtbot.waitUntil(lambda: window.live.state == WorkerState.READY, timeout=SHOW_MS)
    qtbot.wait(100)
    window.activations.cache.clear()


def _wait_computing(window: Any) -> None:
    """Wait (without running the event loop) until the worker reports it is computing: the client records the
    state on its reader thread as the report arrives."""
    deadline = time.monotonic() + 30
    while window.live.state != WorkerState.COMPUTING:
        assert time.monotonic() < deadline, "the worker never started computing"
        time.sleep(0.002)


def test_a_result_for_old_inputs_is_not_shown_for_new_ones(qtbot, live_window, built):
    """A layer still computing when the inputs change must not be shown later (from the cache) as its output
    for the new inputs."""
    window = _ensure(qtbot, live_window, built.slow, "unit")
    panel = window.activations
    _settle(qtbot, window, "early")
    window.session.select("squeeze")
    _wait_computing(window)
    # While 'squeeze' computes on the "unit" input: switch to "none", then to another layer straight away.
    try:
        panel.inputs.preset.setCurrentText("none")
        with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == "early"):
            window.session.select("early")
        fed = np.array(_image_input(window, "pixels"))
        assert np.allclose(fed, _fitted(32), atol=1e-4)
        _assert_close(panel.view.array, _slow_ref(built, "early", "none", fed), "early")
        shown = _show(qtbot, window, "squeeze")
        _assert_close(shown, _slow_ref(built, "squeeze", "none", fed),
                      f"'squeeze' after the preset changed (request {panel.latest_request}; -1 = from the cache)")
    finally:
        panel.inputs.preset.setCurrentText("unit")


def test_switching_fast_with_a_large_input_skips_stale_work_and_never_blocks(qtbot, live_window, built):
    """Clicking through layers while the worker computes: the window stays responsive, and of the layers
    clicked meanwhile only the last is computed (a 600 kB input is more than a pipe buffer holds)."""
    window = _ensure(qtbot, live_window, built.wide, "unit")
    panel = window.activations
    _settle(qtbot, window, "early")
    log = _LiveLog(window)
    durations: dict[str, float] = {}
    shown: list[str] = []
    panel.shown.connect(shown.append)
    try:
        window.session.select("squeeze")
        _wait_computing(window)
        with qtbot.waitSignal(panel.shown, timeout=SHOW_MS, check_params_cb=lambda p: p == "probs"):
            for layer in ("early_mix", "early", "pool", "probs"):
                started = time.perf_counter()
                window.session.select(layer)
                durations[layer] = time.perf_counter() - started
        qtbot.waitUntil(lambda: window.live.state == WorkerState.READY, timeout=SHOW_MS)
        qtbot.wait(100)
    finally:
        panel.shown.disconnect(shown.append)
        log.detach()
    assert shown == ["probs"]
    _assert_close(panel.view.array, built.reference("wide_net", "probs", _image_input(window, "pixels")), "probs")
    slowest = max(durations, key=durations.get)
    assert durations[slowest] < 0.1, (f"selecting '{slowest}' blocked the GUI for {durations[slowest]:.2f} s "
                                       f"(all: {durations}); the worker computed {log.computing}")
    # The one in flight, then the last; at most one more (already on its way when the next click came).
    assert log.computing[0] == "squeeze" and log.computing[-1] == "probs", log.computing
    assert len(log.computing) <= 3, f"superseded layers were computed: {log.computing}"


def test_killed_worker_is_reported_and_the_app_recovers(qtbot, live_window, built):
    window = _ensure(qtbot, live_window, built.slow, "unit")
    panel = window.activations
    _settle(qtbot, window, "early")
    fed = np.array(_image_input(window, "pixels"))
    assert np.allclose(fed, _fitted(32) / 255.0, atol=1e-6)
    old_pid = window.live.tier.pid
    log = _LiveLog(window)
    try:
        # The layer in flight is recomputed by the restarted worker once it has loaded the model again.
        with qtbot.waitSignal(panel.shown, timeout=int(START_S * 1000), check_params_cb=lambda p: p == "squeeze"):
            window.session.select("squeeze")
            _wait_computing(window)
            os.kill(old_pid, signal.SIGKILL)
            qtbot.waitUntil(lambda: any(t.startswith("view: ") for t in log.texts), timeout=15000)
            assert panel.view.pages.currentIndex() == MESSAGE
            assert "restart" in panel.view.message.text()
        assert any("failed" in t and "restart" in t for t in log.texts), log.texts
        qtbot.waitUntil(lambda: panel.status.text() == "Live: ready", timeout=5000)
    finally:
        log.detach()
    assert window.live.tier.pid not in (None, old_pid)
    assert _alive(window.live.tier.pid)
    assert not _alive(old_pid)
    _assert_close(panel.view.array, _slow_ref(built, "squeeze", "unit", fed), "squeeze after the restart")
    assert panel.latest_request > 0 and not panel.progress.isVisible()

    # And other layers compute on the new worker.
    panel.cache.clear()
    _assert_close(_show(qtbot, window, "early"), _slow_ref(built, "early", "unit", fed), "early after the restart")
    assert panel.latest_request > 0


def test_closing_the_window_stops_the_worker(qtbot, tmp_path):
    from explorer.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "explorer.ini"), QSettings.Format.IniFormat), start_live=True)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.live.state == WorkerState.READY, timeout=int(START_S * 1000))
        pid = window.live.tier.pid
        assert pid is not None and _alive(pid)
    finally:
        assert window.close()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the worker process outlived its window"
    assert window.live.tier.pid is None
