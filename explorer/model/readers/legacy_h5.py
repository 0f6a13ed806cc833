"""The legacy HDF5 file of ``model.save("x.h5")``: the config in the ``model_config`` attribute."""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from explorer.model.graph import Problem
from explorer.model.model_file import ModelFile, ModelFileError
from explorer.model.readers.hdf5 import read_legacy_weights, read_saved_weights, scan_hdf5, text_attr


def read_legacy_h5(path: Path) -> ModelFile:
    try:
        with h5py.File(path, "r") as h5:
            raw_config = h5.attrs.get("model_config")
            if raw_config is None:
                return _weights_only(path, h5)
            if isinstance(raw_config, bytes):
                raw_config = raw_config.decode("utf-8")
            metadata = {"keras_version": text_attr(h5.attrs.get("keras_version"))}
            weights = read_legacy_weights(h5)
            problems = () if "model_weights" in h5 else (  # both Keras 2's and Keras 3's loaders read it
                Problem(None, "the file holds no model_weights group: Keras refuses to load it"),)
            findings = scan_hdf5(h5, "HDF5 file", path.stat().st_size)
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise ModelFileError(path, f"damaged or truncated HDF5 file ({error})") from error
    try:
        config = json.loads(raw_config)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(path, f"the model config is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ModelFileError(path, "the model config does not describe a model")
    return ModelFile(path, config, metadata, weights, tuple(findings), problems=problems, file_format="legacy HDF5")

def _weights_only(path: Path, h5: h5py.File) -> ModelFile:
    """``save_weights`` output: Keras 2 (``layer_names`` on the root) or Keras 3 (``layers/<group>/vars``)."""
    weights = read_saved_weights(h5)
    if weights is None:
        raise ModelFileError(path, "an HDF5 file without a model config or Keras weights")
    metadata = {"keras_version": text_attr(h5.attrs.get("keras_version"))}
    findings = scan_hdf5(h5, "HDF5 file", path.stat().st_size, weights.datasets or None)
    return ModelFile(path, {}, metadata, weights, tuple(findings), weights_only=True,
                     file_format="weights-only HDF5 (save_weights)")
