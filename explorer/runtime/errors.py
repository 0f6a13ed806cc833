"""Errors of the live tier, for the front ends to word (explorer.cli, explorer.ui)."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """A model that cannot be loaded or a layer whose output cannot be computed; message is for the user."""
