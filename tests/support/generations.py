"""The files older Keras generations wrote (tests/fixtures/make_generations.py) and what each Keras reported."""

from __future__ import annotations

import json
from pathlib import Path

GENERATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "generations"
MANIFEST: dict[str, dict] = json.loads((GENERATIONS / "manifest.json").read_text())
