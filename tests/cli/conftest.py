"""Fixtures of the command-line tests: a saved model to run the commands on, and child processes whose HOME,
settings and log file stay inside the test's temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


import pytest

from tests.support.models import build_ui_model
from tests.support.reference import ModelRef, model_ref


@pytest.fixture(scope="session")
def ui_model(keras_module, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """Two inputs, a shared layer called twice, a nested model holding a Sequential one; saved once."""
    model = build_ui_model()
    path = tmp_path_factory.mktemp("cli_models") / "ui_model.keras"
    model.save(path)
    return model_ref(model, path)
