"""Where the time of opening a model goes: each step of ``MainWindow.open_model`` timed and profiled on its own.

``QT_QPA_PLATFORM=offscreen python benchmarks/profile_open.py [MODEL] [--top N]`` (default model: the cached
EfficientNetB7 of ``bench.py``). The window runs the steps on two threads; here they run one after the other on
the GUI thread, in the window's order, so each can be timed (median of 3) and profiled with cProfile:
read the file, build the graph, build the view, measure the boxes, write DOT, run ``dot``, parse its JSON,
clear and populate the scene, fit the view, repaint the viewport. The end-to-end time through the real window is
measured too; the difference is the cost of hopping between threads and of waiting for them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsScene

from explorer.layout.graphviz import compute_layout, dot_source, parse_layout, run_dot
from explorer.layout.view_graph import build_view
from explorer.model.config_graph import graph_from_config
from explorer.model.files import read_model_file
from explorer.ui.canvas.scene import box_sizes, populate_scene
from explorer.ui.main_window import MainWindow

DEFAULT_MODEL = Path(tempfile.gettempdir()) / "keras-explorer-bench" / "efficientnetb7.keras"
REPETITIONS = 3


def timed(label: str, step: Callable[[], Any], rows: list, profiles: dict, top: int,
          setup: Callable[[], Any] = lambda: None) -> Any:
    """Median of REPETITIONS timed calls of ``step`` (each after an untimed ``setup``), then one profiled call."""
    times, result = [], None
    for _ in range(REPETITIONS):
        setup()
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    setup()
    profiler = cProfile.Profile()
    profiler.enable()
    step()
    profiler.disable()
    rows.append((label, statistics.median(times)))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    profiles[label] = text.getvalue()
    return result


def end_to_end(window: MainWindow, path: Path) -> float:
    loop = QEventLoop()
    window.graph_drawn.connect(loop.quit)
    window.session.failed.connect(loop.quit)
    QTimer.singleShot(180_000, loop.quit)
    start = time.perf_counter()
    window.open_model(path)
    loop.exec()
    window.graph_view.viewport().repaint()
    elapsed = time.perf_counter() - start
    window.graph_drawn.disconnect(loop.quit)
    window.session.failed.disconnect(loop.quit)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    parser.add_argument("--top", type=int, default=12, help="functions listed per step (by own time)")
    parser.add_argument("--quiet", action="store_true", help="the table only, no cProfile listings")
    options = parser.parse_args()
    path = Path(options.model)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as scratch:
        window = MainWindow(QSettings(str(Path(scratch) / "settings.ini"), QSettings.Format.IniFormat))
        window.show()
        app.processEvents()
        totals = [end_to_end(window, path) for _ in range(REPETITIONS)]
        view_widget = window.graph_view

        rows: list[tuple[str, float]] = []
        profiles: dict[str, str] = {}

        def step(label: str, work: Callable[[], Any], setup: Callable[[], Any] = lambda: None) -> Any:
            return timed(label, work, rows, profiles, options.top, setup)

        # worker thread: the "load" task
        model_file = step("[worker] read file (zip, config.json, weights metadata)", lambda: read_model_file(path))
        graph = step("[worker] graph_from_config", lambda: graph_from_config(
            model_file.config, model_file.weights, keras_version=model_file.metadata.get("keras_version"),
            source=str(path)))
        # GUI thread: Session.set_file and GraphCanvas.relayout
        step("[GUI] summary table set_graph", lambda: window.summary.set_graph(graph))
        step("[GUI] inspector show_model", lambda: window.inspector.show_model(graph))
        scene = view_widget.scene()
        previous = build_view(graph, set())
        previous_layout = compute_layout(previous, box_sizes(previous))
        step("[GUI] graph_view.clear (previous graph)", view_widget.clear,
             setup=lambda: populate_scene(scene, previous, previous_layout))
        step("[GUI] add_recent (QSettings)", lambda: window.settings.add_recent(str(path)))
        view = step("[GUI] build_view", lambda: build_view(graph, set()))
        sizes = step("[GUI] box_sizes (font metrics)", lambda: box_sizes(view))
        # worker thread: the "layout" task
        source = step("[worker] dot_source (python-graphviz)", lambda: dot_source(view, sizes))
        data = step("[worker] run_dot (dot -Tjson0 subprocess + json)", lambda: run_dot(source))
        layout = step("[worker] parse_layout", lambda: parse_layout(data))
        # GUI thread: MainWindow._draw
        step("[GUI] populate_scene (into the empty scene)", lambda: populate_scene(scene, view, layout),
             setup=scene.clear)
        view_widget.view = view
        view_widget.items_by_path = populate_scene(scene, view, layout)
        step("[GUI] show_start (fit, zoom, centre)", view_widget.show_start)
        step("[GUI] viewport repaint (first view)", lambda: view_widget.viewport().repaint())
        view_widget.fit()
        step("viewport repaint of the whole graph (Fit; not part of opening)", view_widget.viewport().repaint)
        extra = rows.pop()
        off_screen = QGraphicsScene()
        populate_scene(off_screen, view, layout)

        window.close()
        app.processEvents()

    steps_total = sum(t for _, t in rows)
    print(f"{path.name}: {len(graph.nodes)} layers, {len(view.nodes)} boxes, {len(view.edges)} edges, "
          f"{len(off_screen.items())} scene items, {len(source):,} bytes of DOT")
    print(f"end to end through MainWindow (median of {REPETITIONS}): {statistics.median(totals):.3f} s "
          f"[{', '.join(f'{t:.3f}' for t in totals)}]")
    print(f"{'step (in the order the window runs them)':60} {'median s':>9} {'share':>6}")
    for label, seconds in rows:
        print(f"{label:60} {seconds:9.3f} {seconds / steps_total:6.1%}")
    print(f"{'sum of steps':60} {steps_total:9.3f}")
    print(f"{extra[0]:60} {extra[1]:9.3f}")
    rest = statistics.median(totals) - steps_total
    print(f"{'threads, signals, event loop, waiting (end to end - sum)':60} {rest:9.3f}")
    if not options.quiet:
        for label, text in profiles.items():
            print(f"\n===== {label} =====\n{text.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
