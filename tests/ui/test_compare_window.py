"""Comparing in the window, end to end: a real MainWindow with its live-tier worker on the bundled demo model.
Two images (A/B view), the graph coloured by per-layer numbers (legend, summary column), a second checkpoint
(File > Compare With…) and layer statistics over a folder (the real ``stats`` command). What the window shows is
compared with the worker's own answers and with the same computations done here; the only stand-ins are the
user's answers to dialogs.

One window (one worker) serves the module; each test first makes sure the demo, brick.png and no second image
or checkpoint are open."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDialog, QLabel

from explorer.live.protocol import Activation, LayerMeasure
from explorer.model.compare import architecture_mismatches, refusal
from explorer.model.files import load_graph
from explorer.resources import demo_model, resources_dir
from explorer.text import BANNER, one_line
from explorer.ui.activations.ab_compare import DIFFERENCE, A, B
from explorer.ui.activations.feature_view import GRID
from explorer.ui.canvas.number_colours import NumberScale
from explorer.ui.command_job import DONE, STOPPED
from explorer.ui.folder_stats import FOLDER_DEAD, FOLDER_MEAN, FolderStatsDialog
from explorer.ui.layer_values import number_text
from explorer.ui.panels.summary_table import NUMBER, PATH_ROLE, SORT_ROLE
from tests.support.flagged import flagged_demo
from tests.support.windows import live_main_window, wait_with_events

DEMO = demo_model().resolve()
IMAGES = resources_dir() / "images"
BRICK, GRASS = (IMAGES / "brick.png").resolve(), (IMAGES / "grass.png").resolve()
START_S = 90.0  # a worker start imports TensorFlow: seconds, more on a busy machine
ANSWER_MS = 60_000
DRAW_MS = 15_000
RUN_MS = 240_000  # the stats command starts TensorFlow in its child
SCALED = "res_stage2/res_stage2_block_b/res_stage2_block_b_conv"  # the layer the changed checkpoint scales

pytestmark = pytest.mark.skipif(not DEMO.exists() or not BRICK.exists(), reason="the bundled demo is missing")


@pytest.fixture(scope="module")
def live_window(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with live_main_window(tmp_path_factory.mktemp("compare"), START_S) as window:
        yield window


@pytest.fixture
def demo(qtbot, live_window) -> Any:
    """The window on the demo with brick.png as A, no B, no other checkpoint, coloured by category."""
    window = live_window
    session = window.session
    if session.path != DEMO:
        with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS,
                              check_params_cb=lambda *_: session.path == DEMO):
            window.open_model(DEMO)
    if session.image is None or Path(session.image.source).resolve() != BRICK:
        window.open_image(BRICK)
    session.set_image_b(None)
    session.set_other(None)
    session.set_colour_by(None)
    if session.expanded:
        with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS):
            session.set_all_expanded(False)
    wait_with_events(lambda: session.live_ready and bool(session.inputs), START_S, "the demo loaded in the live tier")
    return window


@pytest.fixture(scope="module")
def reference(keras_module) -> Any:
    """The demo loaded here, for the per-layer numbers computed in this process."""
    from explorer.runtime.loading import open_model

    return open_model(DEMO).graph


def _choose(qtbot, window: Any, measure: str | None) -> Any:
    """Pick ``measure`` in the Colour by box as the user does; returns the numbers shown once they are in."""
    combo = window.colour_by.combo
    index = combo.findData(measure)
    assert index >= 0 and combo.model().item(index).isEnabled(), f"{measure} is not offered"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    if measure is not None:
        qtbot.waitUntil(lambda: window.session.numbers is not None and window.session.numbers.measure == measure
                        and not window.numbers.pending(), timeout=ANSWER_MS)
    return window.session.numbers


def _fill(window: Any, path: str) -> QColor | None:
    return window.graph_view.items_by_path[path].fill


def _luminance(colour: QColor) -> float:
    return 0.2126 * colour.redF() + 0.7152 * colour.greenF() + 0.0722 * colour.blueF()


def _worker_output(qtbot, window: Any, layer: str, site: tuple[int, ...], inputs: dict) -> np.ndarray:
    """The layer computed by the window's worker on ``inputs``, asked directly."""
    answers: list[Activation] = []
    window.live.activation_ready.connect(answers.append)
    try:
        request = window.live.compute(layer, site, inputs)
        qtbot.waitUntil(lambda: any(a.request == request for a in answers), timeout=ANSWER_MS)
    finally:
        window.live.activation_ready.disconnect(answers.append)
    return next(a for a in answers if a.request == request).outputs[0]


# --------------------------------------------------------------------------- two inputs


def test_the_ab_view_shows_b_and_a_minus_b_of_the_workers_outputs(qtbot, demo, reference):
    from explorer.runtime.layer_stats import ab_similarity

    window, panel, session = demo, demo.activations, demo.session
    layer = "res_stage1/res_stage1_relu"
    with qtbot.waitSignal(panel.shown, timeout=ANSWER_MS, check_params_cb=lambda shown: shown == layer):
        session.select(layer)
    assert panel.compare.bar.isHidden() and panel.compare.ranking.isHidden()  # nothing to compare with yet
    assert session.set_image_b(GRASS)
    assert "grass.png" in panel.inputs.image_b_name.text() and panel.inputs.preview_b.isVisible()
    qtbot.waitUntil(lambda: bool(panel.outputs_b), timeout=ANSWER_MS)
    assert panel.compare.bar.isVisible() and panel.compare.ranking.isVisible()
    site = session.call_site
    a = _worker_output(qtbot, window, layer, site, session.input_arrays())
    b = _worker_output(qtbot, window, layer, site, session.input_arrays_b())
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(panel.outputs[0], a)
    np.testing.assert_array_equal(panel.outputs_b[0], b)

    qtbot.mouseClick(panel.compare.bar.buttons[B], Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(panel.view.array, b)
    qtbot.mouseClick(panel.compare.bar.buttons[DIFFERENCE], Qt.MouseButton.LeftButton)
    assert panel.view.pages.currentIndex() == GRID and panel.view.difference
    np.testing.assert_array_equal(panel.view.array, a - b)

    # The channels ranked by mean |A-B|, in the list and in the grid.
    expected = list(np.argsort(-np.abs(a.astype(np.float64) - b).mean(axis=(0, 1)), kind="stable"))
    assert panel.compare.ranking.ranked() == expected
    assert list(panel.view.current_mosaic.channels) == expected
    panel.compare.ranking.cellClicked.emit(3, 0)  # a row opens its channel
    assert panel.view.channel == expected[3]

    # The cosine similarity of the whole output, as the runtime computes it here.
    qtbot.waitUntil(lambda: panel.compare.bar.similarity_value is not None, timeout=ANSWER_MS)
    here = ab_similarity(reference, session.inputs["image"].array, session.inputs_b["image"].array)
    assert panel.compare.bar.similarity_value == pytest.approx(here[(layer, tuple(site))], abs=1e-5)
    assert f"{panel.compare.bar.similarity_value:.4f}" in panel.compare.bar.similarity.text()

    # Closing B goes back to A alone.
    qtbot.mouseClick(panel.inputs.close_b, Qt.MouseButton.LeftButton)
    assert session.image_b is None and not session.inputs_b
    assert panel.compare.bar.isHidden() and panel.compare.bar.mode() == A
    np.testing.assert_array_equal(panel.view.array, a)


# --------------------------------------------------------------------------- colouring the graph


def test_colour_by_activation_mean_colours_the_boxes_in_the_order_of_the_numbers(qtbot, demo, reference):
    from explorer.runtime.layer_stats import layer_statistics

    window, session = demo, demo.session
    assert not window.colour_by.legend.isVisible()
    assert window.summary.table.isColumnHidden(NUMBER)  # no number column without numbers
    numbers = _choose(qtbot, window, LayerMeasure.MEAN)
    here = layer_statistics(reference, session.inputs["image"].array)
    assert numbers.values.keys() == here.keys()
    assert all(numbers.values[key] == pytest.approx(stats.mean, rel=1e-4, abs=1e-6) for key, stats in here.items())

    low, high = numbers.span()
    scale = NumberScale(low, high)
    small, large = "rescale", "branch_maxpool"
    value_small, value_large = numbers.value(small, (0,)), numbers.value(large, (0,))
    assert value_small < value_large
    fill_small, fill_large = _fill(window, small), _fill(window, large)
    assert fill_small != fill_large
    assert fill_small == scale.colour(value_small) and fill_large == scale.colour(value_large)
    assert _luminance(fill_small) < _luminance(fill_large)  # viridis brightens with the value
    assert _fill(window, "image") is None  # an input has no number: drawn neutral
    assert "activation mean: –" in window.graph_view.items_by_path["image"].toolTip()
    assert f"activation mean: {number_text(value_large)}" in window.graph_view.items_by_path[large].toolTip()
    # A collapsed nested model shows its own output's number.
    assert numbers.value("stem", (0,)) == numbers.value("stem/stem_relu", (0, 0))
    assert _fill(window, "stem") == scale.colour(numbers.value("stem", (0,)))

    bar = window.colour_by
    assert bar.legend.isVisible() and bar.measure.text() == LayerMeasure.MEAN
    assert (bar.low.text(), bar.high.text()) == (number_text(low), number_text(high))
    assert not window.statusBar().findChild(QLabel, "categoryLegend").isVisible()  # the categories are not drawn

    # A shared layer shows the selected call's number.
    session.select("shared_mixer")
    assert _fill(window, "shared_mixer") == scale.colour(numbers.value("shared_mixer", (0,)))
    session.set_call_site((1,))
    assert numbers.value("shared_mixer", (1,)) != numbers.value("shared_mixer", (0,))
    assert _fill(window, "shared_mixer") == scale.colour(numbers.value("shared_mixer", (1,)))

    # Layers inside expanded nested models are coloured too.
    with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS):
        session.set_all_expanded(True)
    assert _fill(window, "stem/stem_conv") == scale.colour(numbers.value("stem/stem_conv", (0, 0)))
    assert _fill(window, "stem/input_layer") is None

    # Another input: the numbers are computed again, for it.
    window.open_image(GRASS)
    qtbot.waitUntil(lambda: session.numbers.values is not numbers.values, timeout=ANSWER_MS)
    again = layer_statistics(reference, session.inputs["image"].array)
    assert session.numbers.value(large, (0,)) == pytest.approx(again[(large, (0,))].mean, rel=1e-4)
    assert session.numbers.value(large, (0,)) != pytest.approx(value_large, rel=1e-3)

    # "none" restores the categories.
    _choose(qtbot, window, None)
    assert session.numbers is None
    assert all(item.fill == item.colour for item in window.graph_view.items_by_path.values())
    assert not bar.legend.isVisible() and window.summary.table.isColumnHidden(NUMBER)


def test_the_summary_column_sorts_by_the_number(qtbot, demo):
    window = demo
    numbers = _choose(qtbot, window, LayerMeasure.DEAD)
    summary = window.summary
    assert not summary.table.isColumnHidden(NUMBER)
    assert summary.model.headerData(NUMBER, Qt.Orientation.Horizontal) == "Dead channels"
    summary.table.sortByColumn(NUMBER, Qt.SortOrder.DescendingOrder)
    try:
        proxy = summary.proxy
        rows = [(proxy.index(r, 0).data(PATH_ROLE), proxy.index(r, NUMBER).data(SORT_ROLE))
                for r in range(proxy.rowCount())]
        keys = [key for _path, key in rows]
        assert keys == sorted(keys, reverse=True)  # numerically, not as text
        session = window.session
        shown = {path: numbers.value(path, session.shown_call_site(path)) for path, _key in rows}
        assert [path for path, _key in rows if shown[path] is None] == [path for path, key in rows
                                                                         if key == -np.inf]
        top = rows[0][0]
        assert proxy.index(0, NUMBER).data() == number_text(shown[top])
    finally:
        summary.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)


# --------------------------------------------------------------------------- a second checkpoint


def _answer_open(monkeypatch, path: Path) -> None:
    monkeypatch.setattr("explorer.ui.compare_with.QFileDialog.getOpenFileName", lambda *_args: (str(path), ""))


def test_compare_with_another_architecture_is_refused_at_once(qtbot, demo, models, monkeypatch):
    window, session = demo, demo.session
    _answer_open(monkeypatch, models.small.path)
    with qtbot.waitSignal(session.failed, timeout=DRAW_MS) as failed:
        window.actions_by_name["compare_with"].trigger()
    first, second = load_graph(DEMO), load_graph(models.small.path)
    assert failed.args == [one_line(refusal(first, second, architecture_mismatches(first, second)), BANNER)]
    assert "not one architecture" in window.banner.text()
    assert session.other_path is None
    combo = window.colour_by.combo
    assert not combo.model().item(combo.findData(LayerMeasure.WEIGHT_CHANGE)).isEnabled()


@pytest.fixture(scope="module")
def scaled_checkpoint(keras_module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo with one layer's kernel tripled: the same architecture, one layer moved."""
    model = keras_module.saving.load_model(DEMO, compile=False)
    layer = model
    for part in SCALED.split("/"):
        layer = layer.get_layer(part)
    layer.kernel.assign(layer.kernel * 3.0)
    path = tmp_path_factory.mktemp("checkpoints") / "scaled.keras"
    model.save(path)
    return path


def test_checkpoint_weight_change_is_largest_on_the_changed_layer(qtbot, demo, monkeypatch, scaled_checkpoint):
    window, session = demo, demo.session
    _answer_open(monkeypatch, scaled_checkpoint)
    with qtbot.waitSignal(session.other_changed, timeout=DRAW_MS):
        window.actions_by_name["compare_with"].trigger()
    assert session.other_path == scaled_checkpoint.resolve()
    changed = _choose(qtbot, window, LayerMeasure.WEIGHT_CHANGE)
    largest = max(changed.values, key=changed.values.get)
    assert largest == (SCALED, ())
    assert changed.values[largest] == pytest.approx(2.0, rel=1e-6)  # ||3K - K|| / ||K||
    assert all(value == 0.0 for key, value in changed.values.items() if key != largest)
    assert _fill(window, "res_stage2") is None  # one number per layer: a nested model has none of its own
    with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS):
        session.set_all_expanded(True)
    scale = NumberScale(*changed.span())
    assert _fill(window, SCALED) == scale.colour(2.0) != _fill(window, "stem/stem_conv")

    moved = _choose(qtbot, window, LayerMeasure.CHECKPOINT)  # the activations, side by side
    assert moved.value("stem/stem_conv", (0, 0)) == 0.0  # before the changed layer: nothing moved
    assert moved.value(SCALED, (0, 0, 0)) > 0.0


def test_a_flagged_checkpoint_needs_the_users_trust(qtbot, demo, monkeypatch, tmp_path):
    window, session = demo, demo.session
    flagged = flagged_demo(tmp_path / "flagged.keras")
    asked: list[str] = []
    answer = {"trust": False}

    def confirm(_parent, name, findings, extra=""):
        asked.append(name)
        assert findings
        return answer["trust"]

    monkeypatch.setattr("explorer.ui.compare_with.confirm_trust", confirm)
    _answer_open(monkeypatch, flagged)
    with qtbot.waitSignal(session.message, timeout=DRAW_MS,
                          check_params_cb=lambda text: text.startswith("Not compared")):
        window.actions_by_name["compare_with"].trigger()
    assert asked == ["flagged.keras"] and session.other_path is None
    answer["trust"] = True
    with qtbot.waitSignal(session.other_changed, timeout=DRAW_MS):
        window.actions_by_name["compare_with"].trigger()
    assert session.other_path == flagged.resolve() and session.trust_store.is_trusted(flagged)
    session.set_other(None)
    with qtbot.waitSignal(session.other_changed, timeout=DRAW_MS):  # remembered: not asked again
        window.actions_by_name["compare_with"].trigger()
    assert asked == ["flagged.keras"] * 2


# --------------------------------------------------------------------------- statistics over a folder


@pytest.fixture
def answer_stats(monkeypatch) -> Callable[..., list[str]]:
    """The user's answers: the dialog's fields, then which folder number to colour by; returns what was offered."""

    def give(colour_by: str | None, **fields: Any) -> list[str]:
        def exec_(dialog: FolderStatsDialog) -> int:
            for name, value in fields.items():
                getattr(dialog, name).setText(str(value))
            assert dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled(), dialog.hint.text()
            return QDialog.DialogCode.Accepted

        offered: list[str] = []
        monkeypatch.setattr(FolderStatsDialog, "exec", exec_)
        monkeypatch.setattr("explorer.ui.folder_stats.choose_folder_measure",
                            lambda _parent, text: offered.append(text) or colour_by)
        return offered

    return give


def test_folder_statistics_are_written_and_colour_the_graph(qtbot, demo, tmp_path, answer_stats):
    pq = pytest.importorskip("pyarrow.parquet")
    window, session = demo, demo.session
    folder = tmp_path / "images"
    folder.mkdir()
    for source in IMAGES.glob("*.png"):
        shutil.copy(source, folder)
    out = tmp_path / "stats.parquet"
    offered = answer_stats(FOLDER_DEAD, images=folder, output=out)
    window.actions_by_name["stats_on_folder"].trigger()
    job = window.folder_stats.job
    assert job.running and job.progress.isVisible()
    assert "--preprocess" in job.process.arguments()  # the Activations panel's preset
    with qtbot.waitSignal(job.finished, timeout=RUN_MS) as finished:
        pass
    outcome, line = finished.args
    assert outcome == DONE, line
    qtbot.waitUntil(lambda: session.numbers is not None and session.numbers.measure == FOLDER_DEAD,
                    timeout=DRAW_MS)
    assert offered == [line] and str(out) in line

    table = pq.read_table(out).to_pylist()
    dead: dict[tuple, list[float]] = {}
    for row in table:
        dead.setdefault((row["layer"], tuple(row["call_site"])), []).append(row["dead_fraction"])
    assert {row["images"] for row in table} == {len(list(IMAGES.glob("*.png")))}
    numbers = session.numbers
    assert numbers.values.keys() == dead.keys()
    assert all(numbers.values[key] == pytest.approx(float(np.mean(values))) for key, values in dead.items())
    scale = NumberScale(*numbers.span())
    assert _fill(window, "global_pool") == scale.colour(numbers.value("global_pool", (0,)))
    assert window.colour_by.measure.text() == FOLDER_DEAD

    means = _choose(qtbot, window, FOLDER_MEAN)  # the other folder number, from the box
    assert means.value("predictions", (0,)) == pytest.approx(1 / 3, abs=1e-5)  # softmax: the mean of 3 is 1/3


def test_stopped_folder_statistics_write_nothing(qtbot, demo, tmp_path, answer_stats):
    out = tmp_path / "stats.parquet"
    answer_stats(None, images=IMAGES, output=out)
    window = demo
    window.actions_by_name["stats_on_folder"].trigger()
    job = window.folder_stats.job
    with qtbot.waitSignal(job.finished, timeout=RUN_MS) as finished:
        job.cancel()
    outcome, line = finished.args
    assert outcome == STOPPED and f"{out} was not written" in line
    assert not out.exists() and window.session.numbers is None
