"""Opening models: graph, title, summary and totals; errors; recent files; drag and drop; saved window state."""

from __future__ import annotations

import re
import zipfile

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMenu

from explorer.ui.canvas.items import FrameItem, LayerItem
from explorer.ui.panels.summary_table import PATH_ROLE


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def _model(models, which: str):
    ref = models.ui if which == "ui" else models.demo
    if ref is None:
        pytest.skip("resources/demo_model.keras is not present")
    return ref


@pytest.mark.parametrize("which", ["ui", "demo"])
def test_open_model_draws_graph_summary_and_totals(models, make_window, open_and_wait, which):
    ref = _model(models, which)
    window = make_window()
    open_and_wait(window, ref.path)

    view = window.graph_view
    # Collapsed nested models are one box each: the boxes are exactly Keras' top-level layers.
    assert sorted(view.items_by_path) == sorted(ref.top_level)
    boxes = [i for i in view.scene().items() if isinstance(i, LayerItem)]
    assert len(boxes) == len(ref.top_level)
    assert not [i for i in view.scene().items() if isinstance(i, FrameItem)]
    assert ref.path.name in window.windowTitle()
    assert window.session.path == ref.path.resolve()
    assert window.session.graph is not None and window.session.graph.name == ref.name

    summary = window.summary
    assert summary.proxy.rowCount() == len(ref.layer_paths)
    rows = [summary.proxy.index(r, 0).data(PATH_ROLE) for r in range(summary.proxy.rowCount())]
    assert rows == list(ref.layer_paths)
    totals = _plain(summary.totals.text())
    assert f"total params {ref.total_params:,}" in totals
    assert f"trainable {ref.trainable_params:,}" in totals
    assert f"non-trainable {ref.total_params - ref.trainable_params:,}" in totals
    assert f"{ref.total_params:,} params" in window.statusBar().currentMessage()
    assert window.banner.isHidden()


def test_boxes_and_edges_are_laid_out_in_the_scene(window):
    view = window.graph_view
    scene_rect = view.scene().sceneRect()
    for path, item in view.items_by_path.items():
        assert scene_rect.contains(item.sceneBoundingRect()), path
        assert item.rect().width() >= 110 and item.rect().height() > 0, path
    edges = [i for i in view.scene().items() if not isinstance(i, LayerItem | FrameItem)]
    assert len(edges) == len(view.view.edges) > 0


# --------------------------------------------------------------------------- errors


def _bad_files(folder):
    empty = folder / "empty.keras"
    empty.write_bytes(b"")
    noise = folder / "noise.keras"
    noise.write_bytes(bytes(range(256)) * 16)
    no_config = folder / "no_config.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("readme.txt", "not a model")
    return [
        (folder / "missing.keras", "no such file"),
        (empty, "the file is empty"),
        (noise, "not a Keras model"),
        (no_config, "no config.json"),
    ]


def test_bad_files_show_a_banner_and_the_app_stays_usable(qtbot, make_window, open_and_wait, ui_model, tmp_path):
    window = make_window()
    for path, reason in _bad_files(tmp_path):
        with qtbot.waitSignal(window.session.failed, timeout=10000) as failed:
            window.open_model(path)
        message = window.banner.text()
        assert failed.args == [message]
        assert window.banner.isVisible()
        assert message.startswith(f"Cannot open {path.name}: ")
        assert reason in message
        assert "Traceback" not in message and "\n" not in message
        assert str(tmp_path) not in message  # the reason is given without repeating the full path
        assert window.session.graph is None
        assert window.statusBar().currentMessage() == message

    open_and_wait(window, ui_model.path)
    assert window.banner.isHidden()
    assert sorted(window.graph_view.items_by_path) == sorted(ui_model.top_level)
    assert ui_model.path.name in window.windowTitle()


def test_a_bad_file_keeps_the_current_model_on_screen(qtbot, window, ui_model, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with qtbot.waitSignal(window.session.failed, timeout=10000):
        window.open_model(bad)
    assert "damaged or truncated zip archive" in window.banner.text()
    assert window.banner.isVisible()
    assert window.session.path == ui_model.path.resolve()
    assert ui_model.path.name in window.windowTitle()
    assert sorted(window.graph_view.items_by_path) == sorted(ui_model.top_level)
    assert window.settings.recent_files() == [str(ui_model.path.resolve())]  # failures are not remembered


def test_a_failed_open_does_not_lose_an_expand_being_laid_out(qtbot, window, tmp_path):
    """Expanding a nested model, then opening a bad file before the new layout arrives (large models take
    seconds to lay out): the expanded model must still be drawn, as ``window.session.expanded`` says it is."""
    window.session.toggle_group("block")  # laid out in the background
    with qtbot.waitSignal(window.session.failed, timeout=10000):
        window.open_model(tmp_path / "missing.keras")
    assert window.session.expanded == {"block"}
    qtbot.waitUntil(lambda: "block/block_dense" in window.graph_view.items_by_path, timeout=3000)
    assert "block" not in window.graph_view.items_by_path


# --------------------------------------------------------------------------- recent files


def test_recent_files_are_persisted_and_listed(make_window, open_and_wait, models, settings, settings_path,
                                               tmp_path):
    second = tmp_path / "copy of model.keras"
    second.write_bytes(models.ui.path.read_bytes())
    window = make_window()
    open_and_wait(window, models.ui.path)
    open_and_wait(window, second)
    expected = [str(second.resolve()), str(models.ui.path.resolve())]
    assert window.settings.recent_files() == expected
    open_and_wait(window, models.ui.path)  # re-opening moves it to the front, without duplicates
    expected.reverse()
    assert window.settings.recent_files() == expected

    settings.sync()
    assert settings_path.exists()
    assert QSettings(str(settings_path), QSettings.Format.IniFormat).value("recentFiles") == expected
    other = make_window(QSettings(str(settings_path), QSettings.Format.IniFormat))
    assert other.settings.recent_files() == expected

    menu = other.findChild(QMenu, "recentMenu")
    assert menu is not None
    menu.aboutToShow.emit()
    assert [a.text() for a in menu.actions()] == [models.ui.path.name, second.name]
    assert [a.toolTip() for a in menu.actions()] == expected


def test_open_recent_menu_opens_the_file_and_skips_missing_ones(qtbot, make_window, open_and_wait, models,
                                                                 tmp_path):
    gone = tmp_path / "gone.keras"
    gone.write_bytes(models.ui.path.read_bytes())
    window = make_window()
    open_and_wait(window, gone)
    gone.unlink()
    menu = window.findChild(QMenu, "recentMenu")
    menu.aboutToShow.emit()
    assert [(a.text(), a.isEnabled()) for a in menu.actions()] == [("(no recent files)", False)]

    fresh = make_window()  # same settings file
    open_and_wait(fresh, models.ui.path)
    fresh.graph_view.clear()
    menu = fresh.findChild(QMenu, "recentMenu")
    menu.aboutToShow.emit()
    (entry,) = menu.actions()
    assert entry.text() == models.ui.path.name
    with qtbot.waitSignal(fresh.graph_drawn, timeout=10000):
        entry.trigger()
    assert sorted(fresh.graph_view.items_by_path) == sorted(models.ui.top_level)


def test_a_single_recent_file_survives_a_restart(make_window, open_and_wait, ui_model, settings, settings_path):
    window = make_window()
    open_and_wait(window, ui_model.path)
    settings.sync()
    reread = QSettings(str(settings_path), QSettings.Format.IniFormat)
    assert make_window(reread).settings.recent_files() == [str(ui_model.path.resolve())]


# --------------------------------------------------------------------------- drag and drop


def test_dropping_a_file_opens_it(qtbot, make_window, ui_model):
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(ui_model.path))])
    centre = QPointF(window.rect().center())

    enter = QDragEnterEvent(centre.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()

    drop = QDropEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.graph_drawn, timeout=10000):
        window.dropEvent(drop)
    assert drop.isAccepted()
    assert window.session.path == ui_model.path.resolve()
    assert sorted(window.graph_view.items_by_path) == sorted(ui_model.top_level)


def test_dropping_text_is_ignored(make_window):
    window = make_window()
    mime = QMimeData()
    mime.setText("not a file")
    enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()
    assert window.session.graph is None


# --------------------------------------------------------------------------- window state


def test_geometry_and_dock_state_are_saved_on_close_and_restored(qtbot, make_window, settings, settings_path):
    window = make_window()
    window.inspector_dock.hide()
    assert window.close()
    settings.sync()
    stored = QSettings(str(settings_path), QSettings.Format.IniFormat)
    assert "geometry" in stored.allKeys() and "windowState" in stored.allKeys()
    assert not stored.value("geometry").isEmpty() and not stored.value("windowState").isEmpty()

    restored = make_window(stored)
    assert restored.summary_dock.isVisible()
    assert not restored.inspector_dock.isVisible()
    assert not restored.inspector_dock.toggleViewAction().isChecked()


def test_help_menu_opens_the_log_folder(window, monkeypatch, tmp_path):
    """Help > Open Log Folder: the folder a bug report takes the log from exists once asked for."""
    from PySide6.QtWidgets import QMenu

    from explorer.logs import LOG_DIR_VARIABLE

    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "state" / "log"))
    help_menu = next(m for m in window.menuBar().findChildren(QMenu) if m.title() == "&Help")
    action = window.actions_by_name["open_log_folder"]
    assert action in help_menu.actions()
    assert window.open_log_folder() == tmp_path / "state" / "log"
    assert (tmp_path / "state" / "log").is_dir()


def test_a_weights_only_file_says_what_it_is(make_window, open_and_wait):
    """save_weights output: the stored layers are drawn, the notice says where the architecture is, and nothing
    is sent to Keras (there is no model to load)."""
    from tests.support.generations import GENERATIONS

    window = make_window()
    open_and_wait(window, GENERATIONS / "tf_keras_2.21" / "nested_arch.h5")
    assert window.session.graph.kind == "weights"
    assert "weights only" in window.notice.text.text() and window.notice.isVisible()
    assert "no architecture to compute with" in window.activations.view.message.text()
    assert window.graph_view.items_by_path, "the stored layers are drawn"
