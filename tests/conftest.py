"""Fixtures that several test folders use (model, runtime). Keras is imported when a test first asks for it,
so the tests that never build a model do not pay for TensorFlow."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from typing import Any

import pytest


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
