"""``keras-explorer stats``: per layer and channel over a folder of images: mean, max, and the fraction of
images where the channel is dead, in one bounded-memory pass per batch."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from explorer.cli.common import (
    CommandError,
    add_trust_options,
    chosen_preprocessing,
    open_live,
    progress_bar,
    read_loadable,
)
from explorer.inputs.images import PRESETS, image_files

NAME = "stats"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="per-layer, per-channel statistics over a folder of images (Parquet)",
        description="One row per (layer, channel): layer, call_site, channel, mean (of the per-image channel "
                    "means), max, dead_fraction (images where the channel never exceeds 0), images. Every "
                    "layer is reduced as it is computed, so memory does not grow with the model's size.")
    parser.add_argument("model")
    parser.add_argument("--images", required=True, help="a folder of images, or a pattern such as 'photos/*.jpg'")
    parser.add_argument("--preprocess", choices=PRESETS[:-1], help="default: the suggested preset")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("-o", "--output", required=True, help="STATS.parquet")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from explorer.runtime.features import ImageDecoder
    from explorer.runtime.layer_stats import FlatModel, FolderStats

    graph = read_loadable(options)
    files = [path.resolve() for path in image_files(options.images)]
    if not files:
        raise CommandError(f"{options.images}: no images there")
    preprocessing = chosen_preprocessing(graph, options.preprocess)
    live = open_live(options, graph)
    model = live.keras3_graph()
    if model is None:
        raise CommandError("stats needs a model with a graph (this subclassed model could not be traced)")
    decoder, flat, stats = ImageDecoder(live.specs, preprocessing), FlatModel(model), FolderStats()
    started, skipped = time.perf_counter(), []
    show = progress_bar(started)
    for start in range(0, len(files), options.batch_size):
        decoded = [decoder.decode(path) for path in files[start:start + options.batch_size]]
        skipped += [(path, array) for path, array in decoded if isinstance(array, str)]
        good = [array for _, array in decoded if not isinstance(array, str)]
        if good:
            stats.add(flat, np.stack(good))
        show(start + len(decoded), len(files))
    print(file=sys.stderr)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    pq.write_table(stats.table(), Path(options.output))
    print(f"{options.output}: {len(stats.sums)} layers over {stats.images} images, {len(skipped)} skipped")
    return 0
