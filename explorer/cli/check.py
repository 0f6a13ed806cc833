"""``keras-explorer check``: what Keras would refuse and the static safety findings; exit 0 clean, 1 problems or
findings, 2 unreadable."""

from __future__ import annotations

import argparse

from explorer.cli.common import say
from explorer.model.files import ModelFileError, load_graph

NAME = "check"
UNREADABLE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(NAME, help="list what Keras would refuse in the file and what could run code",
                                   description="Static check: what Keras would refuse to load, and what in the "
                                               "file could run code or touch the system; exit 0: clean, "
                                               "1: problems or findings, 2: unreadable.")
    parser.add_argument("model")


def run(options: argparse.Namespace) -> int:
    try:
        graph = load_graph(options.model)
    except ModelFileError as error:  # a verdict of its own here, not a failure of the command
        say(str(error))
        return UNREADABLE
    for problem in graph.problems:
        print(f"Keras would refuse: {problem}")
    for finding in graph.findings:
        print(finding)
    return 1 if graph.findings or graph.problems else 0
