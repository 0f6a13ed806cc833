"""Strings from a model file (layer names, class names, config values, error text) are shown literally:
Qt renders anything that looks like HTML as rich text, so they are escaped or put in plain-text widgets."""

from __future__ import annotations

import html


def escape(text: object) -> str:
    return html.escape(str(text))


def tooltip(text: object) -> str:
    """A tooltip that shows ``text`` as written (``<qt>`` forces rich text, so the escaped text is literal)."""
    return "<qt>" + escape(text).replace("\n", "<br>") + "</qt>"
