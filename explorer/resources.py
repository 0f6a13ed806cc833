"""Where the bundled demo model and sample images live (a source checkout or an installed package)."""

from __future__ import annotations

from pathlib import Path

from explorer.inputs.images import IMAGE_SUFFIXES

_CANDIDATES = (
    Path(__file__).resolve().parent / "bundled",  # installed: packaged next to the code
    Path(__file__).resolve().parent.parent / "resources",  # source checkout / editable install
)


def resources_dir() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / "demo_model.keras").exists():
            return candidate
    return _CANDIDATES[-1]


def demo_model() -> Path:
    return (resources_dir() / "demo_model.keras").resolve()


def demo_images() -> list[Path]:
    folder = resources_dir() / "images"
    if not folder.exists():
        return []
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
