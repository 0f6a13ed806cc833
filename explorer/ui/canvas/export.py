"""Render the drawn graph scene to SVG or PNG (no 32767 px cap: large PNGs are scaled to fit)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsScene

from explorer.layout.graphviz import GRAPH_SUFFIXES

MAX_PNG_SIDE = 30000  # QImage and most viewers choke beyond this; the scene is scaled down to fit
PNG_SCALE = 2.0  # 2x for crisp text on high-DPI screens


def export_scene(scene: QGraphicsScene, path: str | Path) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GRAPH_SUFFIXES:
        raise ValueError(f"unsupported graph format '{path.suffix}': use .svg or .png")
    selected = scene.selectedItems()
    scene.clearSelection()  # the export shows the model, not the user's current selection
    try:
        source = scene.sceneRect()
        if suffix == ".svg":
            _write_svg(scene, source, path)
        else:
            _write_png(scene, source, path)
    finally:
        for item in selected:
            item.setSelected(True)
    return path


def _write_svg(scene: QGraphicsScene, source: QRectF, path: Path) -> None:
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(QSize(int(source.width()), int(source.height())))
    generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
    generator.setTitle(path.stem)
    painter = QPainter(generator)
    scene.render(painter, QRectF(0, 0, source.width(), source.height()), source)
    painter.end()
    if not path.exists():
        raise OSError(f"could not write {path}")


def _write_png(scene: QGraphicsScene, source: QRectF, path: Path) -> None:
    scale = min(PNG_SCALE, MAX_PNG_SIDE / max(source.width(), source.height(), 1.0))
    image = QImage(max(1, int(source.width() * scale)), max(1, int(source.height() * scale)),
                   QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
    scene.render(painter, QRectF(image.rect()), source, Qt.AspectRatioMode.KeepAspectRatio)
    painter.end()
    if not image.save(str(path)):
        raise OSError(f"could not write {path}")
