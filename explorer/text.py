"""Text that came from a model file or a library error, made fit to show: one printable line, bounded."""

from __future__ import annotations

SHORT, MESSAGE, BANNER = 80, 300, 400  # a quoted file string, an error's reason, the window's error banner


def one_line(text: str, limit: int = MESSAGE) -> str:
    """Whitespace runs become one space, other unprintable characters ``?``; cut at ``limit`` with an ellipsis."""
    line = " ".join("".join(c if c.isprintable() or c.isspace() else "?" for c in text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
