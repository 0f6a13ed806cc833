"""What every reader returns: the model config, metadata and weight shapes of one file; its errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.model.graph import Finding, Problem
from explorer.model.weights import WeightTree

JSON_FORMAT = "architecture JSON"  # ModelFile.file_format of model.to_json() files (with what weights follow)
SAVEDMODEL_FORMAT = "SavedModel with Keras 2 metadata"  # only Keras 2 writes keras_metadata.pb


def is_architecture_json(graph: Any) -> bool:
    """Whether a LayerGraph was read from an architecture JSON (its weights are in another file, if any)."""
    return (graph.file_format or "").startswith(JSON_FORMAT)


class ModelFileError(Exception):
    """A model file that cannot be read; ``reason`` is meant for the user, str() adds the path."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason

@dataclass(frozen=True)
class ModelFile:
    path: Path
    config: dict[str, Any]
    metadata: dict[str, Any]
    weights: WeightTree
    findings: tuple[Finding, ...] = ()
    weights_only: bool = False  # save_weights output: variables without an architecture
    problems: tuple[Problem, ...] = ()  # what Keras would refuse, found while reading the file
    file_format: str = ""  # what kind of file it is, for the user: "legacy HDF5", ".keras archive", ...
    # (where, tree): more of the file that Keras deserializes besides ``config``, checked like it (the metadata
    # of each object in a SavedModel's keras_metadata.pb, which tf-keras revives the layers from)
    other_configs: tuple[tuple[str, Any], ...] = ()
    weights_file: Path | None = None  # an architecture JSON's save_weights file, read with it (None: none found)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files with their names (a SavedModel): trust is remembered per exact
    content, so an edited file is not trusted."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
