"""Loading a model file into Keras safely, and the live model the worker holds.

Keras is imported inside the functions, so importing this module stays cheap; only the live-tier worker
process (and the headless commands) ever call them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.model.graph import InputSpec
from explorer.model.traced import Trace
from explorer.runtime.errors import CustomObjectsNeedTrust, RuntimeFailure, UntrustedFile
from explorer.runtime.keras_graph import graph_of, input_specs
from explorer.runtime.tracing import is_graph_model, trace_subclassed
from explorer.text import one_line

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_model(path: str | Path, trust: bool = False, file_graph: Any = None) -> Any:
    """Load a model file into Keras, never compiling it (no optimizer or loss code runs).

    The file is first checked statically (explorer.model.safety); a file with findings is refused unless
    ``trust`` is given, the user's explicit consent, which also lets Keras' safe mode allow Python code
    (Lambda layers). Loading runs under an audit hook that refuses sockets and new processes.
    ``file_graph``: the file's structure when the caller has already read it (the check is not repeated).
    """
    from explorer.runtime.guard import loading_guard

    file_graph = file_graph or read_file_graph(path)
    if file_graph.findings and not trust:
        raise UntrustedFile(Path(path).name, file_graph.findings)
    import keras

    from explorer.runtime.keras2 import is_keras2, load_as_keras3

    try:
        with loading_guard(allow_code=trust):
            if is_keras2(file_graph):  # Keras 3 cannot load these: tf-keras does, and they are rebuilt in Keras 3
                model = load_as_keras3(path, file_graph, trust)
            else:
                model = keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except RuntimeFailure:
        raise
    except Exception as error:  # Keras raises many types for bad files; all mean "cannot load"
        raise RuntimeFailure(f"Keras could not load {Path(path).name}: {one_line(str(error))}") from error
    if not isinstance(model, keras.Model):
        raise RuntimeFailure(f"{Path(path).name} holds a {type(model).__name__}, not a Keras model")
    return model

def read_file_graph(path: str | Path) -> Any:
    """The file's structure and safety findings (no Keras), with unreadable files as RuntimeFailure."""
    from explorer.model.files import ModelFileError, load_graph

    try:
        return load_graph(path)
    except ModelFileError as error:
        raise RuntimeFailure(f"{Path(path).name}: {error.reason}") from error

@dataclass
class LiveModel:
    """A loaded model ready for extraction: ``graph`` is the model, or the graph traced from a subclassed
    one (None when only eager recording worked)."""

    model: Any
    graph: Any
    specs: list[InputSpec]
    trace: Trace | None = None

def open_model(path: str | Path, trust: bool = False, custom_objects: str | None = None,
               file_graph: Any = None) -> LiveModel:
    """Load (see load_model), first running ``custom_objects`` (a Python file defining the model's classes,
    only with ``trust``); subclassed models are traced. ``file_graph`` as for load_model."""
    if custom_objects:
        if not trust:
            raise CustomObjectsNeedTrust()
        import runpy

        runpy.run_path(str(custom_objects), run_name="keras_explorer_custom_objects")
    file_graph = file_graph or read_file_graph(path)
    model = load_model(path, trust=trust, file_graph=file_graph)
    if is_graph_model(model):
        if file_graph.kind not in ("subclassed", "unknown"):
            return LiveModel(model, model, input_specs(model))
        # A Functional subclass (or a keras_hub backbone) whose file holds only constructor arguments: the
        # loaded model has the real graph, which the window can show (labelled as coming from the model).
        import json

        import keras

        graph = graph_of(model)
        config = {"module": "keras.src.models.functional", "class_name": "Functional",
                  "config": keras.Model(graph.inputs, graph.outputs).get_config()}
        trace = Trace("loaded model", json.dumps(config, default=str),
                      "the file stores only constructor arguments; this is the graph the loaded model built")
        return LiveModel(model, model, input_specs(model), trace)
    build = file_graph.model_config.get("build_config", {})
    shape = tuple(build.get("input_shape") or ()) if isinstance(build, dict) else ()
    if not shape:
        raise RuntimeFailure("the file records no input shape to trace this subclassed model with")
    traced, trace = trace_subclassed(model, shape)
    specs = input_specs(traced) if traced is not None else [InputSpec("input", tuple(shape[1:]), "float32")]
    return LiveModel(model, traced, specs, trace)
