"""Command line: ``keras-explorer [MODEL]`` opens the window; subcommands work headless.

Each command is a module with ``add_parser(subparsers)`` (its arguments) and ``run(options) -> exit code``;
``COMMANDS`` is the table main dispatches from, by module name: the window imports none of them (they bring
numpy, h5py and the runtime, which would delay its first paint). Errors are caught here, worded once
(common.describe).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from explorer.cli import window
from explorer.logs import setup_logging
from explorer.text import one_line

# The modules of explorer.cli, one per subcommand.
COMMANDS = ("summary", "graph", "check", "activations", "explain", "export", "features", "stats", "compare",
            "upgrade")

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``keras-explorer`` console script (and ``python -m explorer``); returns the exit code."""
    log_file = setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return _headless(args, log_file)
    parser = argparse.ArgumentParser(
        prog="keras-explorer",
        description="Explore a Keras model: layer graph, summary, layer properties. "
                    f"Headless subcommands: {', '.join(COMMANDS)} (see 'keras-explorer SUBCOMMAND -h').")
    window.add_arguments(parser)
    return window.run(parser.parse_args(args))


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"explorer.cli.{name}")


INTERRUPTED = 130  # as a shell reports a command ended by SIGINT


def _interrupted(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _headless(args: list[str], log_file: Path | None) -> int:
    from explorer.cli import common

    parser = argparse.ArgumentParser(prog="keras-explorer")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command_module(name).add_parser(subparsers)
    options = parser.parse_args(args)
    # A stop request (the window's Cancel, a scheduler ending the job) unwinds like Ctrl+C: outputs get closed.
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return command_module(options.command).run(options)
    except KeyboardInterrupt:
        common.say("interrupted")
        return INTERRUPTED
    except common.EXPECTED as error:
        text = common.describe(error)
        log.info("%s failed: %s", options.command, text, exc_info=True)
        common.say(text)
        return common.exit_code(error)
    except Exception as error:  # a bug: the user gets one line, the log gets the traceback
        log.exception("%s failed unexpectedly", options.command)
        common.say(f"unexpected {type(error).__name__}: {one_line(str(error))}"
                   + (f" (details in {log_file})" if log_file else ""))
        return 1
