"""The Parquet writers of ``features``: readable after an interruption, whole parts in a folder, and what a
folder already holds for ``--resume``. Real pyarrow files, read back with pyarrow."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.model.graph import Target
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.feature_store import SKIPPED, FeatureWriter, prepare_folder, skipped_list_of
from explorer.runtime.features import FeatureBatch, pooled

pq = pytest.importorskip("pyarrow.parquet")
TARGET = Target("block/conv", (0, 1))


def _batch(start: int, count: int, skipped: int = 0) -> FeatureBatch:
    files = [f"/images/{index:03d}.png" for index in range(start, start + count)]
    features = np.arange(start * 6, (start + count) * 6, dtype=np.float32).reshape(count, 2, 3)
    return FeatureBatch(files, features, [(f"/images/bad{start}_{i}.png", "not an image") for i in range(skipped)])


def test_an_interrupted_parquet_file_is_still_readable(tmp_path):
    out = tmp_path / "feats.parquet"
    writer = FeatureWriter(out, TARGET, {"source": "model.keras"})
    with pytest.raises(KeyboardInterrupt):
        try:
            writer.write(_batch(0, 4, skipped=1))
            writer.write(_batch(4, 4))
            raise KeyboardInterrupt  # the user pressed Ctrl+C between batches
        finally:
            writer.close()
    table = pq.read_table(out)
    assert table.column("path").to_pylist() == [f"/images/{i:03d}.png" for i in range(8)]
    assert pq.ParquetFile(out).metadata.num_row_groups == 2
    values = table.column("features").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(values, np.arange(48, dtype=np.float32))
    assert table.column("layer").to_pylist() == ["block/conv"] * 8
    assert table.column("call_site").to_pylist()[0] == [0, 1]
    assert skipped_list_of(out).read_text().count("bad0_0.png") == 1


def test_a_folder_is_written_in_whole_parts(tmp_path):
    out = tmp_path / "feats"
    writer = FeatureWriter(out, TARGET, {}, rows_per_part=5)
    for start in range(0, 12, 3):
        writer.write(_batch(start, 3, skipped=1 if start == 3 else 0))
        for part in out.glob("part-*.parquet"):  # a part shows under its name only once whole
            pq.read_metadata(part)
    writer.close()
    parts = sorted(out.glob("*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in parts] == [6, 6]
    assert not list(out.glob(".*"))
    assert len(list((out / SKIPPED).glob("*.csv"))) == 1


def test_a_folder_accounts_for_its_images_and_refuses_mixing_runs(tmp_path):
    out = tmp_path / "feats"
    writer = FeatureWriter(out, TARGET, {})
    writer.write(_batch(0, 3, skipped=2))
    writer.close()
    (out / ".part-killed-00000.parquet.partial").write_bytes(b"half a file")  # a run killed mid-part
    with pytest.raises(RuntimeFailure, match="--resume"):
        prepare_folder(out, TARGET, resume=False)
    with pytest.raises(RuntimeFailure, match="holds features of block/conv, not other"):
        prepare_folder(out, Target("other", (0,)), resume=True)
    done = prepare_folder(out, TARGET, resume=True)
    assert done == {"/images/000.png", "/images/001.png", "/images/002.png", "/images/bad0_0.png",
                    "/images/bad0_1.png"}
    assert not list(out.glob(".*.partial"))
    assert prepare_folder(tmp_path / "new", TARGET, resume=False) == set()


def test_pooling_keeps_one_value_per_channel():
    maps = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(pooled(maps, "avg"), maps.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(pooled(maps, "max"), maps.max(axis=(1, 2)))
    assert pooled(maps, "none") is maps
    vectors = maps[:, 0, 0, :]
    assert pooled(vectors, "avg") is vectors  # already one value per channel
