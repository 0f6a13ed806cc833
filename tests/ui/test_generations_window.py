"""The window on every file the older Keras generations wrote: drawn, with its provenance in the inspector and
the status bar, what Keras would refuse marked on the node, and File > Open Weights… for an architecture JSON."""

from __future__ import annotations

import shutil

import pytest

from explorer.model.origin import origin_text
from tests.support.generations import GENERATIONS, KERAS_FILES, MANIFEST


def _overview(window) -> dict[str, str]:
    model = window.inspector.topLevelItem(0)
    return {model.child(i).text(0): model.child(i).text(1) for i in range(model.childCount())}


def test_every_generation_opens_drawn_with_its_provenance(make_window, open_and_wait):
    window = make_window()
    for name in sorted(KERAS_FILES):
        open_and_wait(window, GENERATIONS / name)
        graph = window.session.graph
        assert graph.totals[0] == MANIFEST[name]["count_params"], name
        top_level = {path for path in MANIFEST[name]["layers"] if "/" not in path}
        assert top_level <= set(window.graph_view.items_by_path), name
        assert _overview(window)["saved"] == origin_text(graph).removeprefix("saved "), name
        assert f", {origin_text(graph)} — " in window.statusBar().currentMessage(), name
        marked = {path for path, item in window.graph_view.items_by_path.items() if item.problem}
        assert marked == {p.layer for p in graph.problems}, name
        assert not window.banner.isVisible(), name


def test_a_keras3_h5_keras_cannot_reload_is_marked_and_noticed(make_window, open_and_wait):
    window = make_window()
    open_and_wait(window, GENERATIONS / "keras_3.0.5" / "nested.h5")
    assert window.graph_view.items_by_path["true_divide"].problem
    assert "Keras would refuse" in window.notice.text.text() and window.notice.isVisible()
    assert window.findings_dock.isVisible()
    assert window.findings.item(0).text().startswith("Keras would refuse: layer 'true_divide'")


def test_open_weights_gives_an_architecture_json_its_weights(make_window, open_and_wait, tmp_path, qtbot):
    alone = tmp_path / "architecture.json"
    shutil.copy(GENERATIONS / "keras_3.0.5" / "nested_arch.json", alone)
    window = make_window()
    open_and_wait(window, alone)
    assert window.session.graph.totals[0] == 0
    with qtbot.waitSignal(window.graph_drawn, timeout=20_000):
        window.session.open_weights(GENERATIONS / "keras_3.0.5" / "nested_arch.weights.h5")
    assert window.session.graph.totals[0] == MANIFEST["keras_3.0.5/nested_arch.json"]["count_params"]
    assert "nested_arch.weights.h5" in _overview(window)["saved"]


@pytest.mark.parametrize("opened", ["keras_3.0.5/nested.keras", "tf_keras_2.21/nested_arch.h5"])
def test_open_weights_is_only_for_an_architecture_json(make_window, open_and_wait, opened, qtbot):
    window = make_window()
    open_and_wait(window, GENERATIONS / opened)
    with qtbot.waitSignal(window.session.failed, timeout=5_000) as failed:
        window.session.open_weights(GENERATIONS / "keras_3.0.5" / "nested_arch.weights.h5")
    assert "open the JSON first" in failed.args[0]
    assert window.session.path == (GENERATIONS / opened).resolve()


def test_a_savedmodel_folder_opens_in_the_window(make_window, open_and_wait):
    window = make_window()
    folder = GENERATIONS / "tf_keras_2.21" / "nested_savedmodel"
    open_and_wait(window, folder)
    assert window.windowTitle().startswith("nested_savedmodel")
    assert "SavedModel with Keras 2 metadata" in _overview(window)["saved"]
