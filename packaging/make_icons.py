"""Render resources/icons/keras-explorer.svg to the PNG sizes desktops ask for (16 ... 256 pixels).

    make icons      (or: QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py)

Uses Qt's own SVG renderer (QtSvg), offscreen: no display needed. The PNGs are committed; run this after
changing the SVG.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SVG = ICONS / "keras-explorer.svg"
SIZES = (16, 32, 48, 64, 128, 256)


def render(svg: Path = SVG, sizes: tuple[int, ...] = SIZES, out: Path = ICONS) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841  (QPainter needs one)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {svg} is not a valid SVG")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        path = out / f"keras-explorer-{size}.png"
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"make_icons: could not write {path}")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ICONS, help=f"folder for the PNGs (default: {ICONS})")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated pixel sizes")
    options = parser.parse_args()
    for path in render(SVG, tuple(int(s) for s in options.sizes.split(",")), options.out):
        print(path)


if __name__ == "__main__":
    main()
