"""``features --engine ray``: the verified feature extractor run over image files on a Ray cluster with Ray Data.

The driver exports the extractor (a small verified ``.keras``) and puts its bytes in Ray's object store, so
the workers get that file, never the whole source model. Ray Data lists the files as rows, and a pool of
actors (one model each, restarted and retried by Ray when a worker dies) decodes and runs them with the local
engine's code (explorer.runtime.features.BatchRunner); the workers write each block as one
Parquet file with the features' skipped files beside it (explorer.runtime.feature_store). A block's files are
named after its task, so a retried task rewrites its own file: every image appears once.

Only this module imports Ray; the window and the other commands never do.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data import Datasink
from ray.data.block import BlockAccessor

from explorer.inputs.images import Preprocessing
from explorer.model.graph import InputSpec, Target
from explorer.runtime.feature_store import (
    FOLDER,
    SKIPPED,
    FeatureWriter,
    features_table,
    output_kind,
    write_part,
    write_skipped,
)
from explorer.runtime.features import BatchRunner, FeatureBatch

IMAGES_PER_BLOCK = 256  # one output file per block; each block's images flow through the stages together
# Two batches in each actor at once: one decodes (Pillow releases the GIL) while the other runs the model
# (TensorFlow releases it too), as the local engine overlaps them with its decoding threads.
CALLS_PER_ACTOR = 2
ACTORS_START_TIMEOUT_S = 600
REASON, NODE = "reason", "node"  # columns from the workers to the sink, not written: why a file was skipped; where


@dataclass(frozen=True)
class RayJob:
    """Everything a worker needs, small enough to ship: the extractor's bytes travel in the object store."""

    specs: tuple[InputSpec, ...]
    preprocessing: Preprocessing
    pool: str
    target: Target
    shape: tuple[int, ...]  # of one image's features (after pooling)
    metadata: dict[str, Any]
    trust: bool
    custom_objects: tuple[str, str] | None  # (file name, source) of the user's custom-objects file


@dataclass(frozen=True)
class RayResult:
    written: int
    skipped: int
    workers: int
    nodes: int  # alive in the cluster
    computing_nodes: int  # that ran the extractor on some block
    seconds: float  # from starting Ray to the last file written (not Ray's shutdown after it)


def run_features_on_ray(extractor_file: Path, files: list[Path], out: Path, job: RayJob, run_id: str,
                        batch_size: int = 32, workers: int | None = None, address: str | None = None) -> RayResult:
    """Run the job over ``files`` into ``out``; a local Ray runtime when ``address`` is None.

    A folder is written by the workers, one file per block; one file (``.parquet``, ``.npz``) by this process,
    from the blocks as Ray Data streams them here, with the local engine's writer."""
    started = time.perf_counter()
    _start(address)
    try:
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        workers = workers or nodes  # one extractor per machine: TensorFlow uses all of its cores
        model = ray.put(extractor_file.read_bytes())
        # Enough blocks to keep every worker's calls busy, at most IMAGES_PER_BLOCK images each.
        blocks = max(1, -(-len(files) // IMAGES_PER_BLOCK), min(len(files), 2 * workers * CALLS_PER_ACTOR))
        # Hand out blocks once every worker is up: the first to load its model would otherwise take them all
        # on a small job; a cluster without room for them fails with Ray's "Timed out while starting actors".
        ray.data.DataContext.get_current().wait_for_min_actors_s = ACTORS_START_TIMEOUT_S
        dataset = ray.data.from_items([{"path": str(path)} for path in files], override_num_blocks=blocks)
        features = dataset.map_batches(
            _Extractor, fn_constructor_args=([model], job), batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers, max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
                                               enable_true_multi_threading=True))
        if output_kind(out) != FOLDER:
            written, skipped, computing = _stream_to_file(features, out, job)
            return RayResult(written, skipped, workers, nodes, computing, time.perf_counter() - started)
        sink = _FeatureSink(out, run_id)
        features.write_datasink(sink)
        return RayResult(sink.written, sink.skipped, workers, nodes, len(sink.nodes), time.perf_counter() - started)
    finally:
        ray.shutdown()


def _stream_to_file(features: ray.data.Dataset, out: Path, job: RayJob) -> tuple[int, int, int]:
    """(images written, skipped, nodes that computed) for a one-file output."""
    writer = FeatureWriter(out, job.target, job.metadata)
    nodes: set[str] = set()
    try:
        for table in features.iter_batches(batch_size=None, batch_format="pyarrow"):
            nodes.update(table.column(NODE).to_pylist())
            done = table.filter(pc.is_null(table.column(REASON)))
            failed = table.filter(pc.is_valid(table.column(REASON)))
            values = done.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            writer.write(FeatureBatch(done.column("path").to_pylist(), values.reshape(done.num_rows, *job.shape),
                                      list(zip(failed.column("path").to_pylist(), failed.column(REASON).to_pylist(),
                                               strict=True))))
    finally:
        writer.close()
    return writer.written, len(writer.skipped), len(nodes)


def _start(address: str | None) -> None:
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        import explorer

        # The cluster's machines get this package with the job; TensorFlow, Keras and Pillow they must have.
        options["runtime_env"] = {"py_modules": [os.path.dirname(explorer.__file__)]}
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **options)


class _Extractor:
    """A Ray Data actor: loads the extractor once, then decodes and runs batches of image paths."""

    def __init__(self, model: list[Any], job: RayJob) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        folder = Path(tempfile.mkdtemp(prefix="keras-explorer-ray-"))
        path = folder / "extractor.keras"
        path.write_bytes(ray.get(model[0]))
        objects = _custom_objects(folder, job)
        # Not under the loading guard: a Ray worker needs its sockets. The file is our own verified export of a
        # model the driver checked; safe mode stays on unless the user trusted the source.
        extractor = keras.saving.load_model(path, custom_objects=objects, compile=False, safe_mode=not job.trust)
        self.runner = BatchRunner(extractor, list(job.specs), job.preprocessing, job.pool)
        self.runner.output_shape()  # builds the predict function once, before two calls can race to build it
        self.job = job
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        result = self.runner.run([self.runner.decode(path) for path in batch["path"]])
        rows = _rows(result, self.job)
        return rows.append_column(NODE, pa.array([self.node] * rows.num_rows, pa.string()))


def _custom_objects(folder: Path, job: RayJob) -> dict[str, Any] | None:
    if job.custom_objects is None:
        return None
    from explorer.runtime.custom_code import run_custom_code

    name, source = job.custom_objects
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return run_custom_code(path, job.trust).objects


def _rows(batch: FeatureBatch, job: RayJob) -> pa.Table:
    """Features and skipped files as one table of one schema: a skipped file's row has its reason and nulls."""
    features = batch.features if batch.files else np.zeros((0, *job.shape), np.float32)
    table = features_table(batch.files, job.target, features, job.metadata)
    paths = [path for path, _ in batch.skipped]
    failed = pa.table({name: pa.array(paths, pa.string()) if name == "path" else pa.nulls(len(paths), column.type)
                       for name, column in zip(table.schema.names, table.schema, strict=True)},
                      schema=table.schema)
    reasons = [None] * len(batch.files) + [reason for _, reason in batch.skipped]
    return pa.concat_tables([table, failed]).append_column(REASON, pa.array(reasons, pa.string()))


class _FeatureSink(Datasink):
    """Each write task's rows as ``part-RUN-TASK.parquet``, its skipped files as ``_skipped/RUN-TASK.csv``."""

    def __init__(self, out: Path, run_id: str) -> None:
        self.out, self.run_id = out, run_id
        self.written = self.skipped = 0
        self.nodes: set[str] = set()

    def write(self, blocks: Any, ctx: Any) -> tuple[int, int, set[str]]:
        tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
        tables = [table for table in tables if table.num_rows]
        if not tables:
            return 0, 0, set()
        table = pa.concat_tables(tables)
        nodes = set(table.column(NODE).to_pylist())
        table = table.drop_columns([NODE])
        done = table.filter(pc.is_null(table.column(REASON))).drop_columns([REASON])
        failed = table.filter(pc.is_valid(table.column(REASON)))
        name = f"{self.run_id}-{ctx.task_idx:05d}"
        if done.num_rows:
            write_part(self.out, f"part-{name}.parquet", done)
        if failed.num_rows:
            write_skipped(self.out / SKIPPED / f"{name}.csv",
                          list(zip(failed.column("path").to_pylist(), failed.column(REASON).to_pylist(),
                                   strict=True)))
        return done.num_rows, failed.num_rows, nodes

    def on_write_complete(self, write_result: Any) -> None:
        for written, skipped, nodes in write_result.write_returns:
            self.written += written
            self.skipped += skipped
            self.nodes |= nodes
