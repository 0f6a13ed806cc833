"""Fixtures every test folder may use: Keras (imported when a test first asks for it, so the tests that never
build a model do not pay for TensorFlow), child processes kept inside tmp folders, the log folder."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from typing import Any

import pytest

from explorer.logs import LOG_DIR_VARIABLE


@pytest.fixture(scope="session")
def keras_module() -> Any:
    """Keras, imported once (TensorFlow takes a few seconds) and seeded."""
    import keras

    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture(autouse=True)
def collect_qt_garbage(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each widget test (pytest-qt has closed its widgets by then), delete what was deleteLater'd and
    collect cycles now. Left to chance, Python's collector destroys Qt widgets in the middle of another Qt call,
    and Qt's pooled signal-slot mutex can then deadlock (seen: a window freed inside QObject::disconnect)."""
    yield
    if "qtbot" not in request.fixturenames:
        return  # no widgets; and a full collection with TensorFlow loaded costs ~0.1 s a test
    from PySide6.QtCore import QCoreApplication, QEvent

    if QCoreApplication.instance() is not None:
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


@pytest.fixture(scope="session", autouse=True)
def log_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The app logs to a file (explorer.logs): in tests, and in their child processes, never the user's state
    folder."""
    folder = tmp_path_factory.mktemp("log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOG_DIR_VARIABLE, str(folder))
        yield folder


@pytest.fixture
def python_env(tmp_path: Path) -> dict[str, str]:
    """Environment for child processes: offscreen Qt, no GPU noise, HOME and settings under tmp_path."""
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="3", XDG_CONFIG_HOME=str(tmp_path / "config"),
               HOME=str(tmp_path / "home"), PYTHONFAULTHANDLER="1")
    (tmp_path / "home").mkdir(exist_ok=True)
    return env



@pytest.fixture
def python() -> str:
    return sys.executable

