"""An architecture JSON in the window with its live tier: without weights the Activations panel says what it
needs instead of computing random numbers; File > Open Weights… gives them, and the worker computes with exactly
those weights (what the same model saved whole computes)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.resources import resources_dir
from tests.support.generations import GENERATIONS
from tests.support.windows import live_main_window, wait_with_events

START_S = 90.0  # a worker start imports TensorFlow: seconds, more on a busy machine
DRAW_MS = 20_000
ANSWER_MS = 60_000
BRICK = (resources_dir() / "images" / "brick.png").resolve()
WRITER = GENERATIONS / "keras_3.0.5"


@pytest.fixture(scope="module")
def live_window(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with live_main_window(tmp_path_factory.mktemp("json_weights"), START_S) as window:
        yield window


def test_open_weights_lets_the_live_tier_compute_an_architecture_json(qtbot, live_window, tmp_path, keras_module):
    from explorer.runtime.extraction import extract
    from explorer.runtime.loading import open_model

    window, alone = live_window, tmp_path / "architecture.json"
    shutil.copy(WRITER / "nested_arch.json", alone)
    with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS):
        window.open_model(alone)
    window.open_image(BRICK)
    panel = window.activations
    qtbot.waitUntil(lambda: bool(window.session.inputs), timeout=DRAW_MS)
    window.session.select("shared_dense")
    assert "no weights beside it" in panel.view.message.text()
    assert "File > Open Weights…" in panel.view.message.text()
    assert "shared_dense" in panel.title.text()  # the selected layer, with the reason it cannot be computed
    assert not window.session.live_ready  # nothing was sent to the worker

    with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_MS):
        window.session.open_weights(WRITER / "nested_arch.weights.h5")
    window.open_image(BRICK)
    wait_with_events(lambda: window.session.live_ready and bool(window.session.inputs), START_S,
                     "the JSON with its weights loaded in the live tier")
    with qtbot.waitSignal(panel.shown, timeout=ANSWER_MS, check_params_cb=lambda shown: shown == "block/block_relu"):
        window.session.select("block/block_relu")
    shown = np.array(panel.view.array)

    (expected,) = extract(open_model(WRITER / "nested.keras"), "block/block_relu", (0, 0),
                          {"image": window.session.inputs["image"].array})
    assert shown.shape == expected.shape
    assert float(np.max(np.abs(shown - expected))) <= 1e-5 * max(1.0, float(np.max(np.abs(expected))))
    assert Path(window.session.graph.weights_file) == WRITER / "nested_arch.weights.h5"
