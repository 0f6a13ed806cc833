"""GUI tests: real .keras files saved by real Keras, real Graphviz, real widgets driven by pytest-qt.

The models are built once per session; what the tests compare against (layer names, parameter counts)
is read from the live Keras objects (``tests.support.reference.model_ref``), not written by hand.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from explorer.resources import demo_model
from tests.support.models import build_small_sequential, build_ui_model
from tests.support.reference import ModelRef, model_ref

DRAW_TIMEOUT_MS = 10000


@dataclass(frozen=True)
class Models:
    ui: ModelRef
    small: ModelRef  # a second, different model
    demo: ModelRef | None  # the bundled demo model, when the checkout has it
    folder: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    import keras

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("ui_models")
    model = build_ui_model()
    path = folder / "ui_model.keras"
    model.save(path)
    ui = model_ref(model, path)
    small_model = build_small_sequential()
    small_path = folder / "small_seq.keras"
    small_model.save(small_path)
    small = model_ref(small_model, small_path)
    demo = None
    if demo_model().exists():
        demo = model_ref(keras.saving.load_model(demo_model(), compile=False), demo_model())
    return Models(ui, small, demo, folder)


@pytest.fixture
def ui_model(models: Models) -> ModelRef:
    return models.ui


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "explorer.ini"


@pytest.fixture
def settings(settings_path: Path) -> QSettings:
    return QSettings(str(settings_path), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings: QSettings) -> Callable[..., Any]:
    """Create a shown MainWindow (closed by pytest-qt at teardown) using a settings file in tmp_path."""
    from explorer.ui.main_window import MainWindow

    def make(window_settings: QSettings | None = None) -> MainWindow:
        # The structure view needs no TensorFlow: these windows run without the live-tier worker.
        window = MainWindow(window_settings if window_settings is not None else settings, start_live=False)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


@pytest.fixture
def open_and_wait(qtbot) -> Callable[..., None]:
    """Open a model and wait until its graph is on screen."""

    def open_model(window: Any, path: Path | str) -> None:
        target = Path(path).resolve()
        with qtbot.waitSignal(window.graph_drawn, timeout=DRAW_TIMEOUT_MS,
                              check_params_cb=lambda *_: window.session.path == target):
            window.open_model(path)
        assert window.graph_view.items_by_path, "graph_drawn was emitted but nothing is drawn"

    return open_model


@pytest.fixture
def window(make_window, open_and_wait, ui_model: ModelRef) -> Any:
    """A window showing the session's UI model, fully drawn."""
    win = make_window()
    open_and_wait(win, ui_model.path)
    return win


@pytest.fixture
def wait_drawn(qtbot) -> Callable[..., Any]:
    """``with wait_drawn(window): ...`` waits for the next graph_drawn caused by the block."""

    def wait(window: Any):
        return qtbot.waitSignal(window.graph_drawn, timeout=DRAW_TIMEOUT_MS)

    return wait
