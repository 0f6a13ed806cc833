"""Batch feature extraction over a folder of images: decode in parallel, run in batches, skip bad files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.inputs.images import ImageError, Preprocessing, load_image
from explorer.inputs.sources import IMAGE, ZEROS, InputSource, prepare_input
from explorer.model.graph import InputSpec

Progress = Callable[[int, int], None]  # (images done, images in total)


@dataclass(frozen=True)
class FeatureSet:
    features: np.ndarray  # (N, ...) one row per readable image
    files: list[str]
    skipped: list[tuple[str, str]]  # (file, reason)


def extract_features(extractor: Any, specs: list[InputSpec], files: list[Path], preprocessing: Preprocessing,
                     batch_size: int = 32, progress: Progress | None = None) -> FeatureSet:
    """Run ``extractor`` (first output) over ``files``; the first model input takes the image, others zeros.

    Images are decoded on a thread pool (Pillow releases the GIL while decoding) one batch ahead of the
    model, so decoding and inference overlap. Batches run through Keras' compiled predict function: for
    batches, graph execution is several times faster than the eager node-by-node run the window uses.
    """
    first = specs[0]
    if any(d is None for d in first.shape[:2]):  # a batch needs one size: free sizes become 224
        first = InputSpec(first.name, tuple(224 if d is None else d for d in first.shape[:2]) + first.shape[2:],
                          first.dtype)
    features: np.ndarray | None = None  # filled in place: no list of batches and concatenated copy
    kept: list[str] = []
    skipped: list[tuple[str, str]] = []
    extras = {spec.name: prepare_input(spec, InputSource(ZEROS), None, preprocessing).array for spec in specs[1:]}
    done = 0
    for batch in _decoded_batches(first, files, preprocessing, batch_size):
        arrays = [(path, array) for path, array in batch if not isinstance(array, str)]
        skipped += [(str(path), array) for path, array in batch if isinstance(array, str)]
        if arrays:
            fed = {first.name: np.stack([a for _, a in arrays])}
            fed.update({name: np.repeat(value[None], len(arrays), axis=0) for name, value in extras.items()})
            output = _first_output(extractor.predict_on_batch(_structured(extractor, fed)))
            if features is None:
                features = np.empty((len(files), *output.shape[1:]), output.dtype)
            features[len(kept):len(kept) + len(output)] = output
            kept += [str(path) for path, _ in arrays]
        done += len(batch)
        if progress:
            progress(done, len(files))
    result = features[: len(kept)] if features is not None else np.zeros((0,), np.float32)
    return FeatureSet(result, kept, skipped)


def _structured(extractor: Any, fed: dict[str, np.ndarray]) -> Any:
    """The batch in the structure of the extractor's inputs (a dict, a list, or one array)."""
    structure = extractor.input
    if isinstance(structure, dict):
        return fed
    return list(fed.values()) if isinstance(structure, list | tuple) else next(iter(fed.values()))


def _first_output(result: Any) -> np.ndarray:
    if isinstance(result, dict):
        result = result[sorted(result)[0]]
    elif isinstance(result, list | tuple):
        result = result[0]
    return np.asarray(result)


def _decoded_batches(spec: InputSpec, files: list[Path], preprocessing: Preprocessing,
                     batch_size: int) -> Iterator[list[tuple[Path, np.ndarray | str]]]:
    def decode(path: Path) -> tuple[Path, np.ndarray | str]:
        try:
            return path, prepare_input(spec, InputSource(IMAGE), load_image(path), preprocessing,
                                       for_display=False).array
        except (ImageError, ValueError, OSError) as error:
            return path, str(error)

    # Inference already keeps every core busy: decoding threads beyond the spare cores only slow it down.
    with ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 2) - 1))) as pool:
        batches = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
        pending = [pool.map(decode, batch) for batch in batches[:2]]  # one batch decoding ahead
        for index in range(len(batches)):
            if index + 2 < len(batches):
                pending.append(pool.map(decode, batches[index + 2]))
            yield list(pending[index])
