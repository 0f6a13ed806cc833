"""The ``.keras`` zip archive (Keras 3, and tf.keras 2.13+): config.json, metadata.json, model.weights.h5."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py

from explorer.model.graph import Finding, Problem
from explorer.model.model_file import ModelFile, ModelFileError
from explorer.model.readers.hdf5 import read_weight_tree, scan_hdf5
from explorer.model.safety import MAX_COMPRESSED_WEIGHTS, MAX_CONFIG_BYTES, MAX_RATIO, scan_members
from explorer.model.weights import WeightTree

WEIGHT_MEMBERS = {"model.weights.h5", "model.weights.npz"}  # Keras refuses an archive with neither


def read_keras_archive(path: Path) -> ModelFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(path, f"damaged or truncated zip archive ({error})") from error
    with archive:
        zip_findings = scan_members(path, archive.infolist())
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
    problems = () if names & WEIGHT_MEMBERS else (
        Problem(None, "the archive holds no model.weights.h5 (nor .npz): Keras refuses to load it"),)
    return ModelFile(path, config, metadata, weights, (*zip_findings, *weight_findings), problems=problems,
                     file_format=".keras archive")

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
            return WeightTree.empty(), []  # a zip bomb, already reported by scan_members: never unpacked
        if info.file_size > MAX_COMPRESSED_WEIGHTS:
            raise ModelFileError(path, "the weights are compressed and too large to inspect")
        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(info)), "r") as h5:
            tree = read_weight_tree(h5)
            return tree, scan_hdf5(h5, "model.weights.h5", info.file_size, tree.datasets)
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, zipfile.BadZipFile) as error:
        # h5py reports corrupt structures as RuntimeError/TypeError as well as OSError.
        raise ModelFileError(path, f"the weights file inside is damaged or truncated ({error})") from error

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
