"""The stages below the runtime are Qt-free and TensorFlow-free: importing them must not load PySide6, TensorFlow
or Keras (import-linter checks the import statements; this checks what a fresh process really loads)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("PySide6", "shiboken6", "tensorflow", "keras", "tf_keras", "jax", "torch")

PROBE = """
import json, sys
import explorer.model.files
import explorer.model.summary
{extra}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
print(json.dumps(loaded))
"""


def _modules_loaded(extra: str = "") -> list[str]:
    code = PROBE.format(extra=extra, heavy=repr(set(HEAVY)))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_imports_load_no_qt_or_tensorflow():
    assert _modules_loaded() == []


LIGHT_STAGES = ("model", "layout", "inputs", "live")


def test_every_module_below_the_runtime_imports_without_heavy_dependencies():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                     for stage in LIGHT_STAGES for p in (ROOT / "explorer" / stage).rglob("*.py"))
    assert {"explorer.model.graph", "explorer.model.files", "explorer.model.readers.keras_zip",
            "explorer.layout.graphviz", "explorer.inputs.images", "explorer.live.client"} <= set(modules)
    extra = "\n".join(f"import {name}" for name in modules)
    assert _modules_loaded(extra) == []


def test_runtime_modules_import_keras_only_when_called():
    """The spawn target and the runtime are imported by the window; Keras loads in the worker, not here."""
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                     for p in (ROOT / "explorer" / "runtime").rglob("*.py"))
    extra = "\n".join(f"import {name}" for name in modules)
    assert _modules_loaded(extra) == []


def test_loading_a_model_loads_no_qt_or_tensorflow(zoo):
    """Reading a real model file (archive and legacy .h5) stays TensorFlow-free too."""
    paths = [str(zoo(name).path) for name in ("nested", "legacy_nested_h5")]
    extra = "\n".join(
        [f"from explorer.model.summary import summary_dict; summary_dict(explorer.model.files.load_graph({p!r}))"
         for p in paths]
    )
    assert _modules_loaded(extra) == []


@pytest.mark.parametrize("module", ["explorer.model.files", "explorer.model.summary"])
def test_single_module_import(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
