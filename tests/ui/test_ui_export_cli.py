"""Graph export (in the window and from the command line), headless CLI commands, and clean process exits."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import textwrap

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from explorer.ui.canvas.export import export_scene

CLI_TIMEOUT_S = 60


def _run(python, env, *args, cwd=None, timeout=CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def _assert_clean(stderr: str) -> None:
    for marker in ("Traceback", "bool_dealloc", "Fatal Python error", "Aborted", "Segmentation fault"):
        assert marker not in stderr, stderr


# --------------------------------------------------------------------------- export in the window


def test_export_scene_writes_svg_and_png(window, tmp_path):
    scene = window.graph_view.scene()
    rect = scene.sceneRect()
    svg = export_scene(scene, tmp_path / "graph.svg")
    png = export_scene(scene, tmp_path / "graph.PNG")
    assert svg.exists() and png.exists()
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "</svg>" in text
    assert "shared_dense" in text  # the box labels are real text in the SVG
    image = QImage(str(png))
    assert not image.isNull()
    assert image.width() > 0 and image.height() > 0
    assert abs(image.width() / image.height() - rect.width() / rect.height()) < 0.05
    assert image.width() >= int(rect.width())  # drawn at 2x for high-DPI screens
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 5  # boxes, text and edges, not a blank page


def test_export_rejects_other_formats(window, tmp_path):
    with pytest.raises(ValueError, match=r"use \.svg or \.png"):
        export_scene(window.graph_view.scene(), tmp_path / "graph.jpg")
    assert not (tmp_path / "graph.jpg").exists()


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_export_actions_write_the_chosen_file(window, monkeypatch, tmp_path, suffix):
    target = tmp_path / f"chosen.{suffix}"
    asked = []

    def choose(parent, caption, default, file_filter):
        asked.append((caption, default, file_filter))
        return str(target), file_filter

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(choose))
    window.actions_by_name[f"export_{suffix}"].trigger()
    assert target.exists() and target.stat().st_size > 0
    (_caption, default, file_filter) = asked[0]
    assert default.endswith(f"ui_model.{suffix}")
    assert f"*.{suffix}" in file_filter
    assert str(target) in window.statusBar().currentMessage()


def test_export_keeps_the_selected_layer_selected(window, monkeypatch, tmp_path):
    window.select_layer("merge")
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *args: (str(tmp_path / "graph.png"), "")))
    window.actions_by_name["export_png"].trigger()
    assert (tmp_path / "graph.png").exists()
    assert window.summary.selected_path() == "merge"
    assert window.graph_view.selected_path() == "merge", "exporting the graph dropped the selection on screen"


def test_export_to_an_unwritable_place_shows_a_banner(window, monkeypatch, tmp_path):
    target = tmp_path / "no such folder" / "graph.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args: (str(target), "")))
    window.actions_by_name["export_png"].trigger()
    assert not target.exists()
    assert window.banner.isVisible()
    assert window.banner.text().startswith(f"Cannot write {target}")


# --------------------------------------------------------------------------- headless command line


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_cli_graph_writes_the_image(python, python_env, ui_model, tmp_path, suffix):
    out = tmp_path / f"out.{suffix}"
    result = _run(python, python_env, "-m", "explorer", "graph", str(ui_model.path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stderr)
    assert out.exists() and out.stat().st_size > 0
    assert result.stdout.strip() == str(out)
    if suffix == "png":
        image = QImage(str(out))
        assert not image.isNull() and image.width() > 0 and image.height() > 0
    else:
        assert "<svg" in out.read_text(encoding="utf-8")


def test_cli_graph_expand_draws_the_nested_layers(python, python_env, ui_model, tmp_path):
    collapsed, expanded = tmp_path / "collapsed.svg", tmp_path / "expanded.svg"
    for out, extra in ((collapsed, []), (expanded, ["--expand"])):
        result = _run(python, python_env, "-m", "explorer", "graph", str(ui_model.path), "-o", str(out), *extra)
        assert result.returncode == 0, result.stderr
    assert "inner_dense" not in collapsed.read_text(encoding="utf-8")
    assert "inner_dense" in expanded.read_text(encoding="utf-8")


def test_cli_summary_json(python, python_env, ui_model):
    result = _run(python, python_env, "-m", "explorer", "summary", str(ui_model.path), "--json")
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stderr)
    data = json.loads(result.stdout)
    assert data["model"]["name"] == ui_model.name
    assert data["model"]["total_params"] == ui_model.total_params
    assert data["model"]["trainable_params"] == ui_model.trainable_params
    assert len(data["layers"]) == len(ui_model.layer_paths)
    assert [layer["name"] for layer in data["layers"]] == [p.rsplit("/", 1)[-1] for p in ui_model.layer_paths]
    shared = next(layer for layer in data["layers"] if layer["name"] == "shared_dense")
    assert shared["calls"] == 2 and shared["inbound"] == ["input_a", "input_b"]


def test_cli_summary_text(python, python_env, ui_model):
    result = _run(python, python_env, "-m", "explorer", "summary", str(ui_model.path))
    assert result.returncode == 0, result.stderr
    assert f'Model: "{ui_model.name}"' in result.stdout
    assert f"Total params: {ui_model.total_params:,}" in result.stdout


def _bad_inputs(tmp_path, ui_model):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.keras"
    noise.write_bytes(b"\x00\x13garbage" * 100)
    return {
        "missing": (["summary", str(tmp_path / "missing.keras")], "no such file"),
        "empty": (["summary", str(empty), "--json"], "the file is empty"),
        "noise": (["graph", str(noise), "-o", str(tmp_path / "x.png")], "not a Keras model"),
        "format": (["graph", str(ui_model.path), "-o", str(tmp_path / "x.jpg")], "unsupported output"),
        "folder": (["graph", str(ui_model.path), "-o", str(tmp_path / "nowhere" / "x.png")], "could not write"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "noise", "format", "folder"])
def test_cli_errors_are_one_line_without_traceback(python, python_env, ui_model, tmp_path, case):
    args, reason = _bad_inputs(tmp_path, ui_model)[case]
    result = _run(python, python_env, "-m", "explorer", *args)
    assert result.returncode != 0
    _assert_clean(result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("keras-explorer: ")
    assert reason in lines[0]
    assert result.stdout == ""


# --------------------------------------------------------------------------- the application process

APP_DRIVER = textwrap.dedent("""
    import json
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from explorer.cli import main
    from explorer.ui.main_window import MainWindow

    app = QApplication(["keras-explorer"])
    seen = {"drawn": 0, "boxes": -1}

    def attach():
        (window,) = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
        def drawn():
            seen["drawn"] += 1
            seen["boxes"] = len(window.graph_view.items_by_path)
        window.graph_drawn.connect(drawn)

    def finish():
        for widget in app.topLevelWidgets():
            if isinstance(widget, MainWindow):
                print("TITLE", widget.windowTitle())
                print("BANNER", widget.banner.isVisible())
                widget.close()
        print("DRAWN", seen["drawn"], "BOXES", seen["boxes"], flush=True)
        app.quit()

    QTimer.singleShot(0, attach)
    QTimer.singleShot(int(sys.argv[2]), finish)
    sys.exit(main(json.loads(sys.argv[1])))
""")


def test_app_process_draws_and_exits_cleanly(python, python_env, ui_model, tmp_path):
    """``python -m explorer MODEL`` (through explorer.cli.main), asked to close after ~3 s."""
    result = _run(python, python_env, "-c", APP_DRIVER, json.dumps([str(ui_model.path)]), "3000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stderr)
    assert f"TITLE {ui_model.path.name}" in result.stdout
    assert "BANNER False" in result.stdout
    assert f"DRAWN 1 BOXES {len(ui_model.top_level)}" in result.stdout
    # The default QSettings of the real app went to XDG_CONFIG_HOME, not to the user's configuration.
    written = list((tmp_path / "config").rglob("*.conf"))
    assert written, "the window state was not saved on close"
    text = written[0].read_text(encoding="utf-8")
    assert "geometry" in text and "windowState" in text and "recentFiles" in text


def test_app_process_with_a_bad_file_shows_the_banner_and_exits_cleanly(python, python_env, tmp_path):
    result = _run(python, python_env, "-c", APP_DRIVER, json.dumps([str(tmp_path / "missing.keras")]), "1500",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stderr)
    assert "BANNER True" in result.stdout
    assert "DRAWN 0" in result.stdout


def test_app_process_without_arguments_opens_the_demo_model(python, python_env, models, tmp_path):
    if models.demo is None:
        pytest.skip("resources/demo_model.keras is not present")
    result = _run(python, python_env, "-c", APP_DRIVER, "[]", "2500", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_clean(result.stderr)
    assert f"TITLE {models.demo.path.name}" in result.stdout
    assert f"DRAWN 1 BOXES {len(models.demo.top_level)}" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("pyqtgraph") is None, reason="pyqtgraph is not installed")
def test_pyqtgraph_with_the_main_window_exits_cleanly(python, python_env):
    """PySide6 6.12.0 aborted at interpreter exit once pyqtgraph was imported (hence the 6.11.3 pin)."""
    script = textwrap.dedent("""
        import explorer.ui.main_window, pyqtgraph
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        window = explorer.ui.main_window.MainWindow()
        plot = pyqtgraph.PlotWidget()
        plot.plot([1, 3, 2])
        window.show(); plot.show()
        app.processEvents()
        print("ok")
    """)
    result = _run(python, python_env, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    _assert_clean(result.stderr)
