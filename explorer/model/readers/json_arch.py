"""An architecture JSON (``model.to_json()``), with the weights saved beside it when there are any.

``model.json`` pairs with ``model.weights.h5`` (Keras 3 ``save_weights``), ``model.h5`` or ``model_weights.h5``
(Keras 2 ``save_weights``): the first that exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from explorer.model.graph import Finding
from explorer.model.model_file import JSON_FORMAT, ModelFile, ModelFileError
from explorer.model.readers.hdf5 import read_saved_weights, scan_hdf5
from explorer.model.safety import MAX_CONFIG_BYTES
from explorer.model.weights import WeightTree

WEIGHT_SUFFIXES = (".weights.h5", ".h5", "_weights.h5")


def weights_beside(path: Path) -> Path | None:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return next((path.with_name(stem + suffix) for suffix in WEIGHT_SUFFIXES
                 if path.with_name(stem + suffix).is_file()), None)


def read_json_architecture(path: Path, weights_file: Path | None = None) -> ModelFile:
    """``weights_file``: the one the user chose (File > Open Weights…), else the one beside the JSON."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ModelFileError(path, f"{size} bytes of JSON, more than the {MAX_CONFIG_BYTES} allowed")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(path, f"not valid JSON ({error})") from error
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ModelFileError(path, "a JSON file, but not a Keras model architecture (model.to_json())")
    metadata = {"keras_version": config.get("keras_version")}
    weights, findings, file_format = WeightTree.empty(), [], f"{JSON_FORMAT}, no weights beside it"
    partner = weights_file or weights_beside(path)
    if partner is not None:
        weights, findings = _read_weights(partner)
        file_format = f"{JSON_FORMAT} with the weights of {partner.name}"
    return ModelFile(path, config, metadata, weights, tuple(findings), file_format=file_format,
                     weights_file=partner)


def _read_weights(path: Path) -> tuple[WeightTree, list[Finding]]:
    if not path.is_file():
        raise ModelFileError(path, "no such weights file")
    try:
        with h5py.File(path, "r") as h5:
            tree = read_saved_weights(h5)
            if tree is None:
                raise ModelFileError(path, "an HDF5 file, but not Keras weights (save_weights)")
            return tree, scan_hdf5(h5, path.name, path.stat().st_size, tree.datasets or None)
    except (OSError, RuntimeError, TypeError, ValueError, KeyError) as error:
        raise ModelFileError(path, f"the weights file is damaged or truncated ({error})") from error
