"""The Why dock with real parts: a real Session on the bundled demo model and a real LiveClient with its worker
process (real TensorFlow in a child process). Every map the panel shows is compared with
explorer.runtime.attribution computed in this process on the same input array.

One client (and so one worker) serves the module; each test opens the demo in a session of its own, which loads
it into the worker as the Activations panel does when the graph is drawn.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from explorer.inputs.images import Preprocessing
from explorer.inputs.sources import IMAGE, RANDOM, InputSource, PreparedInput, baseline_input, prepare_input
from explorer.live.protocol import Loaded
from explorer.model.files import load_graph
from explorer.model.graph import InputSpec
from explorer.resources import demo_model, resources_dir
from explorer.ui.activations.feature_export import attribution_image
from explorer.ui.live_client import LiveClient
from explorer.ui.session import Session
from explorer.ui.settings import Settings
from explorer.ui.why.panel import REFRESH_MS, WhyPanel

DEMO = demo_model()
BRICK = (resources_dir() / "images" / "brick.png").resolve()
SPEC = InputSpec("image", (64, 64, 3), "float32")
PREPROCESSING = Preprocessing("none")  # the demo rescales inside (the preset its Activations panel suggests)
ANSWER_MS = 90000  # the first answer waits for the worker to import TensorFlow and load the model
ATOL = 1e-6
QUIET_MS = 5 * REFRESH_MS  # long enough for a request the panel would make to have been made

pytestmark = pytest.mark.skipif(not DEMO.exists() or not BRICK.exists(), reason="the bundled demo is missing")


@pytest.fixture(scope="module")
def client(qapp) -> Iterator[LiveClient]:
    live = LiveClient()
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def demo_keras(keras_module) -> Any:
    """The demo as the worker holds it (its flat graph), loaded in this process for the references."""
    from explorer.runtime.loading import open_model

    return open_model(DEMO).graph


def _reference(model: Any, x: np.ndarray, method: str, class_index: int, layer: str | None = None,
               call_site: tuple[int, ...] | None = None, baseline: np.ndarray | None = None, steps: int = 64) -> Any:
    """The attribution computed here, as the worker computes it (explorer.runtime.layer_numbers)."""
    from explorer.runtime.attribution import Scorer, Settings, explain

    return explain(Scorer(model, layer, call_site), x, method, class_index, baseline, Settings(steps=steps))


@pytest.fixture
def session(qtbot, tmp_path: Path, client: LiveClient) -> Iterator[Session]:
    """A session whose file goes to the worker once drawn, and is ready once loaded: what the Activations panel
    does in the window."""
    made = Session(Settings(QSettings(str(tmp_path / "explorer.ini"), QSettings.Format.IniFormat)))
    load: dict[str, int] = {}

    def send() -> None:
        load["request"] = client.load(str(made.path))

    def loaded(answer: Loaded) -> None:
        if answer.request == load.get("request"):
            made.set_live_ready()

    made.live_load_requested.connect(send)
    client.model_loaded.connect(loaded)
    yield made
    client.model_loaded.disconnect(loaded)  # the client outlives this session
    made.close()


@pytest.fixture
def make_panel(qtbot, session: Session, client: LiveClient) -> Callable[..., WhyPanel]:
    def make(show: bool = True) -> WhyPanel:
        panel = WhyPanel(session, client, lambda: PREPROCESSING)
        qtbot.addWidget(panel)
        panel.resize(640, 640)
        if show:
            panel.show()
            qtbot.waitExposed(panel)
        return panel

    return make


def _open(session: Session, source: str = IMAGE, load: bool = True) -> np.ndarray:
    """The demo opened with brick.png fed (prepared as the Activations panel prepares it); returns the array."""
    session.set_file(DEMO, load_graph(DEMO))
    assert session.set_image(BRICK)
    prepared = prepare_input(SPEC, InputSource(source), session.image, PREPROCESSING)
    session.set_inputs({SPEC.name: prepared})
    if load:
        session.drawn()  # the graph is on screen: the model goes to the worker
    return prepared.array


def _answer(qtbot, panel: WhyPanel, change: Callable[[], None] | None = None) -> Any:
    """The next map the panel shows (after ``change``, if given)."""
    with qtbot.waitSignal(panel.shown, timeout=ANSWER_MS):
        if change is not None:
            change()
    assert panel.result is not None
    return panel.result


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_gradcam_on_the_selected_layer_equals_attribution_here(qtbot, session, make_panel, demo_keras):
    panel = make_panel()
    x = _open(session)
    session.select("res_stage2")
    shown = _answer(qtbot, panel)
    assert shown.method == "gradcam" and shown.layer == "res_stage2"
    expected = _reference(demo_keras, x, "gradcam", shown.class_index, "res_stage2")
    assert shown.map.shape == expected.map.shape == (16, 16)
    np.testing.assert_allclose(shown.map, expected.map, atol=ATOL)
    picture = session.inputs[SPEC.name].picture
    np.testing.assert_array_equal(_pixels(panel.image), _pixels(attribution_image(picture, shown.map, 0.5)))
    assert panel.caption.text().startswith("Grad-CAM on res_stage2 · class ")
    assert panel.low.text() == f"{shown.map.min():.3g}" and panel.high.text() == f"{shown.map.max():.3g}"

    # The class list: top-1, then the classes by decreasing score, named from demo_model_classes.json.
    names = ["brick", "grass", "gravel"]
    order = np.argsort(shown.scores)[::-1]
    items = [panel.class_choice.itemText(i) for i in range(panel.class_choice.count())]
    assert items == ["top-1", *(f"{names[i]} ({shown.scores[i]:.3g})" for i in order)]
    assert shown.class_index == order[0]

    second = int(order[1])
    changed = _answer(qtbot, panel, lambda: panel.class_choice.setCurrentIndex(2))
    assert changed.class_index == second and changed.request > shown.request
    assert not np.allclose(changed.map, shown.map)
    np.testing.assert_allclose(changed.map, _reference(demo_keras, x, "gradcam", second, "res_stage2").map,
                               atol=ATOL)
    assert panel.class_choice.currentText().startswith(f"{names[second]} (")
    assert f"class {names[second]}" in panel.caption.text()


def test_gradcam_follows_the_call_site_of_a_shared_layer(qtbot, session, make_panel, demo_keras):
    panel = make_panel()
    x = _open(session)
    session.select("shared_mixer")
    first = _answer(qtbot, panel)
    second = _answer(qtbot, panel, lambda: session.set_call_site((1,)))
    assert first.layer == second.layer == "shared_mixer"
    for answer, site in ((first, (0,)), (second, (1,))):
        expected = _reference(demo_keras, x, "gradcam", answer.class_index, "shared_mixer", site)
        np.testing.assert_allclose(answer.map, expected.map, atol=ATOL)
    assert not np.allclose(first.map, second.map)


def test_a_layer_without_a_spatial_output_falls_back_to_the_default_and_says_so(qtbot, session, make_panel):
    panel = make_panel()
    _open(session)
    session.select("global_pool")
    shown = _answer(qtbot, panel)
    assert shown.layer == "merge_branches"  # the demo's last layer with a spatial output
    caption = panel.caption.text()
    assert caption.startswith("Grad-CAM on merge_branches")
    assert "global_pool has no spatial output" in caption
    session.select("head_dropout")  # the same default layer, so the same map: not asked again, another note
    qtbot.waitUntil(lambda: "head_dropout has no spatial output" in panel.caption.text())
    assert panel.latest_request == shown.request and panel.result is shown
    # The gradient methods ignore the layer: choosing another layer asks nothing.
    saliency = _answer(qtbot, panel, lambda: panel.method.setCurrentIndex(panel.method.findData("saliency")))
    assert saliency.layer is None and saliency.map.shape == (64, 64)
    session.select("res_stage2")
    qtbot.wait(QUIET_MS)
    assert panel.latest_request == saliency.request


def test_integrated_gradients_shows_completeness(qtbot, session, make_panel, demo_keras):
    panel = make_panel()
    x = _open(session)
    shown = _answer(qtbot, panel)
    assert not panel.ig_options.isVisible()

    def integrated() -> None:
        panel.steps.setValue(32)
        panel.method.setCurrentIndex(panel.method.findData("ig"))

    result = _answer(qtbot, panel, integrated)
    assert panel.ig_options.isVisible() and result.method == "ig" and result.class_index == shown.class_index
    black = baseline_input(SPEC, session.inputs[SPEC.name], PREPROCESSING, "black")
    expected = _reference(demo_keras, x, "ig", result.class_index, baseline=black, steps=32)
    np.testing.assert_allclose(result.map, expected.map, atol=1e-5)
    total, difference = float(result.map.sum()), result.score - result.baseline_score
    assert f"attributions sum {total:.4g}, score difference {difference:.4g}" in panel.caption.text()
    assert abs(total - difference) < 0.05 * abs(difference)

    blurred = _answer(qtbot, panel, lambda: panel.baseline.setCurrentText("blurred"))
    expected = _reference(demo_keras, x, "ig", result.class_index, steps=32,
                          baseline=baseline_input(SPEC, session.inputs[SPEC.name], PREPROCESSING, "blurred"))
    np.testing.assert_allclose(blurred.map, expected.map, atol=1e-5)
    assert blurred.baseline_score != result.baseline_score


def test_the_opacity_slider_redraws_without_asking_again(qtbot, session, make_panel):
    panel = make_panel()
    _open(session)
    shown = _answer(qtbot, panel)
    before = _pixels(panel.image)
    panel.opacity.setValue(90)
    after = _pixels(panel.image)
    assert not np.array_equal(before, after)
    picture = session.inputs[SPEC.name].picture
    np.testing.assert_array_equal(after, _pixels(attribution_image(picture, shown.map, 0.9)))
    qtbot.wait(QUIET_MS)
    assert panel.latest_request == shown.request and panel.result is shown


def test_export_png_and_npy_write_the_screen_and_the_map(qtbot, session, make_panel, tmp_path, monkeypatch):
    panel = make_panel()
    _open(session)
    shown = _answer(qtbot, panel)
    png = panel.export_png(str(tmp_path / "why.png"))
    with Image.open(png) as written:
        np.testing.assert_array_equal(_pixels(written), _pixels(panel.image))
    # The button asks where (the dialog answered here); a name without the suffix is written as named.
    target = tmp_path / "raw_map"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_args: (str(target), ""))
    panel.export_npy_button.click()
    np.testing.assert_array_equal(np.load(target), shown.map)


def test_a_hidden_panel_asks_nothing_until_shown(qtbot, session, make_panel):
    panel = make_panel(show=False)
    with qtbot.waitSignal(session.model_ready, timeout=ANSWER_MS):
        _open(session)
    panel.method.setCurrentIndex(panel.method.findData("saliency"))
    session.select("res_stage2")
    qtbot.wait(QUIET_MS)
    assert panel.latest_request == 0 and panel.result is None
    shown = _answer(qtbot, panel, panel.show)
    assert shown.method == "saliency"


def test_an_array_input_shows_the_map_alone(qtbot, session, make_panel, demo_keras):
    panel = make_panel()
    panel.method.setCurrentIndex(panel.method.findData("saliency"))
    x = _open(session, source=RANDOM)
    assert session.inputs[SPEC.name].picture is None
    shown = _answer(qtbot, panel)
    np.testing.assert_allclose(shown.map, _reference(demo_keras, x, "saliency", shown.class_index).map, atol=ATOL)
    np.testing.assert_array_equal(_pixels(panel.image), _pixels(attribution_image(None, shown.map)))
    assert "the input is not a picture: the map is shown alone" in panel.caption.text()
    # A blurred baseline needs a picture: said in the panel, nothing asked.
    panel.method.setCurrentIndex(panel.method.findData("ig"))
    panel.baseline.setCurrentText("blurred")
    qtbot.waitUntil(lambda: panel.result is None)
    assert panel.view.text() == "a blurred baseline needs an image input" and not panel.export_png_button.isEnabled()
    assert panel.latest_request == shown.request


def test_a_worker_failure_shows_as_one_line(qtbot, session, make_panel):
    panel = make_panel()
    _open(session)
    _answer(qtbot, panel)
    wrong = PreparedInput(np.zeros((32, 32, 3), np.float32), None, None)  # the demo takes 64 x 64
    with qtbot.waitSignal(panel.client.request_failed, timeout=ANSWER_MS,
                          check_params_cb=lambda request, _message: request == panel.latest_request):
        session.set_inputs({SPEC.name: wrong})
    assert panel.view.text().startswith("Cannot compute the map: ")
    assert "\n" not in panel.view.text() and panel.result is None and panel.image is None
    assert not panel.export_npy_button.isEnabled()


def test_a_model_with_two_inputs_gets_a_message(qtbot, session, make_panel, keras_module, tmp_path):
    from tests.support.models import build_functional_multi_io

    path = tmp_path / "multi_io.keras"
    build_functional_multi_io().save(path)
    panel = make_panel()
    session.set_file(path, load_graph(path))
    assert session.set_image(BRICK)
    session.set_inputs({"image": prepare_input(InputSpec("image", (32, 32, 3), "float32"), InputSource(IMAGE),
                                               session.image, PREPROCESSING),
                        "meta": PreparedInput(np.zeros(7, np.float32), None, None)})
    qtbot.waitUntil(lambda: panel.view.text().startswith("Attribution maps need a model with one input"))
    assert "has 2 (image, meta)" in panel.view.text() and panel.latest_request == 0


def test_in_the_window_the_why_tab_asks_only_once_raised(qtbot, tmp_path):
    """The Why dock sits behind the Activations tab: it costs nothing until the user raises it."""
    from explorer.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "explorer.ini"), QSettings.Format.IniFormat), start_live=True)
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitExposed(window)
        with qtbot.waitSignal(window.graph_drawn, timeout=20_000):
            window.open_model(DEMO)
        assert window.session.set_image(BRICK)
        with qtbot.waitSignal(window.activations.shown, timeout=ANSWER_MS):
            window.session.select("merge_branches")
        assert window.why.latest_request == 0
        qtbot.wait(QUIET_MS)
        assert window.why.latest_request == 0  # still behind the Activations tab
        with qtbot.waitSignal(window.why.shown, timeout=ANSWER_MS):
            window.why_dock.raise_()
        assert window.why.latest_request > 0 and window.why.image is not None
    finally:
        window.close()
