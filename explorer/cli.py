"""Command line: ``keras-explorer [MODEL]`` opens the window; subcommands work headless."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("summary", "graph", "check", "activations", "export", "features")
LOADS_INTO_KERAS = ("activations", "export", "features")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return _headless(args)
    parser = argparse.ArgumentParser(
        prog="keras-explorer",
        description="Explore a Keras model: layer graph, summary, layer properties. "
                    f"Headless subcommands: {', '.join(SUBCOMMANDS)} (see 'keras-explorer SUBCOMMAND -h').")
    parser.add_argument("model", nargs="?", help=".keras or .h5 file to open (default: the bundled demo model)")
    parser.add_argument("--image", help="image to compute activations on (default: a bundled sample image)")
    options = parser.parse_args(args)
    from explorer.ui.app import run_app  # Qt is imported only when a window is wanted

    return run_app(options.model, options.image)


def _headless(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keras-explorer")
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="print the model summary (no TensorFlow needed)")
    summary.add_argument("model")
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    graph = commands.add_parser("graph", help="draw the layer graph to an SVG or PNG file")
    graph.add_argument("model")
    graph.add_argument("-o", "--output", required=True, help="OUT.svg or OUT.png")
    graph.add_argument("--expand", action="store_true", help="draw nested models expanded")
    check = commands.add_parser("check", help="list what in the file could run code or touch the system",
                                description="Static safety check; exit 0: clean, 1: findings, 2: unreadable.")
    check.add_argument("model")
    _add_activations_parser(commands)
    _add_export_parsers(commands)
    for name in LOADS_INTO_KERAS:
        commands.choices[name].add_argument(
            "--trust", action="store_true",
            help="load the file even if the safety check found code or paths in it (runs that code)")
        commands.choices[name].add_argument(
            "--custom-objects", metavar="FILE.py",
            help="Python file defining the model's own classes (subclassed models); runs it, needs --trust")
    options = parser.parse_args(args)
    from explorer.inputs.images import ImageError
    from explorer.layout.graphviz import LayoutError
    from explorer.model.files import ModelFileError, load_graph
    from explorer.runtime.errors import RuntimeFailure

    try:
        model_graph = load_graph(options.model)
    except ModelFileError as error:
        print(f"keras-explorer: {error}", file=sys.stderr)
        return 2 if options.command == "check" else 1
    if options.command == "check":
        for finding in model_graph.findings:
            print(finding)
        return 1 if model_graph.findings else 0
    for finding in model_graph.findings:
        print(f"finding: {finding}", file=sys.stderr)
    if options.command in LOADS_INTO_KERAS and model_graph.findings and not options.trust:
        print(f"keras-explorer: refusing to load {options.model} into Keras: the safety check found "
              f"{len(model_graph.findings)} thing(s) that could run code (listed above); pass --trust to load "
              "it anyway", file=sys.stderr)
        return 3
    try:
        if options.command == "summary":
            return _summary(model_graph, options.json)
        if options.command == "activations":
            from explorer.activations_cli import run_activations

            return run_activations(model_graph, options)
        if options.command in ("export", "features"):
            from explorer.export_cli import run_export, run_features

            return (run_export if options.command == "export" else run_features)(model_graph, options)
        return _graph(model_graph, options.output, options.expand)
    except (ModelFileError, LayoutError, RuntimeFailure, ImageError, ValueError, OSError) as error:
        print(f"keras-explorer: {error}", file=sys.stderr)
        return 1


def _add_export_parsers(commands: argparse._SubParsersAction) -> None:
    from explorer.inputs.images import PRESETS

    export = commands.add_parser(
        "export", help="save a verified feature extractor (.keras or SavedModel) for one or more layers",
        description="Write a model whose outputs are the given layers (a dict when several), then load it "
                    "back in a fresh process and compare its outputs with the original model's; exit code 2 "
                    "(and no file left) if they differ by more than 1e-6.")
    export.add_argument("model")
    export.add_argument("--layer", action="append", required=True, help="layer path; repeatable")
    export.add_argument("--call", type=int, action="append",
                        help="0-based call site: once for all layers, or once per --layer")
    export.add_argument("-o", "--output", required=True, help="OUT.keras, or a folder for a SavedModel")
    export.add_argument("--format", choices=("keras", "savedmodel"), help="default: from the output name")
    features = commands.add_parser(
        "features", help="run a layer over every image in a folder and save the features (.npz)")
    features.add_argument("model")
    features.add_argument("--layer", required=True)
    features.add_argument("--call", type=int, default=0)
    features.add_argument("--images", required=True, help="folder of images; unreadable ones are skipped")
    features.add_argument("--preprocess", choices=PRESETS[:-1], help="default: the suggested preset")
    features.add_argument("--batch-size", type=int, default=32)
    features.add_argument("-o", "--output", required=True, help="FEATS.npz with 'features' (N, ...) and 'files'")


def _add_activations_parser(commands: argparse._SubParsersAction) -> None:
    from explorer.inputs.images import PRESETS

    command = commands.add_parser(
        "activations", help="compute one layer's output on an image or array (runs TensorFlow)",
        description="Compute the output of one layer. A layer inside a nested model is named outer/inner.")
    command.add_argument("model")
    command.add_argument("--layer", required=True, help="layer path, e.g. conv1 or block/conv")
    command.add_argument("--call", type=int, default=0, help="0-based call site of a shared layer (default 0)")
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file, fitted to the model input")
    source.add_argument("--input", action="append", metavar="[NAME=]X.npy",
                        help="array fed as is (with or without the batch axis); NAME= picks the input of a "
                             "multi-input model; repeatable")
    command.add_argument("--preprocess", choices=PRESETS[:-1], help="preset for --image (default: suggested)")
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", help="GRID.png: the output drawn as in the window")
    target.add_argument("--npy", help="OUT.npy: the raw output for this input, batch axis removed")


def _summary(model_graph, as_json: bool) -> int:
    from explorer.model.summary import summary_dict, summary_text

    print(json.dumps(summary_dict(model_graph), indent=2) if as_json else summary_text(model_graph))
    return 0


def _graph(model_graph, output: str, expand: bool) -> int:
    from pathlib import Path

    suffix = Path(output).suffix.lower()
    if suffix not in (".svg", ".png"):
        raise ValueError(f"unsupported output '{output}': use a .svg or .png file name")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication, QGraphicsScene

    from explorer.layout.graphviz import compute_layout
    from explorer.layout.view_graph import build_view
    from explorer.ui.canvas.export import export_scene
    from explorer.ui.canvas.scene import box_sizes, populate_scene

    app = QApplication.instance() or QApplication(["keras-explorer"])
    view = build_view(model_graph, {n.path for n in model_graph.nodes if n.is_group} if expand else set())
    scene = QGraphicsScene()
    populate_scene(scene, view, compute_layout(view, box_sizes(view)))
    export_scene(scene, output)
    del scene, app
    print(output)
    return 0
