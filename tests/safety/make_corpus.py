"""A corpus of hostile and broken model files, for the safety tests.

    python -m tests.safety.make_corpus FOLDER MARKER

Every payload in these files does one thing if it ever runs: it creates the file MARKER (``open(MARKER, "w")``
in the serialized lambdas, ``touch MARKER`` in the configs naming ``os``/``subprocess``, MARKER as the
download target of ``get_file``). The tests assert that MARKER never appears.

The base files are real small Keras models saved by Keras 3 and by tf-keras (Keras 2: a .keras archive, a legacy
.h5, model.to_json() with its save_weights, a SavedModel folder) - the only part that imports Keras; the corpus
is made from them by rewriting the archives with zipfile, the weights and legacy configs with h5py and
keras_metadata.pb with protobuf, as an attacker would. ``CORPUS`` (what each file is and what the explorer must
say about it) does not need Keras.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import marshal
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOSTILE, BROKEN, REFUSED, GOOD = "hostile", "broken", "refused", "good"
HUGE_SHAPE = (200_000, 200_000)  # float32: 149 GB declared, never written
CONFIG_BOMB_BYTES = 200 << 20  # spaces after the real config.json, deflated ~1000:1
WEIGHTS_BOMB_BYTES = 256 << 20  # zeros after the real model.weights.h5, deflated ~1000:1
MANY_MEMBERS = 20_000
DEEP_JSON = 100_000  # nesting depth of the unparseable config
DEEP_SCAN = 500  # nesting depth that parses but is deeper than the scanner walks
K2_NESTED_LAMBDA = "layers[1].config.layers[1].config.layers[2]"  # where keras2_lambda_nested.h5 has its Lambda
KERAS2_FOLDERS = ("keras2_lambda_savedmodel", "keras2_hidden_lambda_savedmodel")  # SavedModels are folders


@dataclass(frozen=True)
class Entry:
    name: str  # file name in the corpus folder
    # HOSTILE: `check` exits 1 with findings; BROKEN: exits 2 with a message; REFUSED: drawn, but `check` exits 1
    # with what Keras would refuse; GOOD: exits 0
    kind: str
    expect: tuple[str, ...]  # hostile/refused: each is in some finding/problem line; broken: in the error message
    what: str
    layer: str = "d1"  # a layer of the model, for the commands that take one
    huge: bool = False  # declares or expands to far more memory than the file holds
    blocking: bool = True  # refused: Keras loads nothing of it (else only the user's code could fix it)


CORPUS: tuple[Entry, ...] = (
    # -- code in the config
    Entry("lambda_top.keras", HOSTILE, ("Lambda", "bytecode"), "top-level Lambda layer with marshal bytecode"),
    Entry("lambda_nested.keras", HOSTILE, ("Lambda", "bytecode", "layers[1].config.layers[1].config.layers[2]"),
          "Lambda inside a Sequential inside a nested Functional"),
    Entry("lambda_activation.keras", HOSTILE, ("activation", "bytecode"), "a __lambda__ as a Dense activation"),
    Entry("lambda_compile_loss.keras", HOSTILE, ("compile_config", "bytecode"), "a __lambda__ loss in compile_config"),
    Entry("lambda_legacy.h5", HOSTILE, ("Lambda", "bytecode"),
          "legacy HDF5: Keras-2-style Lambda, function_type 'lambda', marshal bytes"),
    # -- Keras 2 files (tf-keras loads these in the live tier: legacy formats with no safe mode at all)
    Entry("keras2_lambda.keras", HOSTILE, ("Lambda", "bytecode"),
          "tf-keras .keras archive: a Lambda with marshal bytecode (function [code, null, null], function_type "
          "'lambda')"),
    Entry("keras2_lambda_nested.h5", HOSTILE, ("Lambda", "bytecode", K2_NESTED_LAMBDA),
          "tf-keras legacy HDF5: a Lambda in a Sequential inside a nested Functional"),
    Entry("keras2_lambda.json", HOSTILE, ("Lambda", "bytecode"),
          "tf-keras model.to_json() with a Lambda, its save_weights keras2_lambda.h5 beside it"),
    Entry("keras2_lambda_savedmodel", HOSTILE, ("Lambda", "bytecode"),
          "tf-keras SavedModel folder: the Lambda's bytecode everywhere tf-keras wrote it in keras_metadata.pb"),
    Entry("keras2_hidden_lambda_savedmodel", HOSTILE, ("Lambda", "bytecode", "keras_metadata.pb root.layer-2"),
          "SavedModel: the model config shows an Activation 'lam'; the layer's own metadata, which tf-keras "
          "revives the layer from, holds the Lambda"),
    Entry("module_os.keras", HOSTILE, ("module 'os'", "system"), "activation naming os.system"),
    Entry("builtins_exec.keras", HOSTILE, ("module 'builtins'", "exec"), "activation naming builtins.exec"),
    Entry("subprocess_popen.keras", HOSTILE, ("module 'subprocess'", "Popen"),
          "kernel_initializer naming subprocess.Popen"),
    Entry("keras_get_file.keras", HOSTILE, ("get_file", "file name or URL"),
          "keras.utils.get_file downloading to MARKER"),
    Entry("keras_unsafe_chain.keras", HOSTILE, ("enable_unsafe_deserialization", "bytecode"),
          "keras.config.enable_unsafe_deserialization before a Lambda (safe mode switched off)"),
    Entry("keras_datasets.keras", HOSTILE, ("load_data", "keras.datasets"),
          "kernel_regularizer naming keras.datasets.mnist.load_data"),
    Entry("keras_load_model.keras", HOSTILE, ("load_model", "file name or URL"),
          "keras.models.load_model of another hostile file with safe_mode off"),
    Entry("custom_class.keras", HOSTILE, ("evil_pkg",), "a registered custom class from a module not in Keras"),
    Entry("tfsm_layer.keras", HOSTILE, ("TFSMLayer",), "a TFSMLayer loading a SavedModel from a path"),
    Entry("string_lookup_path.keras", HOSTILE, ("vocabulary", "file name or URL"),
          "StringLookup reading its vocabulary from a file", layer="lookup"),
    Entry("deep_nesting.keras", HOSTILE, ("nesting deeper",), f"a layer config nested {DEEP_SCAN} levels deep"),
    # -- HDF5 storage
    Entry("h5_external_storage.keras", HOSTILE, ("external",), "a kernel stored in an external raw file"),
    Entry("h5_external_link.keras", HOSTILE, ("link to another file",), "a kernel that is an h5py.ExternalLink"),
    Entry("h5_virtual_dataset.keras", HOSTILE, ("virtual dataset",), "a kernel that is a virtual dataset"),
    Entry("h5_huge_dataset.keras", HOSTILE, ("declares",), "a chunked gzip weight declaring 200000x200000 float32",
          huge=True),
    Entry("h5_huge_dataset_legacy.h5", HOSTILE, ("declares",), "legacy HDF5 with a 200000x200000 float32 dataset",
          huge=True),
    # -- the archive
    Entry("zip_traversal.keras", HOSTILE, ("outside the archive",), "an archive member named ../evil.txt"),
    Entry("zip_weights_bomb.keras", HOSTILE, ("zip bomb",),
          f"model.weights.h5 deflated from {WEIGHTS_BOMB_BYTES >> 20} MB", huge=True),
    # -- unreadable
    Entry("empty.keras", BROKEN, ("empty",), "zero bytes"),
    Entry("random_bytes.keras", BROKEN, ("not a Keras model",), "4 KB of random bytes"),
    Entry("png_image.keras", BROKEN, ("PNG image",), "a PNG image renamed .keras"),
    Entry("truncated.keras", BROKEN, ("truncated",), "the first half of a .keras archive"),
    Entry("truncated.h5", BROKEN, ("truncated",), "the first half of a legacy .h5 file"),
    Entry("truncated_weights.keras", BROKEN, ("damaged",), "an archive whose model.weights.h5 is cut in half"),
    Entry("no_config.keras", BROKEN, ("no config.json",), "a zip archive without config.json"),
    Entry("bad_json.keras", BROKEN, ("not valid JSON",), "config.json is not JSON"),
    Entry("deep_json.keras", BROKEN, ("JSON",), f"config.json: lists nested {DEEP_JSON} deep"),
    Entry("deep_json_legacy.h5", BROKEN, ("JSON",), f"legacy model_config: dicts nested {DEEP_JSON} deep"),
    Entry("many_members.keras", BROKEN, ("files in the archive",), f"{MANY_MEMBERS} tiny archive members"),
    Entry("zip_bomb_config.keras", BROKEN, ("zip bomb",),
          f"config.json deflated from {CONFIG_BOMB_BYTES >> 20} MB of spaces"),
    Entry("graph_cycle.keras", BROKEN, ("cycle",), "d1 takes its input from d2, d2 from d1"),
    # -- files Keras refuses: drawn where they can be, the problem on the layer and in `check`
    Entry("graph_dangling.keras", REFUSED, ("layer 'd2'", "'ghost', which does not exist"),
          "d2 takes its input from a layer 'ghost'"),
    Entry("weight_mismatch.keras", REFUSED, ("layer 'd1'", "do not match"), "the d1 kernel swapped for a (4, 7) one"),
    Entry("weight_mismatch_legacy.h5", REFUSED, ("layer 'd1'", "do not match"),
          "legacy HDF5: the d1 kernel swapped for (4, 7)"),
    Entry("unknown_class.keras", REFUSED, ("layer 'd1'", "'Dence' exists in no Keras version"),
          "d1's class misspelled 'Dence'", blocking=False),
    Entry("unknown_class_legacy.h5", REFUSED, ("layer 'd1'", "'Dence' exists in no Keras version"),
          "legacy HDF5: d1's class misspelled 'Dence'", blocking=False),
    Entry("missing_output.keras", REFUSED, ("output 'ghost'", "does not exist"),
          "the model's output names a layer 'ghost'"),
    Entry("no_weights.keras", REFUSED, ("no model.weights.h5",), "the archive without its model.weights.h5"),
    Entry("no_weights_legacy.h5", REFUSED, ("no model_weights group",), "legacy HDF5 without its weights group"),
    Entry("layer_weights_missing.keras", REFUSED, ("layer 'd1'", "stores no weights"),
          "the d1 kernel and bias removed from model.weights.h5"),
    Entry("top_level_layer.keras", BROKEN, ("layer, not a model",), "config.json holds a Dense layer"),
    Entry("weights_only.h5", GOOD, (), "an HDF5 weights file (save_weights): opens as its stored layers"),
    # -- controls
    Entry("good.keras", GOOD, (), "the untouched base model"),
    Entry("good_legacy.h5", GOOD, (), "the untouched base model, legacy HDF5"),
    Entry("good_lookup.keras", GOOD, (), "StringLookup with an inline vocabulary", layer="lookup"),
)
BY_NAME = {entry.name: entry for entry in CORPUS}


# --------------------------------------------------------------------------- payloads


def payload_code(marker: Path, params: tuple[str, ...] = ("x",)) -> str:
    """Base64 marshal bytes (Keras' func_dump format) of a lambda that creates MARKER and returns its last
    argument unchanged."""
    source = f"lambda {', '.join(params)}: (open({str(marker)!r}, 'w').close(), {params[-1]})[1]"
    function = eval(compile(source, "<payload>", "eval"))  # our own constant source, never run here
    return base64.encodebytes(marshal.dumps(function.__code__)).decode("ascii")


def _touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _lambda_object(marker: Path, params: tuple[str, ...] = ("x",)) -> dict[str, Any]:
    return {"class_name": "__lambda__", "config": {"code": payload_code(marker, params), "defaults": None,
                                                  "closure": None}}


def _arm(config: Any, marker: Path) -> int:
    """Swap the code of every serialized lambda in the tree for the payload; returns how many."""
    armed = 0
    for item in _dicts(config):
        if item.get("function_type") == "lambda":  # a Keras 2 Lambda: function [code, defaults, closure]
            function = item["function"]  # keras_metadata.pb writes the list as {"class_name": "__tuple__", ...}
            (function["items"] if isinstance(function, dict) else function)[0] = payload_code(marker)
            armed += 1
            continue
        if item.get("class_name") != "__lambda__":
            continue
        inner = item["config"]
        if "code" in inner:
            inner["code"] = payload_code(marker)
        else:  # compile_config functions: {"value": [code, defaults, closure]}
            inner["value"][0] = payload_code(marker, ("y_true", "y_pred"))
        armed += 1
    return armed


def _dicts(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _layer(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The layer entry (with class_name, config, inbound_nodes) named ``name``, anywhere in the tree."""
    for item in _dicts(config):
        inner = item.get("config")
        if "class_name" in item and isinstance(inner, dict) and inner.get("name") == name:
            return item
    raise KeyError(name)


# --------------------------------------------------------------------------- archives and HDF5


def _members(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def _write_archive(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if isinstance(info, zipfile.ZipInfo):
                fresh = zipfile.ZipInfo(info.filename, info.date_time)
                fresh.compress_type = info.compress_type
                archive.writestr(fresh, data)
            else:
                archive.writestr(info, data)


def _edit_archive(source: Path, target: Path, replace: dict[str, bytes] | None = None,
                  add: tuple[tuple[str, bytes], ...] = ()) -> None:
    replace = replace or {}
    members = [(info, replace.get(info.filename, data)) for info, data in _members(source)]
    _write_archive(target, [*members, *add])


def _config(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _with_config(source: Path, target: Path, config: Any) -> None:
    _edit_archive(source, target, {"config.json": json.dumps(config).encode()})


def _edit_weights(source: Path, target: Path, edit: Callable[[Any], None]) -> None:
    """Rewrite the archive with its model.weights.h5 edited in place by ``edit(h5py.File)``."""
    import h5py

    with zipfile.ZipFile(source) as archive:
        data = archive.read("model.weights.h5")
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "model.weights.h5"
        weights.write_bytes(data)
        with h5py.File(weights, "r+") as h5:
            edit(h5)
        _edit_archive(source, target, {"model.weights.h5": weights.read_bytes()})


def _dataset_with_shape(h5: Any, shape: tuple[int, ...]) -> str:
    """The one dataset of this shape (the kernels of the base models have unique shapes)."""
    import h5py

    found: list[str] = []
    h5.visititems(lambda name, item: found.append(name)
                  if isinstance(item, h5py.Dataset) and item.shape == shape else None)
    if len(found) != 1:
        raise ValueError(f"expected one dataset of shape {shape}, found {found}")
    return found[0]


def _legacy_config(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as h5:
        raw = h5.attrs["model_config"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _set_legacy_config(path: Path, text: str) -> None:
    import h5py

    with h5py.File(path, "r+") as h5:
        h5.attrs["model_config"] = text


def _edit_metadata(folder: Path, edit: Callable[[str, dict[str, Any]], int]) -> int:
    """Rewrite a SavedModel's keras_metadata.pb, each object's metadata JSON edited by ``edit(node_path,
    metadata)`` (returning how many payloads it placed); the protobuf is parsed and written back whole."""
    from explorer.model.readers.saved_model_protos import KerasMetadata

    path = folder / "keras_metadata.pb"
    saved = KerasMetadata.FromString(path.read_bytes())
    armed = 0
    for node in saved.nodes:
        metadata = json.loads(node.metadata)
        armed += edit(node.node_path, metadata)
        node.metadata = json.dumps(metadata)
    path.write_bytes(saved.SerializeToString())
    return armed


# --------------------------------------------------------------------------- base models (Keras)


@dataclass
class Context:
    folder: Path
    marker: Path
    support: Path  # files the hostile ones point at (external storage, link targets, vocabulary)
    base: dict[str, Path]

    def out(self, name: str) -> Path:
        return self.folder / name


def save_bases(folder: Path) -> dict[str, Path]:
    """Real Keras models, with harmless lambdas (Keras calls a Lambda while building the model: the payload
    is put into the saved file afterwards)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    paths: dict[str, Path] = {}

    def save(model: Any, name: str) -> None:
        paths[name] = folder / name
        model.save(paths[name])

    x = keras.Input((4,), name="x")
    base = keras.Model(x, layers.Dense(2, name="d2")(layers.Dense(3, name="d1")(x)), name="base")
    save(base, "base.keras")
    save(base, "base.h5")
    base.save_weights(folder / "base.weights.h5")
    paths["base.weights.h5"] = folder / "base.weights.h5"

    x = keras.Input((4,), name="x")
    hidden = layers.Lambda(lambda v: v, name="lam")(layers.Dense(4, name="d0")(x))
    top = keras.Model(x, layers.Dense(3, name="d1")(hidden), name="lambda_top")
    save(top, "lambda_top.keras")
    save(top, "lambda_top.h5")

    inner = keras.Sequential([keras.Input((4,)), layers.Dense(4, name="inner_dense"),
                              layers.Lambda(lambda v: v, name="inner_lam")], name="inner_seq")
    block_in = keras.Input((4,), name="block_in")
    block = keras.Model(block_in, inner(block_in), name="block")
    x = keras.Input((4,), name="x")
    save(keras.Model(x, layers.Dense(3, name="d1")(block(x)), name="lambda_nested"), "lambda_nested.keras")

    x = keras.Input((4,), name="x")
    compiled = keras.Model(x, layers.Dense(3, name="d1")(x), name="compiled")
    compiled.compile(optimizer="adam", loss=lambda y_true, y_pred: y_pred)
    save(compiled, "compiled.keras")

    words = keras.Input((1,), dtype="string", name="words")
    lookup = layers.StringLookup(vocabulary=["alpha", "beta", "gamma"], name="lookup")
    save(keras.Model(words, lookup(words), name="lookup_model"), "lookup.keras")
    return paths


def save_keras2_bases(folder: Path) -> dict[str, Path]:
    """Real Keras 2 models saved by tf-keras, with harmless lambdas, in each format the live tier loads with
    tf-keras: a .keras archive, a legacy .h5, model.to_json() with save_weights beside it, a SavedModel."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import tf_keras
    from tf_keras import layers

    tf_keras.utils.set_random_seed(0)
    paths = {name: folder / name for name in ("k2_lambda.keras", "k2_lambda_nested.h5", "k2_lambda.json",
                                              "k2_lambda.h5", "k2_lambda_savedmodel", "k2_twin.json")}
    x = tf_keras.Input((4,), name="x")
    hidden = layers.Lambda(lambda v: v, name="lam")(layers.Dense(4, name="d0")(x))
    top = tf_keras.Model(x, layers.Dense(3, name="d1")(hidden), name="lambda_top")
    top.save(paths["k2_lambda.keras"])
    paths["k2_lambda.json"].write_text(top.to_json())
    top.save_weights(paths["k2_lambda.h5"])
    top.save(paths["k2_lambda_savedmodel"], save_format="tf")
    # the same model with an Activation where the Lambda is: what the hidden SavedModel's config shows
    x = tf_keras.Input((4,), name="x")
    hidden = layers.Activation("linear", name="lam")(layers.Dense(4, name="d0")(x))
    paths["k2_twin.json"].write_text(tf_keras.Model(x, layers.Dense(3, name="d1")(hidden), name="lambda_top").to_json())

    inner = tf_keras.Sequential([tf_keras.Input((4,)), layers.Dense(4, name="inner_dense"),
                                 layers.Lambda(lambda v: v, name="inner_lam")], name="inner_seq")
    block_in = tf_keras.Input((4,), name="block_in")
    block = tf_keras.Model(block_in, inner(block_in), name="block")
    x = tf_keras.Input((4,), name="x")
    nested = tf_keras.Model(x, layers.Dense(3, name="d1")(block(x)), name="lambda_nested")
    nested.save(paths["k2_lambda_nested.h5"])
    return paths


# --------------------------------------------------------------------------- the corpus

_BUILDERS: dict[str, Callable[[Context], None]] = {}


def _builds(*names: str) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    def register(builder: Callable[[Context], None]) -> Callable[[Context], None]:
        for name in names:
            _BUILDERS[name] = builder
        return builder

    return register


@_builds("good.keras", "good_legacy.h5", "good_lookup.keras")
def _good(ctx: Context) -> None:
    shutil.copyfile(ctx.base["base.keras"], ctx.out("good.keras"))
    shutil.copyfile(ctx.base["base.h5"], ctx.out("good_legacy.h5"))
    shutil.copyfile(ctx.base["lookup.keras"], ctx.out("good_lookup.keras"))


@_builds("lambda_top.keras", "lambda_nested.keras", "lambda_compile_loss.keras")
def _lambdas(ctx: Context) -> None:
    for base, name in (("lambda_top.keras", "lambda_top.keras"), ("lambda_nested.keras", "lambda_nested.keras"),
                       ("compiled.keras", "lambda_compile_loss.keras")):
        config = _config(ctx.base[base])
        if _arm(config, ctx.marker) != 1:
            raise AssertionError(f"{base}: expected one serialized lambda")
        _with_config(ctx.base[base], ctx.out(name), config)


def _edit_layer_config(ctx: Context, name: str, layer: str, edit: Callable[[dict[str, Any]], None],
                       base: str = "base.keras") -> None:
    config = _config(ctx.base[base])
    edit(_layer(config, layer)["config"])
    _with_config(ctx.base[base], ctx.out(name), config)


@_builds("lambda_activation.keras")
def _lambda_activation(ctx: Context) -> None:
    _edit_layer_config(ctx, "lambda_activation.keras", "d1",
                       lambda layer: layer.update(activation=_lambda_object(ctx.marker)))


@_builds("lambda_legacy.h5")
def _lambda_legacy(ctx: Context) -> None:
    """Keras 2 wrote Lambda layers as ``function: [code, defaults, closure]`` with ``function_type: lambda``."""
    target = ctx.out("lambda_legacy.h5")
    shutil.copyfile(ctx.base["lambda_top.h5"], target)
    config = _legacy_config(target)
    layer = _layer(config, "lam")["config"]
    layer.update(function=[payload_code(ctx.marker), None, None], function_type="lambda", module="__main__",
                 output_shape=None, output_shape_type="raw", output_shape_module=None, arguments={})
    _set_legacy_config(target, json.dumps(config))


@_builds("keras2_lambda.keras", "keras2_lambda_nested.h5", "keras2_lambda.json")
def _keras2_lambdas(ctx: Context) -> None:
    """The bytecode tf-keras wrote for each harmless Lambda, swapped for the payload."""
    config = _config(ctx.base["k2_lambda.keras"])
    if _arm(config, ctx.marker) != 1:
        raise AssertionError("k2_lambda.keras: expected one Lambda")
    _with_config(ctx.base["k2_lambda.keras"], ctx.out("keras2_lambda.keras"), config)

    target = ctx.out("keras2_lambda_nested.h5")
    shutil.copyfile(ctx.base["k2_lambda_nested.h5"], target)
    config = _legacy_config(target)
    if _arm(config, ctx.marker) != 1:
        raise AssertionError("k2_lambda_nested.h5: expected one Lambda")
    _set_legacy_config(target, json.dumps(config))

    config = json.loads(ctx.base["k2_lambda.json"].read_text())
    if _arm(config, ctx.marker) != 1:
        raise AssertionError("k2_lambda.json: expected one Lambda")
    ctx.out("keras2_lambda.json").write_text(json.dumps(config))
    shutil.copyfile(ctx.base["k2_lambda.h5"], ctx.out("keras2_lambda.h5"))  # weights_beside finds it


@_builds("keras2_lambda_savedmodel")
def _keras2_savedmodel(ctx: Context) -> None:
    """tf-keras writes the Lambda into the root's ``config`` and ``model_config`` and into the layer's own
    metadata (root.layer-2): all three are armed."""
    target = ctx.out("keras2_lambda_savedmodel")
    shutil.copytree(ctx.base["k2_lambda_savedmodel"], target)
    if _edit_metadata(target, lambda _path, metadata: _arm(metadata, ctx.marker)) != 3:
        raise AssertionError("k2_lambda_savedmodel: expected the Lambda in three places")


@_builds("keras2_hidden_lambda_savedmodel")
def _keras2_hidden_savedmodel(ctx: Context) -> None:
    """The root's config and model_config (the graph a reader draws) show the Activation of the twin model;
    tf-keras revives each layer from its own metadata, and root.layer-2's still says Lambda (armed)."""
    twin = _layer(json.loads(ctx.base["k2_twin.json"].read_text()), "lam")

    def edit(path: str, metadata: dict[str, Any]) -> int:
        if path != "root":
            return _arm(metadata, ctx.marker)
        for config in (metadata["config"], metadata["model_config"]["config"]):
            config["layers"] = [copy.deepcopy(twin) if layer["config"]["name"] == "lam" else layer
                                for layer in config["layers"]]
        return 0

    target = ctx.out("keras2_hidden_lambda_savedmodel")
    shutil.copytree(ctx.base["k2_lambda_savedmodel"], target)
    if _edit_metadata(target, edit) != 1:
        raise AssertionError("k2_lambda_savedmodel: expected one Lambda outside the root")


@_builds("module_os.keras")
def _module_os(ctx: Context) -> None:
    _edit_layer_config(ctx, "module_os.keras", "d1", lambda layer: layer.update(activation={
        "module": "os", "class_name": "system", "config": _touch(ctx.marker), "registered_name": "system"}))


@_builds("builtins_exec.keras")
def _builtins_exec(ctx: Context) -> None:
    _edit_layer_config(ctx, "builtins_exec.keras", "d1", lambda layer: layer.update(activation={
        "module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"}))


@_builds("subprocess_popen.keras")
def _subprocess_popen(ctx: Context) -> None:
    _edit_layer_config(ctx, "subprocess_popen.keras", "d1", lambda layer: layer.update(kernel_initializer={
        "module": "subprocess", "class_name": "Popen", "config": {"args": ["touch", str(ctx.marker)]},
        "registered_name": "Popen"}))


@_builds("keras_get_file.keras")
def _keras_get_file(ctx: Context) -> None:
    origin = (ctx.support / "download.txt").as_uri()
    _edit_layer_config(ctx, "keras_get_file.keras", "d2", lambda layer: layer.update(activation={
        "module": "keras.utils", "class_name": "get_file",
        "config": {"fname": str(ctx.marker), "origin": origin, "cache_dir": str(ctx.marker.parent)},
        "registered_name": "get_file"}))


@_builds("keras_unsafe_chain.keras")
def _keras_unsafe_chain(ctx: Context) -> None:
    """d0 (deserialized first) switches safe mode off; the Lambda after it then loads its bytecode."""
    config = _config(ctx.base["lambda_top.keras"])
    _arm(config, ctx.marker)
    _layer(config, "d0")["config"]["activation"] = {
        "module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
        "registered_name": "function"}
    _with_config(ctx.base["lambda_top.keras"], ctx.out("keras_unsafe_chain.keras"), config)


@_builds("keras_datasets.keras")
def _keras_datasets(ctx: Context) -> None:
    _edit_layer_config(ctx, "keras_datasets.keras", "d1", lambda layer: layer.update(kernel_regularizer={
        "module": "keras.datasets.mnist", "class_name": "function", "config": "load_data",
        "registered_name": "function"}))


@_builds("keras_load_model.keras")
def _keras_load_model(ctx: Context) -> None:
    hostile = ctx.out("lambda_top.keras")  # built before this one (CORPUS order)
    _edit_layer_config(ctx, "keras_load_model.keras", "d2", lambda layer: layer.update(activation={
        "module": "keras.models", "class_name": "load_model",
        "config": {"filepath": str(hostile), "compile": False, "safe_mode": False}, "registered_name": "load_model"}))


@_builds("custom_class.keras")
def _custom_class(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    _layer(config, "d2").update(module="evil_pkg.layers", class_name="Payload", registered_name="evil_pkg>Payload")
    _with_config(ctx.base["base.keras"], ctx.out("custom_class.keras"), config)


@_builds("tfsm_layer.keras")
def _tfsm_layer(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    layer = _layer(config, "d2")
    layer.update(class_name="TFSMLayer", registered_name=None)
    layer["config"] = {"name": "d2", "trainable": False, "filepath": str(ctx.support / "saved_model"),
                       "call_endpoint": "serve"}
    _with_config(ctx.base["base.keras"], ctx.out("tfsm_layer.keras"), config)


@_builds("string_lookup_path.keras")
def _string_lookup_path(ctx: Context) -> None:
    _edit_layer_config(ctx, "string_lookup_path.keras", "lookup",
                       lambda layer: layer.update(vocabulary=str(ctx.support / "vocabulary.txt")), base="lookup.keras")


@_builds("deep_nesting.keras")
def _deep_nesting(ctx: Context) -> None:
    deep: Any = "bottom"
    for _ in range(DEEP_SCAN):
        deep = [deep]
    _edit_layer_config(ctx, "deep_nesting.keras", "d1", lambda layer: layer.update(notes=deep))


@_builds("h5_external_storage.keras")
def _h5_external_storage(ctx: Context) -> None:
    raw = ctx.support / "external_kernel.bin"
    raw.write_bytes(bytes(4 * 3 * 4))

    def edit(h5: Any) -> None:
        kernel = _dataset_with_shape(h5, (4, 3))
        del h5[kernel]
        h5.create_dataset(kernel, shape=(4, 3), dtype="float32", external=[(str(raw), 0, 4 * 3 * 4)])

    _edit_weights(ctx.base["base.keras"], ctx.out("h5_external_storage.keras"), edit)


def _support_kernel_file(ctx: Context) -> Path:
    import h5py

    path = ctx.support / "elsewhere.h5"
    if not path.exists():
        with h5py.File(path, "w") as h5:
            h5.create_dataset("kernel", data=[[0.0] * 3] * 4, dtype="float32")
    return path


@_builds("h5_external_link.keras")
def _h5_external_link(ctx: Context) -> None:
    import h5py

    other = _support_kernel_file(ctx)

    def edit(h5: Any) -> None:
        kernel = _dataset_with_shape(h5, (4, 3))
        del h5[kernel]
        h5[kernel] = h5py.ExternalLink(str(other), "/kernel")

    _edit_weights(ctx.base["base.keras"], ctx.out("h5_external_link.keras"), edit)


@_builds("h5_virtual_dataset.keras")
def _h5_virtual_dataset(ctx: Context) -> None:
    import h5py

    other = _support_kernel_file(ctx)

    def edit(h5: Any) -> None:
        kernel = _dataset_with_shape(h5, (4, 3))
        del h5[kernel]
        layout = h5py.VirtualLayout(shape=(4, 3), dtype="float32")
        layout[:] = h5py.VirtualSource(str(other), "kernel", shape=(4, 3))
        h5.create_virtual_dataset(kernel, layout)

    _edit_weights(ctx.base["base.keras"], ctx.out("h5_virtual_dataset.keras"), edit)


def _huge(group: Any, name: str) -> None:
    group.create_dataset(name, shape=HUGE_SHAPE, dtype="float32", chunks=(1000, 1000), compression="gzip")


@_builds("h5_huge_dataset.keras")
def _h5_huge_dataset(ctx: Context) -> None:
    """A third variable of d1 (Keras would allocate it on loading); the kernel and bias stay right."""

    def edit(h5: Any) -> None:
        kernel = _dataset_with_shape(h5, (4, 3))
        _huge(h5[kernel.rpartition("/")[0]], "2")

    _edit_weights(ctx.base["base.keras"], ctx.out("h5_huge_dataset.keras"), edit)


@_builds("h5_huge_dataset_legacy.h5")
def _h5_huge_dataset_legacy(ctx: Context) -> None:
    import h5py

    target = ctx.out("h5_huge_dataset_legacy.h5")
    shutil.copyfile(ctx.base["base.h5"], target)
    with h5py.File(target, "r+") as h5:
        _huge(h5["model_weights/d1"], "huge")


@_builds("zip_traversal.keras")
def _zip_traversal(ctx: Context) -> None:
    _edit_archive(ctx.base["base.keras"], ctx.out("zip_traversal.keras"), add=(("../evil.txt", b"escaped\n"),))


def _bomb(source: Path, target: Path, member: str, filler: bytes, size: int) -> None:
    """Rewrite the archive with ``member`` followed by ``size`` bytes of ``filler``, deflated at level 9."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info, data in _members(source):
            if info.filename != member:
                archive.writestr(info.filename, data, compress_type=zipfile.ZIP_STORED)
                continue
            with archive.open(member, "w", force_zip64=True) as stream:
                stream.write(data)
                chunk = filler * ((1 << 20) // len(filler))
                for _ in range(size >> 20):
                    stream.write(chunk)


@_builds("zip_weights_bomb.keras")
def _zip_weights_bomb(ctx: Context) -> None:
    """A valid model.weights.h5 followed by zeros (HDF5 ignores bytes past its end)."""
    _bomb(ctx.base["base.keras"], ctx.out("zip_weights_bomb.keras"), "model.weights.h5", b"\0", WEIGHTS_BOMB_BYTES)


@_builds("empty.keras")
def _empty(ctx: Context) -> None:
    ctx.out("empty.keras").write_bytes(b"")


@_builds("random_bytes.keras")
def _random_bytes(ctx: Context) -> None:
    data = random.Random(1234).randbytes(4096)
    assert not data.startswith((b"PK", b"\x89"))
    ctx.out("random_bytes.keras").write_bytes(data)


@_builds("png_image.keras")
def _png_image(ctx: Context) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="PNG")
    ctx.out("png_image.keras").write_bytes(buffer.getvalue())


@_builds("truncated.keras", "truncated.h5")
def _truncated(ctx: Context) -> None:
    for base, name in (("base.keras", "truncated.keras"), ("base.h5", "truncated.h5")):
        data = ctx.base[base].read_bytes()
        ctx.out(name).write_bytes(data[: len(data) // 2])


@_builds("truncated_weights.keras")
def _truncated_weights(ctx: Context) -> None:
    with zipfile.ZipFile(ctx.base["base.keras"]) as archive:
        weights = archive.read("model.weights.h5")
    _edit_archive(ctx.base["base.keras"], ctx.out("truncated_weights.keras"),
                  {"model.weights.h5": weights[: len(weights) // 2]})


@_builds("no_config.keras")
def _no_config(ctx: Context) -> None:
    members = [(info, data) for info, data in _members(ctx.base["base.keras"]) if info.filename != "config.json"]
    _write_archive(ctx.out("no_config.keras"), members)


@_builds("bad_json.keras")
def _bad_json(ctx: Context) -> None:
    _edit_archive(ctx.base["base.keras"], ctx.out("bad_json.keras"), {"config.json": b'{"class_name": "Functional",'})


@_builds("deep_json.keras", "deep_json_legacy.h5")
def _deep_json(ctx: Context) -> None:
    _edit_archive(ctx.base["base.keras"], ctx.out("deep_json.keras"),
                  {"config.json": b"[" * DEEP_JSON + b"]" * DEEP_JSON})
    target = ctx.out("deep_json_legacy.h5")
    shutil.copyfile(ctx.base["base.h5"], target)
    _set_legacy_config(target, '{"class_name": "Functional", "config": ' + '{"a": ' * DEEP_JSON + "1"
                       + "}" * DEEP_JSON + "}")


@_builds("many_members.keras")
def _many_members(ctx: Context) -> None:
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = list(_members(ctx.base["base.keras"]))
    members += [(f"assets/{index:05d}.txt", b"x") for index in range(MANY_MEMBERS)]
    _write_archive(ctx.out("many_members.keras"), members)


@_builds("zip_bomb_config.keras")
def _zip_bomb_config(ctx: Context) -> None:
    """A valid config.json followed by spaces (JSON allows trailing whitespace)."""
    _bomb(ctx.base["base.keras"], ctx.out("zip_bomb_config.keras"), "config.json", b" ", CONFIG_BOMB_BYTES)


def _set_source(layer: dict[str, Any], source: str) -> None:
    history = layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
    history[0] = source


@_builds("graph_cycle.keras")
def _graph_cycle(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    _set_source(_layer(config, "d1"), "d2")
    _with_config(ctx.base["base.keras"], ctx.out("graph_cycle.keras"), config)


@_builds("graph_dangling.keras")
def _graph_dangling(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    _set_source(_layer(config, "d2"), "ghost")
    _with_config(ctx.base["base.keras"], ctx.out("graph_dangling.keras"), config)


@_builds("unknown_class.keras", "unknown_class_legacy.h5")
def _unknown_class(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    _layer(config, "d1")["class_name"] = "Dence"
    _with_config(ctx.base["base.keras"], ctx.out("unknown_class.keras"), config)
    target = ctx.out("unknown_class_legacy.h5")
    shutil.copyfile(ctx.base["base.h5"], target)
    legacy = _legacy_config(target)
    _layer(legacy, "d1")["class_name"] = "Dence"
    _set_legacy_config(target, json.dumps(legacy))


@_builds("missing_output.keras")
def _missing_output(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    outputs = config["config"]["output_layers"]
    (outputs[0] if isinstance(outputs[0], list) else outputs)[0] = "ghost"
    _with_config(ctx.base["base.keras"], ctx.out("missing_output.keras"), config)


@_builds("no_weights.keras")
def _no_weights(ctx: Context) -> None:
    members = [(info, data) for info, data in _members(ctx.base["base.keras"]) if info.filename != "model.weights.h5"]
    _write_archive(ctx.out("no_weights.keras"), members)


@_builds("no_weights_legacy.h5")
def _no_weights_legacy(ctx: Context) -> None:
    import h5py

    target = ctx.out("no_weights_legacy.h5")
    shutil.copyfile(ctx.base["base.h5"], target)
    with h5py.File(target, "r+") as h5:
        del h5["model_weights"]


@_builds("layer_weights_missing.keras")
def _layer_weights_missing(ctx: Context) -> None:
    def remove(h5: Any) -> None:
        kernel = _dataset_with_shape(h5, (4, 3))  # d1's kernel; its bias sits beside it
        for name in list(h5[kernel.rpartition("/")[0]]):
            del h5[f"{kernel.rpartition('/')[0]}/{name}"]

    _edit_weights(ctx.base["base.keras"], ctx.out("layer_weights_missing.keras"), remove)


@_builds("weight_mismatch.keras", "weight_mismatch_legacy.h5")
def _weight_mismatch(ctx: Context) -> None:
    import h5py

    def swap(h5: Any) -> None:
        kernel = _dataset_with_shape(h5, (4, 3))
        del h5[kernel]
        h5.create_dataset(kernel, data=[[0.5] * 7] * 4, dtype="float32")

    _edit_weights(ctx.base["base.keras"], ctx.out("weight_mismatch.keras"), swap)
    target = ctx.out("weight_mismatch_legacy.h5")
    shutil.copyfile(ctx.base["base.h5"], target)
    with h5py.File(target, "r+") as h5:
        swap(h5["model_weights"])


@_builds("top_level_layer.keras")
def _top_level_layer(ctx: Context) -> None:
    config = _config(ctx.base["base.keras"])
    layer = copy.deepcopy(_layer(config, "d1"))
    layer.pop("inbound_nodes", None)
    layer.pop("name", None)
    _with_config(ctx.base["base.keras"], ctx.out("top_level_layer.keras"), layer)


@_builds("weights_only.h5")
def _weights_only(ctx: Context) -> None:
    shutil.copyfile(ctx.base["base.weights.h5"], ctx.out("weights_only.h5"))


def rearm(source: Path, target: Path, marker: Path) -> int:
    """Copy a corpus file with its lambda payloads pointed at another marker (the tests' positive control:
    Keras with safe mode off does run them). Returns how many payloads were re-pointed."""
    if source.is_dir():  # a SavedModel
        shutil.copytree(source, target)
        return _edit_metadata(target, lambda _path, metadata: _arm(metadata, marker))
    if source.suffix == ".json":  # an architecture JSON, with the weights beside it
        config = json.loads(source.read_text())
        armed = _arm(config, marker)
        target.write_text(json.dumps(config))
        shutil.copyfile(source.with_suffix(".h5"), target.with_suffix(".h5"))
        return armed
    if source.suffix == ".h5":
        shutil.copyfile(source, target)
        config = _legacy_config(target)
        armed = _arm(config, marker)
        _set_legacy_config(target, json.dumps(config))
        return armed
    config = _config(source)
    armed = _arm(config, marker)
    _with_config(source, target, config)
    return armed


def build(folder: Path, marker: Path, log: Callable[[str], None] = lambda _line: None) -> list[Path]:
    """Write every CORPUS file into ``folder``; payloads create ``marker`` if they ever run."""
    folder, marker = Path(folder).resolve(), Path(marker).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    support = folder / "_support"
    support.mkdir(exist_ok=True)
    (support / "download.txt").write_text("what get_file would copy to MARKER\n")
    (support / "vocabulary.txt").write_text("alpha\nbeta\ngamma\n")
    bases = folder / "_base"
    bases.mkdir(exist_ok=True)
    started = time.perf_counter()
    ctx = Context(folder, marker, support, {**save_bases(bases), **save_keras2_bases(bases)})
    log(f"base models saved in {time.perf_counter() - started:.1f} s")
    done: set[Callable[[Context], None]] = set()
    for entry in CORPUS:
        builder = _BUILDERS[entry.name]
        if builder not in done:
            started = time.perf_counter()
            builder(ctx)
            done.add(builder)
            log(f"{builder.__name__.lstrip('_')}: {time.perf_counter() - started:.2f} s")
    missing = [entry.name for entry in CORPUS
               if not (ctx.out(entry.name).is_dir() if entry.name in KERAS2_FOLDERS else ctx.out(entry.name).is_file())]
    if missing:
        raise AssertionError(f"not written: {missing}")
    if marker.exists():
        raise AssertionError(f"a payload ran while the corpus was built: {marker} exists")
    return [ctx.out(entry.name) for entry in CORPUS]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tests.safety.make_corpus FOLDER MARKER", file=sys.stderr)
        return 2
    paths = build(Path(args[0]), Path(args[1]), log=lambda line: print(line, file=sys.stderr))
    for path in paths:
        print(f"{path.stat().st_size:>10}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
