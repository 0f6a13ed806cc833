"""The session owns the window's state: tested on real model files, through its own signals, without a window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from explorer.logs import LOG_DIR_VARIABLE, log_folder, setup_logging
from explorer.model.files import load_graph
from explorer.model.graph import Target
from explorer.model.landmarks import telling_layer
from explorer.model.traced import Trace
from explorer.resources import demo_images
from explorer.ui.session import Session
from explorer.ui.settings import CACHE_BYTES, MAX_RECENT, RECENT_FILES, TRUSTED_DIGESTS, Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(QSettings(str(tmp_path / "explorer.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def session(qtbot, settings: Settings) -> Session:
    made = Session(settings)
    yield made
    made.close()


class Recorder:
    """The session's signals in the order they came."""

    def __init__(self, session: Session) -> None:
        self.seen: list[str] = []
        for name in ("graph_changed", "expanded_changed", "selection_changed", "chosen_changed", "trust_changed",
                     "image_changed", "inputs_changed", "live_load_requested"):
            getattr(session, name).connect(lambda *_args, name=name: self.seen.append(name))


def _opened(session: Session, path: Path) -> Session:
    session.set_file(path, load_graph(path))
    return session


def test_open_reads_in_the_background_and_announces_the_graph(qtbot, session, ui_model, settings):
    with qtbot.waitSignal(session.graph_changed, timeout=10000):
        session.open(ui_model.path)
    assert session.path == ui_model.path.resolve()
    assert {n.path for n in session.graph.nodes} == set(ui_model.layer_paths)
    assert session.expanded == frozenset() and session.layer is None and session.chosen == ()
    assert settings.recent_files() == [str(ui_model.path.resolve())]


def test_a_file_that_cannot_be_read_fails_with_one_line(qtbot, session, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip\n" * 4)
    with qtbot.waitSignal(session.failed, timeout=10000) as failed:
        session.open(broken)
    assert failed.args[0].startswith("Cannot open broken.keras: ") and "\n" not in failed.args[0]
    assert session.graph is None


def test_selecting_a_hidden_layer_opens_its_nested_models_first(qtbot, session, ui_model):
    recorder = Recorder(_opened(session, ui_model.path))
    session.select("block/inner_seq/inner_bn")
    assert session.expanded == {"block", "block/inner_seq"}
    assert recorder.seen == ["expanded_changed", "selection_changed"]  # the view redraws, then selects
    assert session.layer == "block/inner_seq/inner_bn" and session.call_site == (0, 0, 0)
    session.select("block/inner_seq/inner_bn")
    assert recorder.seen == ["expanded_changed", "selection_changed"], "re-selecting the current layer is quiet"
    session.select("no_such_layer")
    assert session.layer == "block/inner_seq/inner_bn"


def test_collapsing_closes_the_nested_models_inside_too(session, ui_model):
    _opened(session, ui_model.path)
    session.set_all_expanded(True)
    assert session.expanded == {"block", "block/inner_seq"}
    session.toggle_group("block")
    assert session.expanded == frozenset()


def test_export_targets_follow_the_selection_and_the_chosen_call_site(session, ui_model):
    _opened(session, ui_model.path)
    assert session.export_targets() == []
    session.select("shared_dense")
    sites = session.graph.call_sites("shared_dense")
    assert len(sites) == 2
    session.set_call_site(sites[1])
    assert session.export_targets() == [Target("shared_dense", sites[1])]
    session.choose(["merge", "shared_dense"])
    assert session.export_targets() == [Target("merge", (0,)), Target("shared_dense", sites[1])]


def test_a_trace_arrives_as_a_graph_change_only_for_models_without_a_graph(qtbot, session, ui_model):
    _opened(session, ui_model.path)
    functional = session.graph
    session.apply_trace(Trace("symbolic call", "{}", "n/a"))
    assert session.graph is functional, "a functional model's graph is read from its file, never replaced"


def test_trust_is_remembered_for_the_exact_file(qtbot, session, settings, ui_model, tmp_path):
    import dataclasses

    from explorer.model.graph import Finding

    copy = tmp_path / "flagged.keras"
    copy.write_bytes(ui_model.path.read_bytes())
    graph = dataclasses.replace(load_graph(copy), findings=(Finding("config.json layers[1]", "a Lambda layer"),))
    session.set_file(copy, graph)
    assert session.refused and not session.trusted
    recorder = Recorder(session)
    session.trust()
    assert session.trusted and not session.refused
    assert recorder.seen == ["trust_changed", "live_load_requested"]
    assert len(settings.strings(TRUSTED_DIGESTS)) == 1
    copy.write_bytes(copy.read_bytes() + b"\0")  # an edited file is a different file
    assert not session.trusted


def test_the_live_tier_loads_once_the_graph_is_drawn(session, ui_model):
    recorder = Recorder(_opened(session, ui_model.path))
    session.drawn()
    session.drawn()  # a redraw (expanding a model) does not reload it
    assert recorder.seen == ["live_load_requested"]


def test_an_unreadable_image_keeps_the_previous_one(qtbot, session, tmp_path):
    picture = next(iter(demo_images()))
    assert session.set_image(picture)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with qtbot.waitSignal(session.message, timeout=1000) as said:
        assert not session.set_image(broken)
    assert "broken.png" in said.args[0]
    assert session.image_path == Path(picture)


def test_the_demo_opens_on_a_layer_inside_a_nested_model(models):
    """First run: the telling layer has feature maps large enough to read, after a nested model."""
    graph = load_graph(models.demo.path)
    layer = telling_layer(graph)
    assert layer == "res_stage1/res_stage1_relu"
    assert graph.node(layer).output_shapes[0][0] == (None, 32, 32, 32)


def test_no_telling_layer_without_an_image_input(ui_model):
    assert telling_layer(load_graph(ui_model.path)) is None


def test_settings_read_what_qsettings_wrote(settings, tmp_path):
    assert settings.recent_files() == [] and settings.integer(CACHE_BYTES) == CACHE_BYTES.default
    settings.set(RECENT_FILES, "only-one")  # QSettings' ini files give back one string for a one-item list
    assert settings.recent_files() == ["only-one"]
    for index in range(MAX_RECENT + 3):
        settings.add_recent(f"/models/{index}.keras")
    assert settings.recent_files()[0] == f"/models/{MAX_RECENT + 2}.keras"
    assert len(settings.recent_files()) == MAX_RECENT
    settings.set(CACHE_BYTES, "not a number")
    assert settings.integer(CACHE_BYTES) == CACHE_BYTES.default


def test_the_log_goes_to_a_rotating_file_in_the_chosen_folder(monkeypatch, tmp_path):
    import logging

    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "logs"))
    logger = logging.getLogger("explorer")
    saved = list(logger.handlers)
    for handler in saved:
        logger.removeHandler(handler)
    try:
        path = setup_logging()
        assert path == log_folder() / "keras-explorer.log" and path.parent == tmp_path / "logs"
        logging.getLogger("explorer.ui.session").warning("a line for the bug report %s", json.dumps([1]))
        for handler in logger.handlers:
            handler.flush()
        assert "a line for the bug report [1]" in path.read_text()
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in saved:
            logger.addHandler(handler)


def test_trust_in_a_savedmodel_folder_is_for_its_exact_files(settings, tmp_path):
    """A SavedModel is a folder: trust covers every file in it, so an edited variables file is not trusted."""
    import shutil

    from explorer.ui.trust import TrustStore
    from tests.support.generations import GENERATIONS

    folder = tmp_path / "model"
    shutil.copytree(GENERATIONS / "tf_keras_2.21" / "nested_savedmodel", folder)
    store = TrustStore(settings)
    assert not store.is_trusted(folder)
    store.remember(folder)
    assert store.is_trusted(folder)
    data = next(folder.glob("variables/variables.data-*"))
    data.write_bytes(data.read_bytes()[::-1])
    assert not TrustStore(settings).is_trusted(folder) and not store.is_trusted(folder)
