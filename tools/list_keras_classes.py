"""Writes explorer/model/keras_classes.json: every layer and model class name that a Keras release can load by
name, so a config naming a class that exists in no Keras version is reported (issue 10).

Run by hand with each Keras importable (Keras 3 from this venv; tf-keras through PYTHONPATH), and the wheels of
older Keras 2 releases (which need a TensorFlow or Theano this Python cannot install) read as source:

    pip download --no-deps keras==2.3.1 keras==2.12.0 -d WHEELS
    PYTHONPATH=<folder with tf_keras> .venv/bin/python tools/list_keras_classes.py WHEELS/*.whl
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
OUT = Path(__file__).resolve().parents[1] / "explorer" / "model" / "keras_classes.json"
# (module imported as keras, the namespaces whose layer classes it deserializes by name)
DISTRIBUTIONS = (("keras", ("layers", "models")), ("tf_keras", ("layers", "layers.experimental",
                                                                  "layers.experimental.preprocessing", "models")))
# tf-keras deserializes these without listing them in a public namespace (engine/ and layers/core/tf_op_layer).
TF_KERAS_PRIVATE = {"tf_keras.src.layers.core.tf_op_layer": ("TFOpLambda", "SlicingOpLambda", "InstanceProperty",
                                                             "InstanceMethod", "ClassMethod", "KerasOpDispatcher"),
                    "tf_keras.src.engine.base_layer": ("TensorFlowOpLayer", "AddLoss", "AddMetric"),
                    "tf_keras.src.engine.functional": ("Functional",)}


def classes(module_name: str, namespaces: tuple[str, ...]) -> dict[str, str]:
    keras = importlib.import_module(module_name)
    base = keras.layers.Layer
    found: dict[str, str] = {}
    for namespace in namespaces:
        try:
            module = importlib.import_module(f"{module_name}.{namespace}")
        except ImportError:
            continue
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, base):
                found[name] = keras.__version__
    if module_name == "tf_keras":
        for private, names in TF_KERAS_PRIVATE.items():
            module = importlib.import_module(private)
            found.update({name: keras.__version__ for name in names if hasattr(module, name)})
    return found


def classes_in_wheel(wheel: Path) -> dict[str, str]:
    """Classes defined in an old Keras wheel's layers/ and engine/ packages, read from its source (not run)."""
    version = wheel.name.split("-")[1]
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(("keras/layers/", "keras/engine/", "keras/src/layers/", "keras/src/engine/")) \
                    and name.endswith(".py"):
                tree = ast.parse(archive.read(name))
                found.update({node.name: f"keras {version}" for node in ast.walk(tree)
                              if isinstance(node, ast.ClassDef) and not node.name.startswith("_")})
    return found


def operations() -> list[str]:
    """Keras 3's keras.ops operation classes: in a functional graph they are nodes, not layers Keras loads."""
    from keras.src.ops.operation import Operation

    found = set()
    for name in ("core", "image", "linalg", "math", "nn", "numpy"):
        module = importlib.import_module(f"keras.src.ops.{name}")
        found |= {key for key, value in vars(module).items()
                  if inspect.isclass(value) and issubclass(value, Operation) and value is not Operation}
    return sorted(found)


def main() -> int:
    known: dict[str, list[str]] = {}
    for module_name, namespaces in DISTRIBUTIONS:
        try:
            found = classes(module_name, namespaces)
        except ImportError as error:
            print(f"skipped {module_name}: {error}", file=sys.stderr)
            continue
        for name, version in found.items():
            known.setdefault(name, []).append(f"{module_name} {version}")
        print(f"{module_name}: {len(found)} classes", file=sys.stderr)
    for wheel in sys.argv[1:]:
        for name, release in classes_in_wheel(Path(wheel)).items():
            known.setdefault(name, []).append(release)
        print(f"{wheel}: read", file=sys.stderr)
    payload = {"about": "Layer and model class names each Keras release loads by name (tools/list_keras_classes.py)",
               "classes": {name: sorted(versions) for name, versions in sorted(known.items())},
               "operations": operations()}
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"{OUT}: {len(known)} class names", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
