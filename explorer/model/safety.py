"""Static check of a model file before anything reaches Keras: what in it could run code or touch the system.

Keras' safe_mode is not a sandbox and has been bypassed repeatedly (Lambda bytecode, configs naming any module,
``keras.utils.get_file`` as a gadget, a config switching safe mode off, HDF5 files declaring huge datasets or
external storage). The whole config tree is walked - not only top-level layers - because nested Lambdas and
bytecode in activations or ``compile_config`` are the known scanner bypasses.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from explorer.model.graph import Finding
from explorer.model.model_file import ModelFileError
from explorer.text import SHORT, one_line

MAX_JSON_DEPTH = 200
MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_RATIO = 100
MAX_COMPRESSED_WEIGHTS = 1 << 30
KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}

ALLOWED_MODULE_PREFIXES = (
    "keras.layers", "keras.src.layers", "keras.initializers", "keras.src.initializers", "keras.regularizers",
    "keras.src.regularizers", "keras.constraints", "keras.src.constraints", "keras.activations",
    "keras.src.activations", "keras.optimizers", "keras.src.optimizers", "keras.losses", "keras.src.losses",
    "keras.metrics", "keras.src.metrics", "keras.dtype_policies", "keras.src.dtype_policies",
    "keras.src.models.functional", "keras.src.models.sequential", "keras.quantizers", "keras.src.quantizers",
    # keras.ops calls recorded in functional graphs (relu, add, ...): tensor math, no I/O
    "keras.src.ops.nn", "keras.src.ops.numpy", "keras.src.ops.math", "keras.src.ops.image", "keras.src.ops.linalg",
    # Keras 2 (tf.keras 2.13+, tf-keras): its layers and its own model classes
    "tf_keras.src.layers", "keras.src.engine.functional", "keras.src.engine.sequential", "keras.src.engine.training",
    "tf_keras.src.engine.functional", "tf_keras.src.engine.sequential", "tf_keras.src.engine.training",
    "keras.engine.functional", "keras.engine.sequential", "keras.engine.training",
)
# TFOpLambda / SlicingOpLambda call a TensorFlow function by its name: tensor math is fine, anything else (file
# I/O, py_function, printing, summaries) is code the file makes run.
TF_OP_LAYERS = {"TFOpLambda", "SlicingOpLambda"}
TF_OP_PREFIXES = ("math.", "nn.", "__operators__.", "linalg.", "image.resize", "compat.v1.shape", "compat.v1.gather")
TF_OP_NAMES = {
    "reshape", "concat", "stack", "unstack", "cast", "expand_dims", "squeeze", "transpose", "clip_by_value", "where",
    "split", "shape", "identity", "tile", "gather", "one_hot", "pad", "broadcast_to", "zeros_like", "ones_like",
    "reverse", "cumsum", "argmax", "argmin", "einsum", "range", "size", "rank", "convert_to_tensor", "__getitem__",
}
FUNCTION_MODULES = ("keras.activations", "keras.src.activations", "keras.initializers", "keras.src.initializers")
_SPECIAL = {"Lambda", "TFSMLayer", "__lambda__", "function"}
LAYER_CLASSES_THAT_RUN_CODE = {"Lambda": "a Lambda layer (Python code stored in the file)",
                               "TFSMLayer": "a TFSMLayer (loads and runs a TensorFlow SavedModel from a path)"}
PATH_KEYS = {"vocabulary", "path", "filepath", "file_path", "filename", "vocabulary_path", "fname", "origin"}
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_WINDOWS_PATH = re.compile(r"^[a-zA-Z]:[\\/]")


def scan_members(path: Path, members: list[zipfile.ZipInfo]) -> list[Finding]:
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


def scan_config(config: Any, where: str, trusted_modules: Iterable[str] = ()) -> list[Finding]:
    """Every place in the config tree that names code outside Keras' own layers, or a file or URL."""
    trusted = tuple(trusted_modules)
    findings: list[Finding] = []
    # Iterative walk (a hostile file cannot exhaust the Python stack); locations are kept as (parent, key)
    # chains and only spelled out for findings: most of a big config is plain numbers and names.
    stack: list[tuple[Any, Any, int]] = [((None, where), config, 0)]
    while stack:
        location, item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            findings.append(Finding(_short(_spell(location)), f"nesting deeper than {MAX_JSON_DEPTH} levels"))
            break
        if isinstance(item, dict):
            findings += _check_object(location, item, trusted)
            stack += [((location, key), child, depth + 1) for key, child in item.items()
                      if isinstance(child, dict | list | str)]
        elif isinstance(item, list):
            stack += [((location, index), child, depth + 1) for index, child in enumerate(item)
                      if isinstance(child, dict | list | str)]
        elif isinstance(item, str) and _suspicious_string(location, item):
            findings.append(Finding(_spell(location), f"a file name or URL {_short(item)!r}"))
    return sorted(set(findings), key=lambda f: (f.where, f.what))  # a path key's value is also a string


def _spell(location: tuple) -> str:
    parts = []
    while location is not None:
        location, key = location
        parts.append(f"[{key}]" if isinstance(key, int) else (f".{key}" if location is not None else str(key)))
    return "".join(reversed(parts))


def _check_object(location: tuple, item: dict, trusted: tuple[str, ...]) -> list[Finding]:
    class_name = item.get("class_name")
    module = item.get("module")
    if module in (None, "keras", "keras.layers", "keras.initializers") and class_name not in _SPECIAL | TF_OP_LAYERS \
            and not PATH_KEYS & item.keys() and "function_type" not in item and "__lambda__" not in item \
            and not (isinstance(item.get("registered_name"), str) and ">" in item["registered_name"]) \
            and not ("module" in item and module is None):
        return []  # the overwhelmingly common case: a Keras layer, initializer or plain config dict
    path = _spell(location)
    found = []
    registered = item.get("registered_name")
    if class_name in LAYER_CLASSES_THAT_RUN_CODE:
        found.append(Finding(path, LAYER_CLASSES_THAT_RUN_CODE[class_name]))
    if class_name in TF_OP_LAYERS:
        config = item.get("config") if isinstance(item.get("config"), dict) else {}
        function = config.get("function")
        if not (isinstance(function, str) and (function.startswith(TF_OP_PREFIXES) or function in TF_OP_NAMES)):
            found.append(Finding(path, f"calls the TensorFlow function {_short(str(function))!r} by name "
                                       f"({class_name}), not a tensor operation"))
    if class_name == "__lambda__" or "__lambda__" in item or item.get("function_type") == "lambda":
        found.append(Finding(path, "Python bytecode (a serialized lambda)"))
    if class_name == "function":
        if not (isinstance(module, str) and module.startswith(FUNCTION_MODULES)):
            found.append(Finding(path, f"a reference to the function {item.get('config')!r} in module {module!r}"))
    elif isinstance(module, str) and module != "keras" and not _allowed(module, trusted):
        found.append(Finding(path, f"names {class_name!r} from module {module!r}, outside Keras' layers"))
    if isinstance(registered, str) and ">" in registered and not _allowed(registered.split(">")[0], trusted):
        found.append(Finding(path, f"a custom class {registered!r}: its Python code is not in the file or Keras"))
    elif "module" in item and module is None and registered is None and class_name not in ("function",):
        found.append(Finding(path, f"a class {class_name!r} that is not part of Keras"))
    for key in PATH_KEYS & item.keys():
        if isinstance(item[key], str) and item[key] and key != "name":
            found.append(Finding(f"{path}.{key}", f"a file name or URL {_short(item[key])!r}"))
    return found


def _suspicious_string(location: tuple, value: str) -> bool:
    if not value or location[1] in ("name", "class_name", "module", "registered_name", "dtype"):
        return False
    return bool(_URL.match(value) or value.startswith(("/", "~", "file:")) or "../" in value
                or _WINDOWS_PATH.match(value))


def _allowed(module: str, trusted: tuple[str, ...]) -> bool:
    return module.startswith(ALLOWED_MODULE_PREFIXES) or any(module == t or module.startswith(t + ".")
                                                              for t in trusted)


def _short(text: str) -> str:
    """File authors choose these strings: keep them short and printable."""
    return one_line(text, SHORT)
