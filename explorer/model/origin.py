"""Which Keras wrote a file, said the way users know it: "Keras 2.21.0 (tf-keras), legacy HDF5"."""

from __future__ import annotations

from typing import Any

from explorer.model.graph import LayerGraph

TF_KERAS_MODULES = ("tf_keras",)  # the tf-keras package (the Keras 2 of TF >= 2.16)
TF_DOT_KERAS_MODULES = ("keras.src.engine", "keras.engine")  # Keras 2 shipped as tf.keras (TF 2.13-2.15)


def writer_of(keras_version: str | None, config: Any) -> str | None:
    """The Keras distribution that wrote a config: "tf-keras", "tf.keras", or None for Keras itself (or when
    nothing tells). Keras 2 configs name their modules only from 2.13 on; before, the version tells."""
    module = str(config.get("module") or "") if isinstance(config, dict) else ""
    if module.startswith(TF_KERAS_MODULES):
        return "tf-keras"
    if module.startswith(TF_DOT_KERAS_MODULES):
        return "tf.keras"
    major, minor = _version(keras_version)
    if major != 2:
        return None
    if minor >= 16:
        return "tf-keras"
    return "tf.keras" if minor >= 4 else None  # Keras 2.0-2.3 was a package of its own with several backends


def origin_text(graph: LayerGraph) -> str:
    """One line for the inspector and the status bar."""
    if graph.keras_version:
        saved_by = f"Keras {graph.keras_version}" + (f" ({graph.writer})" if graph.writer else "")
    else:
        saved_by = "an unknown Keras version"
    return f"saved by {saved_by}, {graph.file_format}" if graph.file_format else f"saved by {saved_by}"


def _version(text: str | None) -> tuple[int, int]:
    parts = (text or "").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0
