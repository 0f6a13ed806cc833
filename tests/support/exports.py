"""Reading back what an export recorded, independently of the app's own reader (load_graph's provenance)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from explorer.runtime.export import METADATA_KEY, SAVEDMODEL_METADATA


def read_export_metadata(path: str | Path) -> dict[str, Any] | None:
    """Provenance recorded by an export (``.keras`` metadata.json or the SavedModel's side file), or None."""
    file = Path(path)
    try:
        if file.is_dir():
            return json.loads((file / SAVEDMODEL_METADATA).read_text())
        with zipfile.ZipFile(file) as archive:
            metadata = json.loads(archive.read("metadata.json"))
        return metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
