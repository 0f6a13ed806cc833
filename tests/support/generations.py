"""The files older Keras generations wrote (tests/fixtures/make_generations.py) and what each Keras reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

GENERATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "generations"
MANIFEST: dict[str, dict] = json.loads((GENERATIONS / "manifest.json").read_text())
# What Keras wrote and read back; the rest (a plain TensorFlow SavedModel) holds no Keras model at all.
KERAS_FILES: dict[str, dict] = {name: facts for name, facts in MANIFEST.items() if facts.get("keras_metadata", True)}


def edited_copy(name: str, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the legacy .h5 fixture ``name`` at ``target`` with its model config changed by ``edit``, as
    someone editing the file by hand (or an attacker) would."""
    import h5py

    target.write_bytes((GENERATIONS / name).read_bytes())
    with h5py.File(target, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        edit(config)
        h5.attrs["model_config"] = json.dumps(config)
    return target


def calling(function: str) -> Callable[[dict[str, Any]], None]:
    """An edit: the config's first TFOpLambda calls this TensorFlow function instead."""
    def edit(config: dict[str, Any]) -> None:
        op = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "TFOpLambda")
        op["config"]["function"] = function
    return edit
