"""Fixtures of the command-line tests: a saved model to run the commands on, and child processes whose HOME,
settings and log file stay inside the test's temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.logs import LOG_DIR_VARIABLE
from tests.support.reference import ModelRef, model_ref
from tests.ui.conftest import build_ui_model


@pytest.fixture(scope="session", autouse=True)
def log_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """main() logs to a file (explorer.logs): here, and in every child process, never the user's state folder."""
    folder = tmp_path_factory.mktemp("log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOG_DIR_VARIABLE, str(folder))
        yield folder


@pytest.fixture(scope="session")
def ui_model(keras_module, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """Two inputs, a shared layer called twice, a nested model holding a Sequential one; saved once."""
    model = build_ui_model()
    path = tmp_path_factory.mktemp("cli_models") / "ui_model.keras"
    model.save(path)
    return model_ref(model, path)


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
