"""``keras-explorer upgrade``: Save as Keras 3, headless: the whole model as a verified Keras 3 ``.keras`` file."""

from __future__ import annotations

import argparse
import sys

from explorer.cli.common import add_trust_options, read_loadable
from explorer.runtime.keras3_file import save_as_keras3

NAME = "upgrade"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="save the model as a Keras 3 .keras file (Keras 2 / tf.keras files included), verified",
        description="Rebuild the model in Keras 3 (a Keras 2 file is loaded with tf-keras, its TensorFlow op "
                    "layers become keras.ops operations) and write it; a fresh process then loads it with plain "
                    "Keras in safe mode and compares its outputs with the original's on a fixed input. Exit code "
                    "2, and no file written, when they differ or Keras cannot load it.")
    parser.add_argument("model")
    parser.add_argument("-o", "--output", required=True, help="NEW.keras")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    graph = read_loadable(options)
    report = save_as_keras3(options.model, graph, options.output, trust=options.trust)
    print(f"{report.path}: {report.message}", file=sys.stdout if report.verified else sys.stderr)
    return 0 if report.verified else 2
