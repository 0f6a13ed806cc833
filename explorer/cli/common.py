"""What the headless commands share: reading the file, the trust options, layer targets, and error wording.

The core raises structured errors whose text names no flag; this module is the one place that words them for
the command line, with the flags that fix them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from explorer.inputs.images import ImageError, Preprocessing
from explorer.inputs.sources import suggested_preprocessing
from explorer.layout.graphviz import LayoutError
from explorer.live.protocol import BuildFromCode
from explorer.model.files import ModelFileError, load_graph
from explorer.model.graph import LayerGraph, Target
from explorer.model.traced import traced_graph
from explorer.runtime.errors import (
    ArchitectureWithoutWeights,
    CallSiteOutOfRange,
    CustomObjectsNeedTrust,
    NotRebuildable,
    RuntimeFailure,
    UnknownLayer,
    UntrustedFile,
)
from explorer.runtime.loading import LiveModel, open_model
from explorer.text import parse_shape

PREFIX = "keras-explorer: "
REFUSED = 3  # exit code of a Keras-loading command refusing a file with findings


class CommandError(Exception):
    """Something the command itself refuses (its options do not fit the model); the message names the flags."""


# Bad input the user can fix: one line on stderr, exit 1 (anything else is a bug, logged with its traceback).
EXPECTED = (ModelFileError, LayoutError, RuntimeFailure, ImageError, ValueError, OSError, CommandError)


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that load the file into Keras (and so may run code it holds)."""
    parser.add_argument("--trust", action="store_true",
                        help="load the file even if the safety check found code or paths in it (runs that code)")
    parser.add_argument("--custom-objects", metavar="FILE.py",
                        help="Python file defining the model's own classes and functions (registered or not); "
                             "runs it, needs --trust")
    parser.add_argument("--build", metavar="EXPR",
                        help="build the model from code instead of from the file: a constructor call such as "
                             "'Net(pretrained=False)', evaluated in --custom-objects FILE.py (needs --trust); "
                             "the file's weights are loaded into it (a .keras or a .weights.h5 file)")
    parser.add_argument("--weights", metavar="FILE.h5",
                        help="for an architecture JSON (model.to_json()): its save_weights file, when it is not "
                             "saved beside the JSON")
    parser.add_argument("--input-shape", metavar="SHAPE", type=_shape_option,
                        help="with --build: the input shape without the batch axis (e.g. 224,224,3) to build the "
                             "model on, when neither its constructor nor the file (a weights-only file) gives one")


def _shape_option(text: str) -> tuple[int | None, ...]:
    try:
        return parse_shape(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def open_live(options: argparse.Namespace, graph: LayerGraph) -> LiveModel:
    """The model loaded into Keras with the trust options (see add_trust_options)."""
    if options.build and not options.custom_objects:
        raise CommandError("--build needs --custom-objects FILE.py, the file defining what it calls")
    if options.input_shape and not options.build:
        raise CommandError("--input-shape is for a model built from code: give --build too")
    build = BuildFromCode(options.build, options.input_shape or ()) if options.build else None
    return open_model(options.model, options.trust, options.custom_objects, graph, build)


def read_model(path: str, weights: str | None = None) -> LayerGraph:
    """The file's structure, what Keras would refuse and its safety findings said on stderr (reading runs no code
    from the file)."""
    graph = load_graph(path, weights=weights)
    for problem in graph.problems:
        print(f"problem: {problem}", file=sys.stderr)
    for finding in graph.findings:
        print(f"finding: {finding}", file=sys.stderr)
    return graph


def read_loadable(options: argparse.Namespace) -> LayerGraph:
    """As read_model, for a command that goes on to load the file into Keras: refused unless ``--trust``
    when the safety check found something, and never when Keras would refuse the file."""
    graph = read_model(options.model, options.weights)
    if any(problem.blocking for problem in graph.problems):
        raise CommandError("Keras would refuse this file (the problem above): nothing was loaded")
    if graph.findings and not options.trust:
        raise UntrustedFile(options.model, graph.findings)
    return graph


def chosen_preprocessing(graph: LayerGraph, preset: str | None) -> Preprocessing:
    """The --preprocess preset, else the suggested one (said on stderr, so the user knows what was fed)."""
    if preset:
        return Preprocessing(preset)
    preprocessing = suggested_preprocessing(graph)
    print(f"preprocessing: {preprocessing.preset} ({preprocessing.reason})", file=sys.stderr)
    return preprocessing


def early_targets(options: argparse.Namespace, graph: LayerGraph, layers: list[str],
                  calls: list[int] | None) -> list[Target] | None:
    """The targets checked against the file before TensorFlow loads; None when the file does not list the model's
    layers (subclassed, weights only, or built with --build): loaded_targets checks them on the loaded model."""
    if not graph.lists_layers or options.build:
        return None
    return resolve_targets(graph, layers, calls)


def loaded_targets(graph: LayerGraph, live: LiveModel, layers: list[str], calls: list[int] | None) -> list[Target]:
    """The targets checked against the model as the worker loaded it (the graph it traced, if it traced one)."""
    return resolve_targets(traced_graph(live.trace, graph) if live.trace else graph, layers, calls)


def resolve_targets(graph: LayerGraph, layers: list[str], calls: list[int] | None) -> list[Target]:
    """Pair ``--layer`` and ``--call``: given once, ``--call`` applies to every layer; repeated, in order."""
    calls = calls or [0]
    if len(calls) not in (1, len(layers)):
        raise CommandError(f"give --call once or once per --layer ({len(layers)} layers, {len(calls)} calls)")
    targets = []
    for index, layer in enumerate(layers):
        if layer not in graph:
            raise UnknownLayer(layer, graph.name)
        sites = graph.call_sites(layer)
        call = calls[index if len(calls) > 1 else 0]
        if not 0 <= call < len(sites):
            raise CallSiteOutOfRange(layer, call, len(sites))
        targets.append(Target(layer, sites[call]))
    return targets


def describe(error: BaseException) -> str:
    """The error as the command line says it: the core's structured errors with the flags that fix them."""
    if isinstance(error, UntrustedFile):
        return (f"refusing to load {error.file} into Keras: the safety check found {len(error.findings)} "
                "thing(s) that could run code (listed above); pass --trust to load it anyway")
    if isinstance(error, CustomObjectsNeedTrust):
        return "custom objects are Python code: trust the file to run them (--trust)"
    if isinstance(error, NotRebuildable):
        return (f"Keras could not load {error.file}: {error.reason}; its class cannot be rebuilt from the saved "
                "config: build it from code with --build 'Class(...)' --custom-objects FILE.py --trust")
    if isinstance(error, ArchitectureWithoutWeights):
        return (f"{error.file} is an architecture without weights: give its save_weights file with --weights "
                "FILE.h5 (computing without them would show random numbers)")
    if isinstance(error, UnknownLayer):
        return f"no layer '{error.layer}' in {error.model_name} (see 'keras-explorer summary')"
    if isinstance(error, CallSiteOutOfRange):
        return (f"layer '{error.layer}' runs at {error.call_count} call site(s): "
                f"--call 0..{error.call_count - 1}")
    return str(error)


def exit_code(error: BaseException) -> int:
    return REFUSED if isinstance(error, UntrustedFile) else 1


def say(text: str) -> None:
    """One error line on stderr."""
    print(PREFIX + text, file=sys.stderr)


def progress_bar(started: float) -> Callable[[int, int], None]:
    """A one-line bar on stderr, redrawn in place: done/total images and the rate since ``started``."""
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total} images, {rate:.1f}/s", end="",
              file=sys.stderr, flush=True)
    return show
