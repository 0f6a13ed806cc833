"""Light and dark themes that follow the system's colour scheme (and its changes while running)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication


def is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    if hints.colorScheme() != Qt.ColorScheme.Unknown:
        return hints.colorScheme() == Qt.ColorScheme.Dark
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication) -> None:
    """Fusion everywhere (same look on every desktop), with a dark palette when the system is dark."""
    app.setStyle("Fusion")
    app.setPalette(_dark_palette() if is_dark() else app.style().standardPalette())


def _dark_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f2023", QPalette.ColorRole.AlternateBase: "#2a2b2e",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#35373b",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#2f6fbf",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#35373b",
        QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.PlaceholderText: "#8a8a8a",
        QPalette.ColorRole.Link: "#7ab4ff",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    return palette


def frame_colours() -> tuple[QColor, QColor]:
    """(border, title) of an expanded nested model's frame in the current theme."""
    if is_dark():
        return QColor("#6f9fd6"), QColor("#9cc3ee")
    return QColor("#4a7fb5"), QColor("#2b5b8a")


def canvas_colours() -> tuple[QColor, QColor, QColor]:
    """(background, edge, edge label) for the graph canvas in the current theme."""
    if is_dark():
        return QColor("#1e1f22"), QColor("#a0a4ab"), QColor("#9cc3ee")
    return QColor("#fbfbfb"), QColor("#666666"), QColor("#335577")


# (light, dark) colours of the strips above the graph: error banner, information and warning notices.
_STRIPS = {
    "error": ("background: #fde2e1; color: #8a1f11; border-bottom: 1px solid #e0a9a4;",
              "background: #4a2422; color: #ffc9c2; border-bottom: 1px solid #7a3b36;"),
    "info": ("background: #e8f1fb; color: #1d3f63; border-bottom: 1px solid #b8cfe8;",
             "background: #1f3247; color: #cfe3fa; border-bottom: 1px solid #36506e;"),
    "warning": ("background: #fff4d6; color: #5c4400; border-bottom: 1px solid #e6cf8f;",
                "background: #46391a; color: #ffe6a6; border-bottom: 1px solid #6d5a2a;"),
}


def notice_style(kind: str) -> str:
    """Style sheet declarations of a strip of ``kind`` ("error", "info", "warning") in the current theme."""
    light, dark = _STRIPS[kind]
    return dark if is_dark() else light
