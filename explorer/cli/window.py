"""No subcommand: ``keras-explorer [MODEL] [--image IMG]`` opens the window (Qt is imported only then)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The window takes the top-level parser: it has no subcommand of its own."""
    parser.add_argument("model", nargs="?", help=".keras or .h5 file to open (default: the bundled demo model)")
    parser.add_argument("--image", help="image to compute activations on (default: a bundled sample image)")


def run(options: argparse.Namespace) -> int:
    from explorer.ui.app import run_app

    return run_app(options.model, options.image)
