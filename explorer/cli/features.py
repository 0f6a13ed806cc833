"""``keras-explorer features``: one layer run over every image of a folder or pattern, locally or on Ray, the
features written as Parquet (one file or a dataset folder) or .npz as batches finish."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from explorer.cli.common import (
    CommandError,
    add_trust_options,
    chosen_preprocessing,
    early_targets,
    loaded_targets,
    open_live,
    progress_bar,
    read_loadable,
)
from explorer.inputs.images import PRESETS, Preprocessing, image_files
from explorer.model.graph import Target
from explorer.runtime.extraction import extractor_for
from explorer.runtime.feature_store import (
    FOLDER,
    FeatureWriter,
    new_run_id,
    output_kind,
    prepare_folder,
    skipped_list_of,
)
from explorer.runtime.features import POOLS, BatchRunner, feature_batches
from explorer.runtime.loading import LiveModel

NAME = "features"
ENGINES = ("local", "ray")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="run a layer over every image in a folder and save the features (Parquet or .npz)",
        description="One row per image: its path, the layer, the feature shape and the features. Unreadable "
                    "images are listed with the reason (OUT.skipped.csv, or OUT/_skipped/ for a folder).")
    parser.add_argument("model", help="the model, or a feature extractor exported from it")
    parser.add_argument("--layer", required=True)
    parser.add_argument("--call", type=int, default=0)
    parser.add_argument("--images", required=True, help="a folder of images, or a pattern such as 'photos/**/*.jpg'")
    parser.add_argument("--preprocess", choices=PRESETS[:-1], help="default: the suggested preset")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pool", choices=POOLS, default="none",
                        help="avg or max: one value per channel (an embedding vector) instead of the full maps")
    parser.add_argument("-o", "--output", required=True,
                        help="OUT.parquet (one file), OUT/ (a Parquet dataset folder) or OUT.npz (small jobs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a folder run: skip the images the folder already accounts for")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="ray: Ray Data, on a local Ray runtime or the cluster of --ray-address (needs the "
                             "'distributed' extra)")
    parser.add_argument("--ray-address", help="join this Ray cluster (e.g. ray://head:10001 or head:6379)")
    parser.add_argument("--workers", type=int, help="Ray: model copies running at once (default: one per node)")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    out = Path(options.output)
    kind = _checked_output(options, out)
    graph = read_loadable(options)
    early = early_targets(options, graph, [options.layer], [options.call])
    files = [path.resolve() for path in image_files(options.images)]
    if not files:
        raise CommandError(f"{options.images}: no images (png, jpg, bmp, tif, webp, gif) there")
    preprocessing = chosen_preprocessing(graph, options.preprocess)
    live = open_live(options, graph)
    (target,) = early or loaded_targets(graph, live, [options.layer], [options.call])
    done = prepare_folder(out, target, options.resume) if kind == FOLDER else set()
    todo = [path for path in files if str(path) not in done]
    if done:
        print(f"resuming: {len(files) - len(todo)} of {len(files)} images are already in {out}", file=sys.stderr)
    metadata = {"source": str(Path(options.model).resolve()), "layer": target.layer,
                "call_site": list(target.call_site), "preprocess": preprocessing.preset, "pool": options.pool,
                "tool": "keras-explorer"}
    if options.engine == "ray":
        written, skipped, shape, seconds = _run_on_ray(options, live, target, todo, out, preprocessing, metadata)
    else:
        written, skipped, shape, seconds = _run_locally(options, live, target, todo, out, preprocessing, metadata)
    listed = f" (listed in {skipped_list_of(out)})" if skipped and output_kind(out) != "npz" else ""
    print(f"{options.output}: {written} images, features {shape}, {written / max(seconds, 1e-9):.1f} images/s, "
          f"{skipped} skipped{listed}")
    return 0


def _checked_output(options: argparse.Namespace, out: Path) -> str:
    kind = output_kind(out)
    if options.resume and kind != FOLDER:
        raise CommandError("--resume continues a folder run: give -o OUT/")
    if options.engine != "ray" and (options.ray_address or options.workers):
        raise CommandError("--ray-address and --workers are for --engine ray")
    return kind


def _run_locally(options: argparse.Namespace, live: LiveModel, target: Target, files: list[Path], out: Path,
                 preprocessing: Preprocessing, metadata: dict) -> tuple[int, int, tuple, float]:
    """(images written, skipped, feature shape, seconds from the first batch to the last: a .npz is saved after
    them, as the plain loop a user writes saves after its loop)."""
    started = time.perf_counter()
    runner = BatchRunner(extractor_for(live, target.layer, target.call_site), live.specs, preprocessing,
                         options.pool)
    writer = FeatureWriter(out, target, metadata)
    show = progress_bar(started)
    try:
        for batch in feature_batches(runner, files, options.batch_size):
            writer.write(batch)
            show(writer.written + len(writer.skipped), len(files))
        seconds = time.perf_counter() - started
    finally:  # an interrupted run still leaves readable output
        writer.close()
        print(file=sys.stderr)
    for path, reason in writer.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return writer.written, len(writer.skipped), writer.shape, seconds


def _run_on_ray(options: argparse.Namespace, live: LiveModel, target: Target, files: list[Path], out: Path,
                preprocessing: Preprocessing, metadata: dict) -> tuple[int, int, tuple, float]:
    """Export the verified extractor, then let Ray Data run it (explorer.runtime.ray_engine); the seconds count
    from starting Ray to the last file written."""
    try:
        from explorer.runtime.ray_engine import RayJob, run_features_on_ray
    except ImportError as error:
        raise CommandError(f"--engine ray needs Ray: pip install 'keras-explorer[distributed]' ({error})") from None
    from explorer.runtime.export import KERAS, export_live

    runner = BatchRunner(extractor_for(live, target.layer, target.call_site), live.specs, preprocessing,
                         options.pool)
    shape = runner.output_shape()  # every block's table has the features' type, even one of skipped files only
    custom = None
    if options.custom_objects:
        custom = (Path(options.custom_objects).name, Path(options.custom_objects).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="keras-explorer-features-") as scratch:
        exported = Path(scratch) / "extractor.keras"
        rng = np.random.default_rng(0)
        inputs = {s.name: rng.uniform(0, 255, tuple(64 if d is None else d for d in s.shape)).astype(np.float32)
                  for s in live.specs}
        report = export_live(live, options.model, [target], exported, KERAS, inputs, options.trust,
                             options.custom_objects)
        if not report.verified:
            raise CommandError(f"the feature extractor could not be verified: {report.message}")
        print(f"extractor for the workers: {exported.stat().st_size / 2**20:.1f} MB, {report.message}",
              file=sys.stderr)
        job = RayJob(tuple(live.specs), preprocessing, options.pool, target, shape, metadata, options.trust, custom)
        if output_kind(out) == FOLDER:
            out.mkdir(parents=True, exist_ok=True)
        result = run_features_on_ray(exported, files, out, job, new_run_id(), options.batch_size, options.workers,
                                     options.ray_address)
    print(f"ray: {result.workers} worker(s) on {result.nodes} node(s); blocks computed on {result.computing_nodes} "
          f"node(s)", file=sys.stderr)
    return result.written, result.skipped, shape, result.seconds
