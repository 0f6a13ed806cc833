"""Per-file trust: remembered by SHA-256 of the exact file, never globally, and asked for by naming what runs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from explorer.model.graph import Finding
from explorer.model.model_file import file_digest
from explorer.ui.settings import TRUSTED_DIGESTS, Settings

LISTED_FINDINGS = 20


class TrustStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._digests: dict[tuple, str] = {}  # (path, (file, size, mtime)...) -> SHA-256: hash each version once

    def _digest(self, path: Path) -> str:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]  # a SavedModel
        key = (str(path), *((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]

    def is_trusted(self, path: Path) -> bool:
        try:
            return self._digest(path) in self.settings.strings(TRUSTED_DIGESTS)
        except OSError:  # moved or deleted since it was opened: not the file the user trusted
            return False

    def remember(self, path: Path) -> None:
        self.settings.set(TRUSTED_DIGESTS, [*self.settings.strings(TRUSTED_DIGESTS), self._digest(path)])


def confirm_trust(parent: QWidget, file_name: str, findings: tuple[Finding, ...], extra: str = "") -> bool:
    """Ask, listing exactly what the safety check found (and ``extra``, e.g. a custom-objects file)."""
    listing = "\n".join(f"• {finding}" for finding in findings[:LISTED_FINDINGS])
    if extra:
        listing += f"\n• {extra}"
    more = f"\n… and {len(findings) - LISTED_FINDINGS} more" if len(findings) > LISTED_FINDINGS else ""
    box = QMessageBox(
        QMessageBox.Icon.Warning, "Trust this file?",
        f"Loading {file_name} into Keras would run or use what the safety check found:\n\n"
        f"{listing}{more}\n\nOnly trust files whose author you trust. This exact file (by its content "
        "hash) will be remembered; any change to it needs trusting again.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # the findings quote the file's own strings
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.button(QMessageBox.StandardButton.Yes).setText("Trust and run it")
    return box.exec() == QMessageBox.StandardButton.Yes
