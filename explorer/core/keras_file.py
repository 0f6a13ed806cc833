"""Read ``.keras`` archives and legacy ``.h5`` files into a LayerGraph without TensorFlow."""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from explorer.core.config_graph import MODEL_CLASSES, graph_from_config
from explorer.core.graph import LayerGraph
from explorer.core.safety import Finding, scan_config, scan_hdf5
from explorer.core.weights import WeightTree, read_legacy_weights, read_weight_tree

MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_RATIO = 100
MAX_COMPRESSED_WEIGHTS = 1 << 30
KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}
EXPORT_METADATA_KEY = "keras_explorer_export"  # written into metadata.json by explorer.core.export
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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


def load_graph(path: str | os.PathLike[str], trusted_modules: tuple[str, ...] = ()) -> LayerGraph:
    """Read a model file and return its layer graph (with the safety findings); raises ModelFileError with a
    readable message. No code from the file runs."""
    model_file = read_model_file(path, trusted_modules)
    try:
        return graph_from_config(
            model_file.config,
            model_file.weights,
            keras_version=model_file.metadata.get("keras_version"),
            source=str(model_file.path),
            provenance=_provenance(model_file.metadata),
            findings=model_file.findings,
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as error:
        # A config Keras itself would not write (hand-edited, corrupted or hostile).
        raise ModelFileError(model_file.path, f"the model config could not be interpreted ({error!r})") from error


def _provenance(metadata: dict[str, Any]) -> dict[str, Any] | None:
    value = metadata.get(EXPORT_METADATA_KEY)
    return value if isinstance(value, dict) else None


def read_model_file(path: str | os.PathLike[str], trusted_modules: tuple[str, ...] = ()) -> ModelFile:
    file_path = Path(path)
    if not file_path.exists():
        raise ModelFileError(file_path, "no such file")
    if file_path.is_dir():
        raise ModelFileError(file_path, "is a folder, not a model file")
    try:
        with open(file_path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise ModelFileError(file_path, f"cannot be read ({error.strerror})") from error
    if not head:
        raise ModelFileError(file_path, "the file is empty")
    if head.startswith(ZIP_MAGIC):
        model_file = _read_keras_archive(file_path)
    elif head == HDF5_MAGIC:
        model_file = _read_legacy_h5(file_path)
    else:
        raise ModelFileError(file_path, f"not a Keras model: {_describe(head)}")
    _require_model(model_file)
    findings = (*model_file.findings, *scan_config(model_file.config, "config", trusted_modules))
    return ModelFile(model_file.path, model_file.config, model_file.metadata, model_file.weights, findings)


def _describe(head: bytes) -> str:
    """Name what the file is, when it is something well known."""
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"PK\x05\x06", "an empty zip archive"), (b"%PDF", "a PDF document"),
                        (b"\x1f\x8b", "a gzip archive")):
        if head.startswith(magic):
            return f"it is {kind}"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a WebP image"
    return "neither a .keras zip archive nor an HDF5 file"


def _require_model(model_file: ModelFile) -> None:
    config = model_file.config
    module = str(config.get("module") or "")
    if module.startswith(("keras.layers", "keras.src.layers")) and config.get("class_name") not in MODEL_CLASSES:
        raise ModelFileError(model_file.path, f"holds a {config.get('class_name')} layer, not a model")


def _read_keras_archive(path: Path) -> ModelFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(path, f"damaged or truncated zip archive ({error})") from error
    with archive:
        zip_findings = _check_members(path, archive.infolist())
        names = set(archive.namelist())
        if "config.json" not in names:
            raise ModelFileError(path, "a zip archive but not a Keras model (no config.json inside)")
        config = _read_json_member(archive, "config.json", path)
        metadata = _read_json_member(archive, "metadata.json", path) if "metadata.json" in names else {}
        weights, weight_findings = WeightTree.empty(), []
        if "model.weights.h5" in names:
            weights, weight_findings = _read_archived_weights(path, archive.getinfo("model.weights.h5"))
    if not isinstance(config, dict):
        raise ModelFileError(path, "config.json does not describe a model")
    metadata = metadata if isinstance(metadata, dict) else {}
    return ModelFile(path, config, metadata, weights, (*zip_findings, *weight_findings))


def _check_members(path: Path, members: list[zipfile.ZipInfo]) -> list[Finding]:
    """Only what Keras writes, nothing escaping the archive, and sizes a zip bomb cannot inflate."""
    if len(members) > MAX_MEMBERS:
        raise ModelFileError(path, f"{len(members)} files in the archive; a Keras model has a handful")
    findings = []
    for info in members:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
            findings.append(Finding(f"archive member {name!r}", "a path outside the archive"))
        elif name not in KERAS_MEMBERS and not name.startswith("assets/"):
            findings.append(Finding(f"archive member {name!r}", "a file Keras does not write"))
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            if name in ("config.json", "metadata.json"):
                raise ModelFileError(path, f"{name} expands {info.file_size // max(info.compress_size, 1)}x: "
                                           "a zip bomb")
            findings.append(Finding(f"archive member {name!r}", "compressed more than 100:1 (a zip bomb)"))
    return findings


def _read_json_member(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    info = archive.getinfo(name)
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(path, f"{name} is {info.file_size} bytes, more than the {MAX_CONFIG_BYTES} allowed")
    try:
        return json.loads(archive.read(name))
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ModelFileError(path, f"{name} is damaged ({error})") from error
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(path, f"{name} is not valid JSON ({error})") from error


def _read_archived_weights(path: Path, info: zipfile.ZipInfo) -> tuple[WeightTree, list[Finding]]:
    """Open the weights member in place (only its metadata is read, not the values)."""
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as raw:
                raw.seek(info.header_offset + 26)
                name_length = int.from_bytes(raw.read(2), "little")
                extra_length = int.from_bytes(raw.read(2), "little")
            start = info.header_offset + 30 + name_length + extra_length
            with open(path, "rb") as raw:
                buffered = io.BufferedReader(_FileSlice(raw, start, info.file_size), 1 << 16)
                with h5py.File(buffered, "r") as h5:
                    tree = read_weight_tree(h5)
                    return tree, scan_hdf5(h5, "model.weights.h5", info.file_size, tree.datasets)
        if info.file_size > MAX_RATIO * max(info.compress_size, 1):
            return WeightTree.empty(), []  # a zip bomb, already reported by _check_members: never unpacked
        if info.file_size > MAX_COMPRESSED_WEIGHTS:
            raise ModelFileError(path, "the weights are compressed and too large to inspect")
        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(info)), "r") as h5:
            tree = read_weight_tree(h5)
            return tree, scan_hdf5(h5, "model.weights.h5", info.file_size, tree.datasets)
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, zipfile.BadZipFile) as error:
        # h5py reports corrupt structures as RuntimeError/TypeError as well as OSError.
        raise ModelFileError(path, f"the weights file inside is damaged or truncated ({error})") from error


def _read_legacy_h5(path: Path) -> ModelFile:
    try:
        with h5py.File(path, "r") as h5:
            raw_config = h5.attrs.get("model_config")
            if raw_config is None:
                raise ModelFileError(path, "an HDF5 file without a model config (weights only?)")
            if isinstance(raw_config, bytes):
                raw_config = raw_config.decode("utf-8")
            metadata = {"keras_version": _text_attr(h5.attrs.get("keras_version"))}
            weights = read_legacy_weights(h5)
            findings = scan_hdf5(h5, "HDF5 file", path.stat().st_size)
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise ModelFileError(path, f"damaged or truncated HDF5 file ({error})") from error
    try:
        config = json.loads(raw_config)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ModelFileError(path, f"the model config is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ModelFileError(path, "the model config does not describe a model")
    return ModelFile(path, config, metadata, weights, tuple(findings))


def _text_attr(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


class _FileSlice(io.RawIOBase):
    """A read-only, seekable window onto part of a file (an uncompressed zip member)."""

    def __init__(self, raw: io.BufferedReader, start: int, size: int) -> None:
        self._raw, self._start, self._size, self._pos = raw, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._size - self._pos)
        if count <= 0:
            return 0
        self._raw.seek(self._start + self._pos)
        data = self._raw.read(count)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
