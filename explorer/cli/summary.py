"""``keras-explorer summary``: the summary table, or JSON (no TensorFlow needed)."""

from __future__ import annotations

import argparse
import json

from explorer.cli.common import read_model
from explorer.model.summary import summary_dict, summary_text

NAME = "summary"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(NAME, help="print the model summary (no TensorFlow needed)")
    parser.add_argument("model")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--weights", metavar="FILE.h5",
                        help="the save_weights file of an architecture JSON (default: the one beside it)")


def run(options: argparse.Namespace) -> int:
    graph = read_model(options.model, options.weights)
    print(json.dumps(summary_dict(graph), indent=2) if options.json else summary_text(graph))
    return 0
