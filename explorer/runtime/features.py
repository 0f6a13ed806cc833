"""Batch feature extraction over image files: decode, run in batches, skip bad files, pool if asked.

The local engine (feature_batches) and the Ray engine's workers (explorer.runtime.ray_engine) decode and run
through the same BatchRunner, so both give the same numbers.
"""

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
POOLS = ("none", "avg", "max")  # none: the full maps; avg, max: one value per channel (the usual embedding)
FREE_SIZE = 224  # a batch needs one size: free spatial sizes become this


@dataclass(frozen=True)
class FeatureBatch:
    """One batch's result: the images that gave features, their features, and the files skipped with why."""

    files: list[str]
    features: np.ndarray  # (len(files), ...)
    skipped: list[tuple[str, str]]  # (file, reason)


@dataclass(frozen=True)
class FeatureSet:
    features: np.ndarray  # (N, ...) one row per readable image
    files: list[str]
    skipped: list[tuple[str, str]]  # (file, reason)


Decoded = tuple[str, "np.ndarray | str"]  # (file, its model input, or why it cannot be one)


class ImageDecoder:
    """Image files into the model's first input, fitted and preprocessed as the window does."""

    def __init__(self, specs: list[InputSpec], preprocessing: Preprocessing) -> None:
        first = specs[0]
        self.spec = InputSpec(first.name, tuple(FREE_SIZE if d is None else d for d in first.shape[:2])
                              + first.shape[2:], first.dtype)
        self.preprocessing = preprocessing

    def decode(self, path: str | Path) -> Decoded:
        try:
            return str(path), prepare_input(self.spec, InputSource(IMAGE), load_image(path), self.preprocessing,
                                            for_display=False).array
        except (ImageError, ValueError, OSError) as error:
            return str(path), str(error)


class BatchRunner:
    """Decodes images into the model's first input (other inputs get zeros) and runs the extractor's first
    output over a batch, pooled as asked."""

    def __init__(self, extractor: Any, specs: list[InputSpec], preprocessing: Preprocessing,
                 pool: str = "none") -> None:
        if pool not in POOLS:
            raise ValueError(f"unknown pooling {pool!r}: choose {', '.join(POOLS)}")
        self.decoder = ImageDecoder(specs, preprocessing)
        self.spec, self.decode = self.decoder.spec, self.decoder.decode
        self.extractor, self.pool = extractor, pool
        self.extras = {spec.name: prepare_input(spec, InputSource(ZEROS), None, preprocessing).array
                       for spec in specs[1:]}

    def output_shape(self) -> tuple[int, ...]:
        """One image's features as run() gives them (computed on a blank input)."""
        blank = np.zeros(self.spec.shape, self.spec.dtype)
        return tuple(self.run([("blank", blank)]).features.shape[1:])

    def run(self, decoded: list[Decoded]) -> FeatureBatch:
        good = [(path, array) for path, array in decoded if not isinstance(array, str)]
        skipped = [(path, array) for path, array in decoded if isinstance(array, str)]
        if not good:
            return FeatureBatch([], np.zeros((0,), np.float32), skipped)
        fed = {self.spec.name: np.stack([array for _, array in good])}
        fed.update({name: np.repeat(value[None], len(good), axis=0) for name, value in self.extras.items()})
        output = _first_output(self.extractor.predict_on_batch(_structured(self.extractor, fed)))
        return FeatureBatch([path for path, _ in good], pooled(output, self.pool), skipped)


def pooled(features: np.ndarray, pool: str) -> np.ndarray:
    """(N, ..., C) features averaged or maxed over every axis but the first and the channels."""
    if pool == "none" or features.ndim <= 2:
        return features
    axes = tuple(range(1, features.ndim - 1))
    return features.mean(axis=axes) if pool == "avg" else features.max(axis=axes)


def feature_batches(runner: BatchRunner, files: list[Path], batch_size: int = 32) -> Iterator[FeatureBatch]:
    """The local engine: images decoded on a thread pool (Pillow releases the GIL while decoding) one batch
    ahead of the model, so decoding and inference overlap. Batches run through Keras' compiled predict
    function: for batches, graph execution is several times faster than the eager node-by-node run the window
    uses."""
    # Inference already keeps every core busy: decoding threads beyond the spare cores only slow it down.
    with ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 2) - 1))) as pool:
        batches = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
        pending = [pool.map(runner.decode, batch) for batch in batches[:2]]  # one batch decoding ahead
        for index in range(len(batches)):
            if index + 2 < len(batches):
                pending.append(pool.map(runner.decode, batches[index + 2]))
            yield runner.run(list(pending[index]))


def extract_features(extractor: Any, specs: list[InputSpec], files: list[Path], preprocessing: Preprocessing,
                     batch_size: int = 32, progress: Progress | None = None, pool: str = "none") -> FeatureSet:
    """feature_batches collected in memory (for small jobs and the .npz output)."""
    features: np.ndarray | None = None  # filled in place: no list of batches and concatenated copy
    kept: list[str] = []
    skipped: list[tuple[str, str]] = []
    done = 0
    for batch in feature_batches(BatchRunner(extractor, specs, preprocessing, pool), files, batch_size):
        if batch.files:
            if features is None:
                features = np.empty((len(files), *batch.features.shape[1:]), batch.features.dtype)
            features[len(kept):len(kept) + len(batch.files)] = batch.features
            kept += batch.files
        skipped += batch.skipped
        done += len(batch.files) + len(batch.skipped)
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
