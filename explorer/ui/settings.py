"""Everything the app remembers between runs, as typed keys with defaults over one QSettings store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from explorer.live.cache import DEFAULT_BUDGET

T = TypeVar("T")
MAX_RECENT = 10


@dataclass(frozen=True)
class Key(Generic[T]):
    name: str
    default: T


RECENT_FILES: Key[list[str]] = Key("recentFiles", [])
TRUSTED_DIGESTS: Key[list[str]] = Key("trustedFileDigests", [])  # SHA-256 of each file the user trusted
CACHE_BYTES: Key[int] = Key("activationCacheBytes", DEFAULT_BUDGET)
GEOMETRY: Key[QByteArray | None] = Key("geometry", None)
WINDOW_STATE: Key[QByteArray | None] = Key("windowState", None)


class Settings:
    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings()

    def strings(self, key: Key[list[str]]) -> list[str]:
        # QSettings' ini backend returns a lone string for a one-element list, and None for an empty one.
        value = self.store.value(key.name, key.default)
        return [value] if isinstance(value, str) else [str(v) for v in value or []]

    def integer(self, key: Key[int]) -> int:
        try:
            return int(self.store.value(key.name, key.default))
        except (TypeError, ValueError):
            return key.default

    def blob(self, key: Key[QByteArray | None]) -> QByteArray | None:
        value = self.store.value(key.name, key.default)
        return value if isinstance(value, QByteArray) else None

    def set(self, key: Key[T], value: T) -> None:
        self.store.setValue(key.name, value)

    def recent_files(self) -> list[str]:
        return self.strings(RECENT_FILES)

    def add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent_files() if p != path]
        self.set(RECENT_FILES, files[:MAX_RECENT])
