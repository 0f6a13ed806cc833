"""``keras-explorer check``: the static safety findings; exit 0 clean, 1 findings, 2 unreadable."""

from __future__ import annotations

import argparse

from explorer.cli.common import say
from explorer.model.files import ModelFileError, load_graph

NAME = "check"
UNREADABLE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(NAME, help="list what in the file could run code or touch the system",
                                   description="Static safety check; exit 0: clean, 1: findings, 2: unreadable.")
    parser.add_argument("model")


def run(options: argparse.Namespace) -> int:
    try:
        graph = load_graph(options.model)
    except ModelFileError as error:  # a verdict of its own here, not a failure of the command
        say(str(error))
        return UNREADABLE
    for finding in graph.findings:
        print(finding)
    return 1 if graph.findings else 0
