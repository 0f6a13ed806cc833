"""Where features go: one Parquet file, a Parquet dataset folder, or a small .npz, written as batches finish.

A row is one image: its ``path``, the ``layer`` and ``call_site`` it was computed at, the feature ``shape`` and
the ``features`` (a fixed-size list of float32, row-major). Files that gave no features are listed with the
reason: ``OUT.skipped.csv`` beside a Parquet file, ``OUT/_skipped/*.csv`` in a folder (readers of a Parquet
dataset ignore names starting with "_" or ".", so the folder reads as features only). A folder's parts are
written under a hidden name and renamed when complete, so a run that is killed leaves only whole files, and
``--resume`` can skip what they hold.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explorer.model.graph import Target
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.features import FeatureBatch

PARQUET, FOLDER, NPZ = "parquet", "folder", "npz"
SKIPPED = "_skipped"
METADATA_KEY = b"keras_explorer"
ROWS_PER_PART = 4096  # a folder part: whole files appear this often, and each stays a readable size


def output_kind(out: str | Path) -> str:
    """``-o OUT.parquet``: one file; ``OUT.npz``: numpy arrays; anything else (``OUT/``): a dataset folder."""
    text = str(out)
    if text.endswith(".parquet"):
        return PARQUET
    return NPZ if text.endswith(".npz") else FOLDER


def features_table(files: list[str], target: Target, features: np.ndarray, metadata: dict[str, Any]) -> Any:
    """The rows of one batch as an Arrow table (see the module docstring for the columns)."""
    import pyarrow as pa

    shape = [int(d) for d in features.shape[1:]]
    size = int(np.prod(shape)) if shape else 1
    flat = pa.array(np.ascontiguousarray(features, np.float32).reshape(-1), pa.float32())
    count = len(files)
    table = pa.table({
        "path": pa.array(files, pa.string()),
        "layer": pa.array([target.layer] * count, pa.string()),
        "call_site": pa.array([list(target.call_site)] * count, pa.list_(pa.int32())),
        "shape": pa.array([shape] * count, pa.list_(pa.int32())),
        "features": pa.FixedSizeListArray.from_arrays(flat, size),
    })
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})


def skipped_table(skipped: list[tuple[str, str]]) -> Any:
    import pyarrow as pa

    return pa.table({"path": pa.array([p for p, _ in skipped], pa.string()),
                     "reason": pa.array([r for _, r in skipped], pa.string())})


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    import pyarrow.csv as csv

    path.parent.mkdir(parents=True, exist_ok=True)
    hidden = path.with_name(f".{path.name}.partial")
    csv.write_csv(skipped_table(skipped), hidden)
    hidden.replace(path)


def write_part(folder: Path, name: str, table: Any) -> None:
    """One whole Parquet file in the folder, appearing under its name only once complete."""
    import pyarrow.parquet as pq

    hidden = folder / f".{name}.partial"
    pq.write_table(table, hidden)
    hidden.replace(folder / name)


def new_run_id() -> str:
    """Distinguishes the parts of separate runs into one folder (``--resume``)."""
    return uuid.uuid4().hex[:12]


@dataclass
class FeatureWriter:
    """Writes batches to ``out`` as they come; ``close`` finishes the output (also after an interruption)."""

    out: Path
    target: Target
    metadata: dict[str, Any]
    kind: str = ""
    run_id: str = field(default_factory=new_run_id)
    rows_per_part: int = ROWS_PER_PART
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    shape: tuple[int, ...] | None = None
    _writer: Any = None  # the open pyarrow ParquetWriter (a file, or a folder's current part)
    _part_rows: int = 0
    _parts: int = 0
    _arrays: list[np.ndarray] = field(default_factory=list)  # .npz: kept in memory
    _files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = output_kind(self.out)

    def write(self, batch: FeatureBatch) -> None:
        self.skipped += batch.skipped
        if not batch.files:
            return
        self.shape = tuple(batch.features.shape[1:])
        self.written += len(batch.files)
        if self.kind == NPZ:
            self._arrays.append(batch.features)
            self._files += batch.files
            return
        table = features_table(batch.files, self.target, batch.features, self.metadata)
        if self._writer is None:
            self._open(table.schema)
        self._writer.write_table(table)
        self._part_rows += len(batch.files)
        if self.kind == FOLDER and self._part_rows >= self.rows_per_part:
            self._finish_part()

    def close(self) -> None:
        if self.kind == NPZ:
            features = np.concatenate(self._arrays) if self._arrays else np.zeros((0,), np.float32)
            np.savez(self.out, features=features, files=np.array(self._files))
            return
        if self.kind == FOLDER:
            self._finish_part()
            if self.skipped:
                write_skipped(self.out / SKIPPED / f"{self.run_id}-local.csv", self.skipped)
            return
        if self._writer is None:  # no image gave features: still a readable (empty) file
            self._open(features_table([], self.target, np.zeros((0, 0), np.float32), self.metadata).schema)
        self._writer.close()
        self._writer = None
        if self.skipped:
            write_skipped(skipped_list_of(self.out), self.skipped)

    def _open(self, schema: Any) -> None:
        import pyarrow.parquet as pq

        target = self.out if self.kind == PARQUET else self.out / f".{self._part_name()}.partial"
        target.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(target, schema)

    def _part_name(self) -> str:
        return f"part-{self.run_id}-{self._parts:05d}.parquet"

    def _finish_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        name = self._part_name()
        (self.out / f".{name}.partial").replace(self.out / name)
        self._writer, self._part_rows, self._parts = None, 0, self._parts + 1


def skipped_list_of(out: Path) -> Path:
    """Where the skipped files of a run are listed (a folder's list is a folder of parts)."""
    if output_kind(out) == FOLDER:
        return out / SKIPPED
    return out.with_name(out.name.removesuffix(".parquet") + ".skipped.csv")


def prepare_folder(out: Path, target: Target, resume: bool) -> set[str]:
    """Check the output folder for a run; returns the image paths it already accounts for (``resume``).

    A folder holding features is refused without ``resume`` (two runs would mix), and with it when it holds
    another layer's features. Parts a killed run left half-written are removed."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise RuntimeFailure(f"{out} is a file: a Parquet dataset goes into a folder")
    for partial in out.glob(".*.partial"):
        partial.unlink()
    parts = sorted(out.glob("*.parquet"))
    if not parts and not (out / SKIPPED).exists():
        return set()
    if not resume:
        raise RuntimeFailure(f"{out} already holds features: pass --resume to continue that run, or choose another "
                             "folder")
    import pyarrow.csv as csv
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet").to_table(columns=["path", "layer", "call_site"]) if parts else None
    if table is not None and table.num_rows:
        layers = {(layer, tuple(site)) for layer, site in zip(table.column("layer").to_pylist(),
                                                             table.column("call_site").to_pylist(), strict=True)}
        if layers != {(target.layer, tuple(target.call_site))}:
            found = ", ".join(sorted(layer for layer, _ in layers))
            raise RuntimeFailure(f"{out} holds features of {found}, not {target.layer}: choose another folder")
    done = set(table.column("path").to_pylist()) if table is not None else set()
    for listed in sorted((out / SKIPPED).glob("*.csv")):
        done.update(csv.read_csv(listed).column("path").to_pylist())
    return done
