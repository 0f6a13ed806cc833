"""Text that came from a model file or a library error, made fit to show (one printable line, bounded); shapes as
users type them."""

from __future__ import annotations

SHORT, MESSAGE, BANNER = 80, 300, 400  # a quoted file string, an error's reason, the window's error banner


def one_line(text: str, limit: int = MESSAGE) -> str:
    """Whitespace runs become one space, other unprintable characters ``?``; cut at ``limit`` with an ellipsis."""
    line = " ".join("".join(c if c.isprintable() or c.isspace() else "?" for c in text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def parse_shape(text: str) -> tuple[int | None, ...]:
    """``224,224,3`` (or ``(None, 6)``-like text) as a shape; ValueError for anything else."""
    parts = [part.strip() for part in text.strip().strip("()[]").split(",") if part.strip()]
    try:
        shape = tuple(None if part.lower() in ("none", "?") else int(part) for part in parts)
    except ValueError:
        raise ValueError(f"not an input shape: {text!r} (write it like 224,224,3)") from None
    if any(d is not None and d <= 0 for d in shape):
        raise ValueError(f"not an input shape: {text!r} (sizes are positive)")
    return shape


def shape_text(shape: tuple[int | None, ...]) -> str:
    return ",".join("None" if d is None else str(d) for d in shape)
