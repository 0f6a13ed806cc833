"""``keras-explorer features``: one layer run over every image in a folder, the features saved as .npz."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from explorer.cli.common import (
    CommandError,
    add_trust_options,
    chosen_preprocessing,
    early_targets,
    loaded_targets,
    open_live,
    read_loadable,
)
from explorer.inputs.images import PRESETS, image_files
from explorer.runtime.extraction import extractor_for
from explorer.runtime.features import extract_features

NAME = "features"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="run a layer over every image in a folder and save the features (.npz)")
    parser.add_argument("model")
    parser.add_argument("--layer", required=True)
    parser.add_argument("--call", type=int, default=0)
    parser.add_argument("--images", required=True, help="folder of images; unreadable ones are skipped")
    parser.add_argument("--preprocess", choices=PRESETS[:-1], help="default: the suggested preset")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("-o", "--output", required=True, help="FEATS.npz with 'features' (N, ...) and 'files'")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    graph = read_loadable(options)
    early = early_targets(options, graph, [options.layer], [options.call])
    files = image_files(options.images)
    if not files:
        raise CommandError(f"{options.images}: no images (png, jpg, bmp, tif, webp, gif) in this folder")
    preprocessing = chosen_preprocessing(graph, options.preprocess)
    live = open_live(options, graph)
    (target,) = early or loaded_targets(graph, live, [options.layer], [options.call])
    extractor = extractor_for(live, target.layer, target.call_site)
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


def _progress_bar(started: float) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total} images, {rate:.1f}/s", end="",
              file=sys.stderr, flush=True)
    return show
