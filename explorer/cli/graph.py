"""``keras-explorer graph``: the layer graph drawn as in the window, to SVG or PNG.

The only command-line module that imports Qt (inside run): the drawing is the window's own canvas code.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from explorer.cli.common import read_model
from explorer.layout.graphviz import GRAPH_SUFFIXES, compute_layout
from explorer.layout.view_graph import build_view

NAME = "graph"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(NAME, help="draw the layer graph to an SVG or PNG file")
    parser.add_argument("model")
    parser.add_argument("-o", "--output", required=True, help="OUT.svg or OUT.png")
    parser.add_argument("--expand", action="store_true", help="draw nested models expanded")


def run(options: argparse.Namespace) -> int:
    model_graph = read_model(options.model)
    output = options.output
    if Path(output).suffix.lower() not in GRAPH_SUFFIXES:
        raise ValueError(f"unsupported output '{output}': use a .svg or .png file name")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication, QGraphicsScene

    from explorer.ui.canvas.export import export_scene
    from explorer.ui.canvas.scene import box_sizes, populate_scene

    app = QApplication.instance() or QApplication(["keras-explorer"])
    expanded = model_graph.groups if options.expand else frozenset()
    view = build_view(model_graph, expanded)
    scene = QGraphicsScene()
    populate_scene(scene, view, compute_layout(view, box_sizes(view)))
    export_scene(scene, output)
    del scene, app
    print(output)
    return 0
