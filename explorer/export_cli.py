"""``keras-explorer export`` and ``keras-explorer features``: feature extractors in batch, headless."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from explorer.activations_cli import chosen_preprocessing
from explorer.inputs.images import image_files
from explorer.model.graph import LayerGraph
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.export import KERAS, SAVEDMODEL, export_extractor, resolve_targets
from explorer.runtime.extraction import build_extractor
from explorer.runtime.features import extract_features
from explorer.runtime.loading import open_model


def run_export(graph: LayerGraph, options: argparse.Namespace) -> int:
    targets = resolve_targets(graph, options.layer, options.call)
    fmt = options.format or (KERAS if options.output.endswith(".keras") else SAVEDMODEL)
    live = open_model(options.model, options.trust, options.custom_objects, graph)
    if live.graph is None:
        raise RuntimeFailure("this subclassed model could not be traced, so no extractor can be cut from it")
    model, specs = live.graph, live.specs
    rng = np.random.default_rng(0)  # a fixed input in the pixel range for the verification run
    inputs = {s.name: rng.uniform(0, 255, tuple(64 if d is None else d for d in s.shape)).astype(np.float32)
              for s in specs}
    report = export_extractor(model, options.model, targets, options.output, fmt, inputs, options.trust)
    print(f"{report.path}: {report.message}", file=sys.stdout if report.verified else sys.stderr)
    return 0 if report.verified else 2


def run_features(graph: LayerGraph, options: argparse.Namespace) -> int:
    target = resolve_targets(graph, [options.layer], [options.call])[0]
    files = image_files(options.images)
    if not files:
        raise RuntimeFailure(f"{options.images}: no images (png, jpg, bmp, tif, webp, gif) in this folder")
    preprocessing = chosen_preprocessing(graph, options.preprocess)
    live = open_model(options.model, options.trust, options.custom_objects, graph)
    if live.graph is None:
        raise RuntimeFailure("this subclassed model could not be traced, so no extractor can be cut from it")
    extractor = build_extractor(live.graph, target.layer, target.call_site)
    started = time.perf_counter()
    result = extract_features(extractor, live.specs, files, preprocessing, options.batch_size,
                              _progress_bar(started))
    seconds = time.perf_counter() - started
    np.savez(options.output, features=result.features, files=np.array(result.files))
    print(file=sys.stderr)
    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{options.output}: {len(result.files)} images, features {tuple(result.features.shape)}, "
          f"{len(result.files) / seconds:.1f} images/s, {len(result.skipped)} skipped")
    return 0


def _progress_bar(started: float):
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total} images, {rate:.1f}/s", end="",
              file=sys.stderr, flush=True)
    return show

