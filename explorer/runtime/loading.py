"""Loading a model file into Keras safely, and the live model the worker holds.

Keras is imported inside the functions, so importing this module stays cheap; only the live-tier worker
process (and the headless commands) ever call them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.live.protocol import BuildFromCode
from explorer.model.graph import InputSpec
from explorer.model.model_file import is_architecture_json
from explorer.model.traced import Trace
from explorer.runtime.architecture_json import architecture_weights, keras3_from_json
from explorer.runtime.custom_code import CustomCode, build_from_code, load_weights_into, run_custom_code
from explorer.runtime.errors import BuildNeedsCode, NotRebuildable, RuntimeFailure, UntrustedFile
from explorer.runtime.keras2 import Keras2Model, is_keras2, open_keras2
from explorer.runtime.keras_graph import graph_of, input_specs
from explorer.runtime.tracing import is_graph_model, trace_subclassed
from explorer.text import SHORT, one_line

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_model(path: str | Path, trust: bool = False, file_graph: Any = None,
               custom_objects: dict[str, Any] | None = None) -> Any:
    """Load a model file into Keras, never compiling it (no optimizer or loss code runs).

    The file is first checked statically (explorer.model.safety); a file with findings is refused unless
    ``trust`` is given, the user's explicit consent, which also lets Keras' safe mode allow Python code
    (Lambda layers). Loading runs under an audit hook that refuses sockets and new processes.
    ``file_graph``: the file's structure when the caller has already read it (the check is not repeated).
    ``custom_objects``: classes and functions by name, as Keras' ``load_model`` takes them.
    Files Keras 2 wrote are opened by open_model with tf-keras (explorer.runtime.keras2).
    """
    from explorer.runtime.guard import loading_guard

    file_graph = file_graph or read_file_graph(path)
    refuse_untrusted(path, file_graph, trust)
    import keras

    try:
        with loading_guard(allow_code=trust):
            objects = {**unmarked_operations(path, file_graph), **(custom_objects or {})}
            if is_architecture_json(file_graph):
                model = keras3_from_json(path, file_graph, objects or None, trust)
            else:
                model = keras.saving.load_model(path, custom_objects=objects or None, compile=False,
                                                safe_mode=not trust)
    except RuntimeFailure:
        raise
    except Exception as error:  # Keras raises many types for bad files; all mean "cannot load"
        reason = _keras_reason(str(error))
        if _CONSTRUCTOR_MISMATCH in reason:
            raise NotRebuildable(Path(path).name, one_line(reason)) from error
        raise RuntimeFailure(f"Keras could not load {Path(path).name}: {one_line(reason)}") from error
    if not isinstance(model, keras.Model):
        raise RuntimeFailure(f"{Path(path).name} holds a {type(model).__name__}, not a Keras model")
    return model

def refuse_untrusted(path: str | Path, file_graph: Any, trust: bool) -> None:
    """UntrustedFile when the static check found code and the user has not trusted the file."""
    if file_graph.findings and not trust:
        raise UntrustedFile(Path(path).name, file_graph.findings)

# Keras wraps the error of a class that fails to deserialize in paragraphs of advice; the cause comes last.
_CAUSE_MARKERS = ("Error encountered during deserialization:", "Exception encountered:")
_CONSTRUCTOR_MISMATCH = "got an unexpected keyword argument"


def _keras_reason(message: str) -> str:
    """The innermost cause of a Keras loading error (the whole message when it has no marked cause)."""
    for marker in _CAUSE_MARKERS:
        if marker in message:
            return message.rpartition(marker)[2].strip()
    return message

def unmarked_operations(path: str | Path, file_graph: Any) -> dict[str, Any]:
    """keras.ops operations a Keras 3 legacy .h5 holds without their module (explorer.runtime.keras3_h5), by name."""
    from explorer.model.files import read_model_file
    from explorer.model.known_classes import keras_operations
    from explorer.runtime.keras3_h5 import operation_objects

    if not any(node.module is None and node.class_name in keras_operations() for node in file_graph.nodes):
        return {}
    return operation_objects(read_model_file(path).config)


def read_file_graph(path: str | Path, weights: str | None = None) -> Any:
    """The file's structure and safety findings (no Keras), with unreadable files as RuntimeFailure;
    ``weights``: an architecture JSON's save_weights file (else the one beside it)."""
    from explorer.model.files import ModelFileError, load_graph

    try:
        return load_graph(path, weights=weights)
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
    keras2: Keras2Model | None = None  # a Keras 2 file: tf-keras computes, and ``graph`` is None

    def keras3_graph(self) -> Any:
        """The Keras 3 graph model exports are cut from: for a Keras 2 file its checked Keras 3 rebuild (built on
        first use); None for a subclassed model that could only be recorded."""
        return self.keras2.twin() if self.keras2 is not None else self.graph

def open_model(path: str | Path, trust: bool = False, custom_objects: str | None = None,
               file_graph: Any = None, build: BuildFromCode | None = None, weights: str | None = None) -> LiveModel:
    """Load (see load_model), first running ``custom_objects`` (a Python file defining the model's classes,
    only with ``trust``), whose Keras objects are passed to Keras by name; subclassed models are traced.

    ``build``: instead of letting Keras rebuild the model from the file, evaluate its constructor call (e.g.
    ``Net(pretrained=False)``) in the custom-objects file, build it on its input shape if needed, and load the
    file's weights into it: for classes Keras cannot rebuild, and for weights-only files. ``file_graph`` as for
    load_model; ``weights`` as for read_file_graph."""
    if build and not custom_objects:
        raise BuildNeedsCode()
    file_graph = file_graph or read_file_graph(path, weights)
    if is_architecture_json(file_graph) and not build:
        architecture_weights(path, file_graph)  # refused before any code runs or TensorFlow works
    code = run_custom_code(custom_objects, trust) if custom_objects else None
    if build:
        model = _built(code, build, path, file_graph)
    elif is_keras2(file_graph):  # Keras 3 cannot load most of these; tf-keras can
        refuse_untrusted(path, file_graph, trust)
        from explorer.runtime.guard import loading_guard

        with loading_guard(allow_code=trust):
            source = open_keras2(path, file_graph, trust)
        return LiveModel(source.model, None, source.specs, keras2=source)
    else:
        model = load_model(path, trust=trust, file_graph=file_graph, custom_objects=code and code.objects)
    if is_graph_model(model):
        if file_graph.lists_layers:
            return LiveModel(model, model, input_specs(model))
        # A Functional subclass (or a keras_hub backbone) whose file holds only constructor arguments: the
        # loaded model has the real graph, which the window can show (labelled as coming from the model).
        import json

        import keras

        graph = graph_of(model)
        config = {"module": "keras.src.models.functional", "class_name": "Functional",
                  "config": keras.Model(graph.inputs, graph.outputs).get_config()}
        built = one_line(str(build), SHORT)
        note = (f"the graph of the model built by {built}, with the file's weights" if build else
                "the file stores only constructor arguments; this is the graph the loaded model built")
        trace = Trace("loaded model", json.dumps(config, default=str), note)
        return LiveModel(model, model, input_specs(model), trace)
    # A model built from code records the shape it was built on when the file (weights only) does not.
    build_config = _file_build_config(file_graph)
    if build and not build_config:
        build_config = model.get_build_config() or {}
    shape = tuple(build_config.get("input_shape") or ())
    if not shape:
        raise RuntimeFailure("the file records no input shape to trace this subclassed model with")
    traced, trace = trace_subclassed(model, shape)
    specs = input_specs(traced) if traced is not None else [InputSpec("input", tuple(shape[1:]), "float32")]
    return LiveModel(model, traced, specs, trace)


def _file_build_config(file_graph: Any) -> dict[str, Any]:
    build_config = file_graph.model_config.get("build_config", {})
    return build_config if isinstance(build_config, dict) else {}


def _built(code: CustomCode | None, build: BuildFromCode, path: str | Path, file_graph: Any) -> Any:
    """The model built from code with the file's weights in it (both are the user's code: trust was checked
    when the custom-objects file ran)."""
    model = build_from_code(code, build.call)
    given = {"input_shape": [None, *build.input_shape]} if build.input_shape else {}
    return load_weights_into(model, path, _file_build_config(file_graph) or given)
