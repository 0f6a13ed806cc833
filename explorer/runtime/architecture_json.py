"""An architecture JSON (``model.to_json()``) comes with its weights in another file: the one the structure tier
read with it (beside it, or chosen by the user), never none, since a model built from the JSON alone computes with
random weights. Files Keras 2 wrote load with tf-keras (explorer.runtime.keras2); Keras 3 ones load here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explorer.runtime.errors import ArchitectureWithoutWeights


def architecture_weights(path: str | Path, graph: Any) -> str:
    """The save_weights file of an architecture JSON, as the structure tier read it."""
    if graph.weights_file is None:
        raise ArchitectureWithoutWeights(Path(path).name)
    return graph.weights_file


def keras3_from_json(path: str | Path, graph: Any, custom_objects: dict[str, Any] | None, trust: bool) -> Any:
    """The Keras 3 model of an architecture JSON with its weights loaded (safe mode unless ``trust``)."""
    import keras
    from keras.src.saving.serialization_lib import SafeModeScope

    weights = architecture_weights(path, graph)
    with SafeModeScope(not trust):  # model_from_json has no safe_mode argument: the scope is its switch
        model = keras.models.model_from_json(Path(path).read_text(encoding="utf-8"), custom_objects=custom_objects)
    model.load_weights(weights)
    return model
