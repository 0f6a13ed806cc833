"""``keras-explorer export``: save a verified feature extractor for one or more layers, headless."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from explorer.cli.common import add_trust_options, early_targets, loaded_targets, open_live, read_loadable
from explorer.runtime.export import FORMATS, export_live, format_for

NAME = "export"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="save a verified feature extractor (.keras or SavedModel) for one or more layers",
        description="Write a model whose outputs are the given layers (a dict when several), then load it "
                    "back in a fresh process and compare its outputs with the original model's; exit code 2 "
                    "(and no file left) if they differ by more than 1e-6.")
    parser.add_argument("model")
    parser.add_argument("--layer", action="append", required=True, help="layer path; repeatable")
    parser.add_argument("--call", type=int, action="append",
                        help="0-based call site: once for all layers, or once per --layer")
    parser.add_argument("-o", "--output", required=True,
                        help="OUT.keras, OUT.h5 (a tf-keras legacy file, for a file Keras 2 wrote), or a folder for "
                             "a SavedModel")
    parser.add_argument("--format", choices=FORMATS, help="default: from the output name")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    graph = read_loadable(options)
    early = early_targets(options, graph, options.layer, options.call)
    live = open_live(options, graph)
    targets = early or loaded_targets(graph, live, options.layer, options.call)
    rng = np.random.default_rng(0)  # a fixed input in the pixel range for the verification run
    inputs = {s.name: rng.uniform(0, 255, tuple(64 if d is None else d for d in s.shape)).astype(np.float32)
              for s in live.specs}
    report = export_live(live, options.model, targets, options.output,
                              options.format or format_for(options.output), inputs, options.trust,
                              options.custom_objects)
    print(f"{report.path}: {report.message}", file=sys.stdout if report.verified else sys.stderr)
    return 0 if report.verified else 2

