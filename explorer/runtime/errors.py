"""Errors of the live tier, for the front ends to word (explorer.cli, explorer.ui).

``str()`` of each is a neutral sentence (no command-line flag, no menu): the window shows it as it is, and the
command line words the structured ones with its own flags (explorer.cli.common.describe). Each passes its
fields to ``Exception.__init__`` in the order of its own ``__init__``, so it pickles (the worker may send it).
"""

from __future__ import annotations

from collections.abc import Sequence

from explorer.model.graph import Finding


class RuntimeFailure(Exception):
    """A model that cannot be loaded or a layer whose output cannot be computed; message is for the user."""


class UntrustedFile(RuntimeFailure):
    """The static safety check found code or system access in the file, and the user has not trusted it."""

    def __init__(self, file: str, findings: Sequence[Finding]) -> None:
        super().__init__(file, tuple(findings))
        self.file, self.findings = file, tuple(findings)

    def __str__(self) -> str:
        first = f", first: {self.findings[0]}" if self.findings else ""
        return f"refusing to load {self.file} into Keras: {len(self.findings)} safety finding(s){first}"


class CustomObjectsNeedTrust(RuntimeFailure):
    """Custom objects were given for a file the user has not trusted: running them is running its code."""

    def __str__(self) -> str:
        return "custom objects are Python code: they run only for a trusted file"


class BuildNeedsCode(RuntimeFailure):
    """A model is to be built from code, but no Python file defining it was given."""

    def __str__(self) -> str:
        return "building the model from code needs the Python file that defines it"


class NotRebuildable(RuntimeFailure):
    """Keras cannot recreate the model's class from its saved config (typically an ``__init__`` without
    ``**kwargs``); building it from its code would work."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(file, reason)
        self.file, self.reason = file, reason

    def __str__(self) -> str:
        return (f"Keras could not load {self.file}: {self.reason} (the class cannot be rebuilt from its saved "
                "config; build the model from its code instead)")


class ArchitectureWithoutWeights(RuntimeFailure):
    """An architecture JSON with no save_weights file beside it nor given: a model built from it alone would
    compute with freshly initialised weights, numbers that mean nothing."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.file = file

    def __str__(self) -> str:
        return (f"{self.file} is an architecture without weights: give it its save_weights file to compute "
                "with it (its numbers would otherwise be those of random weights)")


class UnknownLayer(RuntimeFailure):
    """``layer`` (a name, or a path ``outer/inner``) is not in the model ``model_name``."""

    def __init__(self, layer: str, model_name: str) -> None:
        super().__init__(layer, model_name)
        self.layer, self.model_name = layer, model_name

    def __str__(self) -> str:
        return f"no layer named '{self.layer}' in {self.model_name}"


class CallSiteOutOfRange(RuntimeFailure):
    """``layer`` runs at ``call_count`` call sites (0-based), and call site ``call`` is not one of them."""

    def __init__(self, layer: str, call: int, call_count: int) -> None:
        super().__init__(layer, call, call_count)
        self.layer, self.call, self.call_count = layer, call, call_count

    def __str__(self) -> str:
        return f"layer '{self.layer}' is called {self.call_count} time(s); call {self.call} does not exist"
