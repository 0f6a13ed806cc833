"""Class names for a classifier's scores: a ``<model>_classes.json`` list beside the model file."""

from __future__ import annotations

import json
from pathlib import Path


def class_names(model_path: Path) -> list[str]:
    """The names from ``<model stem>_classes.json`` beside the model, when there is one (else [])."""
    names_file = model_path.with_name(f"{model_path.stem}_classes.json")
    try:
        names = json.loads(names_file.read_text())
    except (OSError, ValueError):
        return []
    return [str(n) for n in names] if isinstance(names, list) else []
