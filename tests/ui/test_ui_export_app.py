"""Graph export in the window, and the application process drawing and exiting cleanly (the headless
commands are tested in tests/cli)."""

from __future__ import annotations

import importlib.util
import json
import textwrap

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from explorer.ui.canvas.export import export_scene
from tests.support.processes import assert_clean, run_python

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
def test_graph_export_writes_the_chosen_file(window, monkeypatch, tmp_path, suffix):
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
    window.session.select("merge")
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
        if len(sys.argv) > 3:  # finish as soon as a layer's feature maps are on screen
            window.activations.shown.connect(lambda layer: (print("SHOWN", layer), finish()))

    def finish():
        for widget in app.topLevelWidgets():
            if isinstance(widget, MainWindow):
                print("TITLE", widget.windowTitle())
                print("BANNER", widget.banner.isVisible())
                print("SELECTED", widget.session.layer)
                widget.close()
        print("DRAWN", seen["drawn"], "BOXES", seen["boxes"], flush=True)
        app.quit()

    QTimer.singleShot(0, attach)
    QTimer.singleShot(int(sys.argv[2]), finish)
    sys.exit(main(json.loads(sys.argv[1])))
""")


def test_app_process_draws_and_exits_cleanly(python, python_env, ui_model, tmp_path):
    """``python -m explorer MODEL`` (through explorer.cli.main), asked to close after ~3 s."""
    result = run_python(python, python_env, "-c", APP_DRIVER, json.dumps([str(ui_model.path)]), "3000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert f"TITLE {ui_model.path.name}" in result.stdout
    assert "BANNER False" in result.stdout
    assert f"DRAWN 1 BOXES {len(ui_model.top_level)}" in result.stdout
    # The default QSettings of the real app went to XDG_CONFIG_HOME, not to the user's configuration.
    written = list((tmp_path / "config").rglob("*.conf"))
    assert written, "the window state was not saved on close"
    text = written[0].read_text(encoding="utf-8")
    assert "geometry" in text and "windowState" in text and "recentFiles" in text


def test_app_process_with_a_bad_file_shows_the_banner_and_exits_cleanly(python, python_env, tmp_path):
    result = run_python(python, python_env, "-c", APP_DRIVER, json.dumps([str(tmp_path / "missing.keras")]), "1500",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert "BANNER True" in result.stdout
    assert "DRAWN 0" in result.stdout


def test_app_process_without_arguments_opens_the_demo_on_a_telling_layer(python, python_env, models, tmp_path):
    """First run: the demo opens with a layer inside a nested model selected (so that model is drawn open)
    and its feature maps on the sample image, not an empty "click a layer" panel."""
    if models.demo is None:
        pytest.skip("resources/demo_model.keras is not present")
    result = run_python(python, python_env, "-c", APP_DRIVER, "[]", "150000", "until-shown", cwd=tmp_path,
                  timeout=180)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert f"TITLE {models.demo.path.name}" in result.stdout
    assert "SHOWN res_stage1/res_stage1_relu" in result.stdout, result.stdout
    assert "SELECTED res_stage1/res_stage1_relu" in result.stdout
    nested = sum(1 for path in models.demo.layer_paths if path.startswith("res_stage1/") and path.count("/") == 1)
    assert f"DRAWN 2 BOXES {len(models.demo.top_level) - 1 + nested}" in result.stdout, result.stdout


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
    result = run_python(python, python_env, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert_clean(result.stderr)
