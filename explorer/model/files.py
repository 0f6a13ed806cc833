"""Any model file -> LayerGraph, without TensorFlow: recognise the format, let its reader read it, check it.

No code from the file runs. One reader per format lives in explorer.model.readers; each is imported when a file
of its format is read, since they bring h5py and protobuf, which the window need not load before it paints.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from explorer.model.config_graph import MODEL_CLASSES, graph_from_config
from explorer.model.graph import LayerGraph
from explorer.model.model_file import ModelFile, ModelFileError
from explorer.model.origin import writer_of
from explorer.model.safety import scan_config
from explorer.model.weight_groups import with_unnamed_groups
from explorer.model.weights_graph import graph_of_weights

__all__ = ["EXPORT_METADATA_KEY", "ModelFileError", "load_graph", "read_model_file"]

EXPORT_METADATA_KEY = "keras_explorer_export"  # written into metadata.json by explorer.runtime.export
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_graph(path: str | os.PathLike[str], trusted_modules: tuple[str, ...] = (),
               weights: str | os.PathLike[str] | None = None) -> LayerGraph:
    """Read a model file and return its layer graph (with the safety findings); raises ModelFileError with a
    readable message. No code from the file runs. ``weights``: a save_weights file for an architecture JSON."""
    model_file = read_model_file(path, trusted_modules, weights)
    version = model_file.metadata.get("keras_version")
    origin = {"writer": writer_of(version, model_file.config), "file_format": model_file.file_format or None,
              "weights_file": None if model_file.weights_file is None else str(model_file.weights_file)}
    if model_file.weights_only:
        name = model_file.path.name.removesuffix(".h5").removesuffix(".weights")  # model.weights.h5: "model"
        return dataclasses.replace(graph_of_weights(model_file.weights, name, version, str(model_file.path),
                                                    model_file.findings), **origin)
    try:
        graph = graph_from_config(
            model_file.config,
            with_unnamed_groups(model_file.config, model_file.weights),
            keras_version=version,
            source=str(model_file.path),
            provenance=_provenance(model_file.metadata),
            findings=model_file.findings,
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as error:
        # A config Keras itself would not write (hand-edited, corrupted or hostile).
        raise ModelFileError(model_file.path, f"the model config could not be interpreted ({error!r})") from error
    return dataclasses.replace(graph, **origin, problems=(*model_file.problems, *graph.problems))


def _provenance(metadata: dict[str, Any]) -> dict[str, Any] | None:
    value = metadata.get(EXPORT_METADATA_KEY)
    return value if isinstance(value, dict) else None


def read_model_file(path: str | os.PathLike[str], trusted_modules: tuple[str, ...] = (),
                    weights: str | os.PathLike[str] | None = None) -> ModelFile:
    file_path = Path(path)
    if not file_path.exists():
        raise ModelFileError(file_path, "no such file")
    from explorer.model.readers.saved_model import read_saved_model, saved_model_folder

    folder = saved_model_folder(file_path)
    if folder is not None and weights is not None:
        raise ModelFileError(folder, "holds its own weights: only an architecture JSON takes a weights file")
    if folder is not None:
        model_file = read_saved_model(folder)
    elif file_path.is_dir():
        raise ModelFileError(file_path, "is a folder, but not a SavedModel (no saved_model.pb inside)")
    else:
        model_file = _read_file(file_path, None if weights is None else Path(weights))
    if not model_file.weights_only:
        _require_model(model_file)
    findings = [*model_file.findings, *scan_config(model_file.config, "config", trusted_modules)]
    for where, tree in model_file.other_configs:
        findings += scan_config(tree, where, trusted_modules)
    return dataclasses.replace(model_file, findings=tuple(findings))


def _read_file(file_path: Path, weights: Path | None) -> ModelFile:
    try:
        with open(file_path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise ModelFileError(file_path, f"cannot be read ({error.strerror})") from error
    if not head:
        raise ModelFileError(file_path, "the file is empty")
    is_json = head.lstrip().startswith(b"{")
    if weights is not None and not is_json:
        raise ModelFileError(file_path, "holds its own weights: only an architecture JSON takes a weights file")
    if head.startswith(ZIP_MAGIC):
        from explorer.model.readers.keras_zip import read_keras_archive

        return read_keras_archive(file_path)
    if head == HDF5_MAGIC:
        from explorer.model.readers.legacy_h5 import read_legacy_h5

        return read_legacy_h5(file_path)
    if is_json:
        from explorer.model.readers.json_arch import read_json_architecture

        return read_json_architecture(file_path, weights)
    raise ModelFileError(file_path, f"not a Keras model: {_describe(head)}")


def _describe(head: bytes) -> str:
    """Name what the file is, when it is something well known."""
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"PK\x05\x06", "an empty zip archive"), (b"%PDF", "a PDF document"),
                        (b"\x1f\x8b", "a gzip archive")):
        if head.startswith(magic):
            return f"it is {kind}"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a WebP image"
    return "neither a .keras zip archive, an HDF5 file nor an architecture JSON"


def _require_model(model_file: ModelFile) -> None:
    config = model_file.config
    module = str(config.get("module") or "")
    if module.startswith(("keras.layers", "keras.src.layers")) and config.get("class_name") not in MODEL_CLASSES:
        raise ModelFileError(model_file.path, f"holds a {config.get('class_name')} layer, not a model")


