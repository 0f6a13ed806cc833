"""The core is Qt-free and TensorFlow-free: importing it must not load PySide6, TensorFlow or Keras."""

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
import explorer.core
import explorer.core.keras_file
import explorer.core.summary
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


def test_every_core_module_imports_without_heavy_dependencies():
    modules = sorted(p.stem for p in (ROOT / "explorer" / "core").glob("*.py") if p.stem != "__init__")
    assert {"graph", "keras_file", "config_graph", "shapes", "weights", "categories", "summary"} <= set(modules)
    extra = "\n".join(f"import explorer.core.{name}" for name in modules)
    assert _modules_loaded(extra) == []


def test_loading_a_model_loads_no_qt_or_tensorflow(zoo):
    """Reading a real model file (archive and legacy .h5) stays TensorFlow-free too."""
    paths = [str(zoo(name).path) for name in ("nested", "legacy_nested_h5")]
    extra = "\n".join(
        [f"from explorer.core.summary import summary_dict; summary_dict(explorer.core.keras_file.load_graph({p!r}))"
         for p in paths]
    )
    assert _modules_loaded(extra) == []


@pytest.mark.parametrize("module", ["explorer.core.keras_file", "explorer.core.summary"])
def test_single_module_import(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
