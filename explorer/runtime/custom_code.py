"""The user's own Python file for a model: run behind trust, its Keras objects collected by name, and a model
built from a constructor call the user typed, with the weights of the opened file loaded into it.

Everything here runs code the user pointed at, so every entry point needs ``trust``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.runtime.errors import BuildNeedsCode, CustomObjectsNeedTrust, RuntimeFailure
from explorer.text import SHORT, one_line

RUN_NAME = "keras_explorer_custom_objects"  # the module name the file's classes and functions get
# Keras' own objects need no passing; a class imported from these is not the user's.
_LIBRARIES = ("keras", "tf_keras", "tensorflow", "keras_hub", "keras_nlp", "keras_cv")


@dataclass(frozen=True)
class CustomCode:
    """A custom-objects file after it ran: its namespace (where a build expression is evaluated) and the
    objects Keras' ``load_model`` gets as ``custom_objects``."""

    path: str
    namespace: dict[str, Any] = field(repr=False)
    objects: dict[str, Any] = field(repr=False)


def run_custom_code(path: str | Path, trust: bool) -> CustomCode:
    """Run the file (registering what it registers) and collect its Keras objects; only with ``trust``."""
    if not trust:
        raise CustomObjectsNeedTrust()
    import runpy

    try:
        namespace = runpy.run_path(str(path), run_name=RUN_NAME)
    except (Exception, SystemExit) as error:  # the user's file failing is a message for the user, not a crash
        raise RuntimeFailure(f"the custom-objects file {Path(path).name} failed: "
                             f"{one_line(f'{type(error).__name__}: {error}')}") from error
    return CustomCode(str(path), namespace, keras_objects(namespace))


def keras_objects(namespace: dict[str, Any]) -> dict[str, Any]:
    """What ``custom_objects={...}`` would hold: every Keras-serializable class (layers and models, losses,
    metrics, initializers, regularizers, constraints, schedules) not from Keras itself, and every function the
    file defines, under its name in the file and its own name (the one a saved config uses)."""
    import keras

    kinds = (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric, keras.initializers.Initializer,
             keras.regularizers.Regularizer, keras.constraints.Constraint,
             keras.optimizers.schedules.LearningRateSchedule)
    found: dict[str, Any] = {}
    for name, value in namespace.items():
        if name.startswith("__"):
            continue
        if inspect.isclass(value):
            if not issubclass(value, kinds) or value.__module__.partition(".")[0] in _LIBRARIES:
                continue
        elif not (inspect.isfunction(value) and value.__module__ == RUN_NAME):
            continue  # functions imported into the file are not its own
        found[name] = value
        found.setdefault(value.__name__, value)
    return found


def build_from_code(code: CustomCode | None, expression: str) -> Any:
    """Evaluate the constructor call ``expression`` (e.g. ``Net(pretrained=False)``) in the file's namespace."""
    if code is None:
        raise BuildNeedsCode()
    import keras

    shown = one_line(expression, SHORT)
    try:
        built = eval(expression, code.namespace)  # the user's own code, reached only behind trust
    except Exception as error:
        raise RuntimeFailure(f"building the model with {shown} failed: "
                             f"{one_line(f'{type(error).__name__}: {error}')}") from error
    if not isinstance(built, keras.Model):
        raise RuntimeFailure(f"{shown} gives a {type(built).__name__}, not a Keras model")
    return built


def load_weights_into(model: Any, path: str | Path, build_config: dict[str, Any] | None) -> Any:
    """Build ``model`` on the file's recorded input shape if the constructor did not, then load the file's
    weights (a ``.keras`` file or a ``save_weights`` file) into it; returns the model."""
    from explorer.runtime.guard import loading_guard

    name = Path(path).name
    if not model.built and build_config:
        try:
            # As Keras' own deserialization does (build_from_config builds the sublayers, not the flag).
            model.build_from_config(build_config)
            model.built = True
        except Exception as error:
            raise RuntimeFailure(f"the model built from code could not be built on {name}'s input shape: "
                                 f"{one_line(f'{type(error).__name__}: {error}')}") from error
    if not model.built:
        raise RuntimeFailure(f"the model built from code is not built and {name} records no input shape: give "
                             "the input shape to build it on (--input-shape on the command line)")
    try:
        with loading_guard(allow_code=True):
            model.load_weights(str(path))
    except Exception as error:  # mismatched or missing variables: Keras says which
        raise RuntimeFailure(f"the weights in {name} do not fit the model built from code: "
                             f"{one_line(f'{type(error).__name__}: {error}')}") from error
    return model
