"""Broken or foreign files raise ModelFileError with a readable message - never another exception."""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib
from pathlib import Path

import h5py
import pytest

from explorer.model.files import ModelFileError, load_graph
from explorer.model.graph import LayerGraph


def _expect_error(path: Path, *fragments: str) -> str:
    with pytest.raises(ModelFileError) as info:
        load_graph(path)
    message = str(info.value)
    assert str(path) in message or path.name in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    assert "Traceback" not in message
    return message


def _load_or_model_file_error(path: Path) -> str:
    """Either a graph or ModelFileError; anything else escapes and fails the test."""
    try:
        graph = load_graph(path)
    except ModelFileError as error:
        assert str(error)
        return "error"
    assert isinstance(graph, LayerGraph)
    return "loaded"


def _png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def small_keras(zoo) -> bytes:
    return zoo("sequential_cnn").path.read_bytes()


@pytest.fixture(scope="module")
def small_h5(zoo) -> bytes:
    return zoo("legacy_sequential_h5").path.read_bytes()


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.keras", "no such file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.keras"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_directory(tmp_path):
    folder = tmp_path / "folder.keras"
    folder.mkdir()
    _expect_error(folder, "folder")


@pytest.mark.parametrize("size", [1, 7, 8, 4096])
def test_random_bytes(tmp_path, size):
    path = tmp_path / "random.keras"
    path.write_bytes(random.Random(size).randbytes(size))
    _expect_error(path, "not a keras model")


def test_text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("just some text\n")
    _expect_error(path, "not a keras model")


def test_png_renamed_keras(tmp_path):
    path = tmp_path / "picture.keras"
    path.write_bytes(_png_bytes())
    _expect_error(path, "not a keras model")


def test_zip_without_config(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
        archive.writestr("metadata.json", "{}")
    _expect_error(path, "no config.json")


def test_empty_zip(tmp_path):
    path = tmp_path / "empty_zip.keras"
    with zipfile.ZipFile(path, "w"):
        pass
    # An empty archive has no local header, only the end record: not recognised as a zip model at all.
    with pytest.raises(ModelFileError):
        load_graph(path)


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.9])
def test_truncated_keras(tmp_path, small_keras, fraction):
    path = tmp_path / "cut.keras"
    path.write_bytes(small_keras[: int(len(small_keras) * fraction)])
    _expect_error(path, "truncated")


def test_keras_missing_last_byte(tmp_path, small_keras):
    path = tmp_path / "cut.keras"
    path.write_bytes(small_keras[:-1])
    _expect_error(path, "zip")


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.9])
def test_truncated_h5(tmp_path, small_h5, fraction):
    path = tmp_path / "cut.h5"
    path.write_bytes(small_h5[: int(len(small_h5) * fraction)])
    _expect_error(path, "hdf5")


def test_h5_without_model_config(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("values", data=[1, 2, 3])
    _expect_error(path, "without a model config")


def test_weights_only_h5_opens_as_its_stored_layers(tmp_path, zoo):
    """``model.save_weights`` output: no architecture, so no connections; the variables with exact totals."""
    path = tmp_path / "only.weights.h5"
    case = zoo("sequential_dense")
    case.model.save_weights(path)
    graph = load_graph(path)
    assert graph.kind == "weights" and not graph.edges
    assert graph.totals[0] == case.model.count_params()


def test_h5_model_config_invalid_json(tmp_path):
    path = tmp_path / "bad_config.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = '{"class_name": "Sequential", "config": {'
    _expect_error(path, "not valid json")


def test_h5_model_config_not_an_object(tmp_path):
    path = tmp_path / "list_config.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = "[1, 2, 3]"
    _expect_error(path, "does not describe a model")


def _rewrite_member(source: bytes, target: Path, name: str, data: bytes | None) -> None:
    """Copy a .keras archive, replacing (or with ``None`` dropping) one member."""
    with zipfile.ZipFile(io.BytesIO(source)) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename != name:
                new.writestr(info, old.read(info))
            elif data is not None:
                new.writestr(info, data)


def test_config_json_invalid(tmp_path, small_keras):
    path = tmp_path / "bad_json.keras"
    _rewrite_member(small_keras, path, "config.json", b'{"class_name": "Sequential", "config": {"layers": [')
    _expect_error(path, "config.json", "not valid json")


def test_config_json_not_utf8(tmp_path, small_keras):
    path = tmp_path / "bad_bytes.keras"
    _rewrite_member(small_keras, path, "config.json", b"\xff\xfe\x00{ not text")
    _expect_error(path, "config.json")


def test_config_json_not_an_object(tmp_path, small_keras):
    path = tmp_path / "list.keras"
    _rewrite_member(small_keras, path, "config.json", b"[1, 2, 3]")
    _expect_error(path, "does not describe a model")


def test_metadata_json_invalid(tmp_path, small_keras):
    path = tmp_path / "bad_metadata.keras"
    _rewrite_member(small_keras, path, "metadata.json", b"{oops")
    _expect_error(path, "metadata.json", "not valid json")


def test_weights_member_not_hdf5(tmp_path, small_keras):
    path = tmp_path / "bad_weights.keras"
    _rewrite_member(small_keras, path, "model.weights.h5", b"this is not an HDF5 file at all" * 10)
    _expect_error(path, "weights")


def test_config_without_weights_still_loads(tmp_path, small_keras):
    """No model.weights.h5: the structure is shown, with zero parameters."""
    path = tmp_path / "no_weights.keras"
    _rewrite_member(small_keras, path, "model.weights.h5", None)
    graph = load_graph(path)
    assert graph.kind == "sequential"
    assert graph.totals == (0, 0, 0)


def test_config_json_damaged_inside_archive(tmp_path, small_keras):
    """Damaged bytes inside the config.json member fail its CRC check."""
    with zipfile.ZipFile(io.BytesIO(small_keras)) as archive:
        info = archive.getinfo("config.json")
    data = bytearray(small_keras)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle: middle + 8] = bytes(b ^ 0x55 for b in data[middle: middle + 8])
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(data))
    _expect_error(path, "config.json")


def test_deeply_nested_json_config(tmp_path, small_keras):
    path = tmp_path / "deep.keras"
    deep = "[" * 100_000 + "]" * 100_000
    _rewrite_member(small_keras, path, "config.json", deep.encode())
    _expect_error(path, "config.json")


def test_unexpected_but_valid_config(tmp_path, small_keras):
    """Valid JSON of an unexpected form is shown as an opaque model, not a crash."""
    config = {"class_name": "Functional", "config": {"name": "odd", "layers": [1, "x", None, {"config": 3}]}}
    path = tmp_path / "odd.keras"
    _rewrite_member(small_keras, path, "config.json", json.dumps(config).encode())
    assert _load_or_model_file_error(path) in {"loaded", "error"}


@pytest.mark.parametrize("source", ["legacy_nested_h5", "nested"])
def test_damaged_hdf5_structures(tmp_path, zoo, source):
    """Break each HDF5 local-heap / symbol-table / B-tree signature in turn.

    ``legacy_nested_h5`` exercises the legacy .h5 reader, ``nested`` the weights file inside a .keras archive.
    """
    original = zoo(source).path
    data = original.read_bytes()
    offsets = [i for i in range(len(data) - 3) if data[i: i + 4] in (b"HEAP", b"SNOD", b"TREE")]
    assert offsets, f"no HDF5 signatures in {original.name}"
    escaped = []
    for offset in offsets:
        damaged = bytearray(data)
        damaged[offset: offset + 4] = b"XXXX"
        path = tmp_path / f"damaged{original.suffix}"
        path.write_bytes(bytes(damaged))
        try:
            _load_or_model_file_error(path)
        except Exception as error:  # the point: nothing else may escape
            escaped.append((offset, data[offset: offset + 4], f"{type(error).__name__}: {error}"))
    assert not escaped, f"{len(escaped)} of {len(offsets)} damaged copies raised other exceptions: {escaped[:3]}"


@pytest.mark.parametrize("source", ["legacy_nested_h5", "nested"])
def test_random_damage(tmp_path, zoo, source):
    """Seeded random byte damage anywhere in the file: load it or raise ModelFileError."""
    original = zoo(source).path
    data = original.read_bytes()
    rng = random.Random(1234)
    escaped = []
    for _ in range(120):
        damaged = bytearray(data)
        start = rng.randrange(len(damaged))
        for i in range(start, min(len(damaged), start + rng.choice((1, 4, 32)))):
            damaged[i] = rng.randrange(256)
        path = tmp_path / f"damaged{original.suffix}"
        path.write_bytes(bytes(damaged))
        try:
            _load_or_model_file_error(path)
        except Exception as error:
            escaped.append((start, f"{type(error).__name__}: {error}"))
    assert not escaped, f"{len(escaped)} damaged copies raised other exceptions: {escaped[:3]}"


def test_model_file_error_is_not_an_os_error():
    """Callers catch ModelFileError alone; it must not be confused with (or swallowed as) OSError."""
    assert issubclass(ModelFileError, Exception)
    assert not issubclass(ModelFileError, OSError)
