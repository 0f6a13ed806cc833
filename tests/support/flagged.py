"""A copy of the bundled demo the safety check flags (a URL in its config) that Keras still loads: the model a
user must trust before anything runs it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from explorer.resources import demo_model


def flagged_demo(path: Path) -> Path:
    with zipfile.ZipFile(demo_model()) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "config.json":
                data = json.dumps({**json.loads(data), "origin": "https://example.invalid/weights.h5"}).encode()
            target.writestr(member, data)
    return path
