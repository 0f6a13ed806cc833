"""``keras-explorer activations``: one layer's output on one input, written as a picture or an array."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from explorer.cli.common import (
    CommandError,
    add_trust_options,
    chosen_preprocessing,
    early_targets,
    loaded_targets,
    open_live,
    read_loadable,
)
from explorer.inputs.images import PRESETS, load_image
from explorer.inputs.sources import IMAGE, ZEROS, InputSource, file_input_specs, load_npy, prepare_input
from explorer.model.graph import InputSpec, LayerGraph
from explorer.runtime.extraction import extract

NAME = "activations"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="compute one layer's output on an image or array (runs TensorFlow)",
        description="Compute the output of one layer. A layer inside a nested model is named outer/inner.")
    parser.add_argument("model")
    parser.add_argument("--layer", required=True, help="layer path, e.g. conv1 or block/conv")
    parser.add_argument("--call", type=int, default=0, help="0-based call site of a shared layer (default 0)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file, fitted to the model input")
    source.add_argument("--input", action="append", metavar="[NAME=]X.npy",
                        help="array fed as is (with or without the batch axis); NAME= picks the input of a "
                             "multi-input model; repeatable")
    parser.add_argument("--preprocess", choices=PRESETS[:-1], help="preset for --image (default: suggested)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", help="GRID.png: the output drawn as in the window")
    target.add_argument("--npy", help="OUT.npy: the raw output for this input, batch axis removed")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    graph = read_loadable(options)
    early = early_targets(options, graph, [options.layer], [options.call])
    # Inputs first, from the file's own input shapes: a bad image or array is reported before TensorFlow loads.
    file_specs = file_input_specs(graph)
    inputs = _prepare(graph, file_specs, options) if file_specs else None
    live = open_live(options, graph)
    specs = live.specs
    if live.trace:
        print(f"traced ({live.trace.method}): {live.trace.note}", file=sys.stderr)
    if inputs is None or set(inputs) != {s.name for s in specs}:
        inputs = _prepare(graph, specs, options)
    (target,) = early or loaded_targets(graph, live, [options.layer], [options.call])
    outputs = extract(live, target.layer, target.call_site, inputs)
    written = _write(outputs, options)
    for path in written:
        print(path)
    return 0


def _prepare(graph: LayerGraph, specs: list[InputSpec], options: argparse.Namespace) -> dict:
    return _inputs_from_arrays(specs, options.input) if options.input else _inputs_from_image(graph, specs, options)


def _inputs_from_image(graph: LayerGraph, specs: list[InputSpec], options: argparse.Namespace) -> dict:
    image = load_image(options.image)
    preprocessing = chosen_preprocessing(graph, options.preprocess)
    arrays = {}
    for position, spec in enumerate(specs):
        source = InputSource(IMAGE if position == 0 else ZEROS)
        arrays[spec.name] = prepare_input(spec, source, image, preprocessing).array
    return arrays


def _inputs_from_arrays(specs: list[InputSpec], values: list[str]) -> dict:
    named = dict(value.split("=", 1) if "=" in value and not os.path.exists(value) else ("", value)
                 for value in values)
    if "" in named and len(specs) > 1:
        raise CommandError(f"the model has {len(specs)} inputs ({', '.join(s.name for s in specs)}): "
                           "pass --input NAME=X.npy for each")
    arrays = {}
    for spec in specs:
        path = named.get(spec.name, named.get("") if len(specs) == 1 else None)
        if path is None:
            raise CommandError(f"no --input given for model input '{spec.name}'")
        arrays[spec.name] = load_npy(path, spec)
    return arrays


def _write(outputs: list[np.ndarray], options: argparse.Namespace) -> list[Path]:
    target = Path(options.npy or options.output)
    paths = [target] if len(outputs) == 1 else [
        target.with_name(f"{target.stem}_{index}{target.suffix}") for index in range(len(outputs))]
    for path, output in zip(paths, outputs, strict=True):
        if options.npy:
            np.save(path, output)
        else:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            from explorer.ui.activations.feature_export import save_output_png

            save_output_png(output, path)
    return paths
