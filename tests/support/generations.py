"""The files older Keras generations wrote (tests/fixtures/make_generations.py) and what each Keras reported."""

from __future__ import annotations

import json
from pathlib import Path

GENERATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "generations"
MANIFEST: dict[str, dict] = json.loads((GENERATIONS / "manifest.json").read_text())
# What Keras wrote and read back; the rest (a plain TensorFlow SavedModel) holds no Keras model at all.
KERAS_FILES: dict[str, dict] = {name: facts for name, facts in MANIFEST.items() if facts.get("keras_metadata", True)}
