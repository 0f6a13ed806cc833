"""The pieces behind colouring by a per-layer number and the A/B view, without a window: which number a layer
shows, the channel ranking of A-B, the symmetric mosaic of a difference, the folder statistics file read back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.inputs import feature_maps as fm
from explorer.model.files import load_graph
from explorer.ui.folder_stats import FOLDER_DEAD, FOLDER_MEAN, StatsRun, folder_numbers, stats_arguments
from explorer.ui.layer_values import LayerValues, number_text
from explorer.ui.session import Session
from explorer.ui.settings import Settings


def test_a_layer_without_a_finite_number_has_none():
    values = LayerValues("m", {("a", (0,)): 1.5, ("a", (1,)): -2.0, ("b", (0,)): math.nan, ("c", (0,)): math.inf})
    assert values.value("a", (1,)) == -2.0 and values.value("a", (0,)) == 1.5
    assert values.value("b", (0,)) is None and values.value("c", (0,)) is None  # never a fake value
    assert values.value("missing", (0,)) is None
    assert values.span() == (-2.0, 1.5)
    assert LayerValues("m", {}).span() is None
    weights = LayerValues("weight norm", {("a", ()): 3.0}, by_layer=True)
    assert weights.value("a", (1,)) == 3.0  # one number per layer, whatever the call
    assert (number_text(None), number_text(0.000123456)) == ("–", "0.0001235")


@pytest.fixture
def twice_called(keras_module, tmp_path: Path) -> Path:
    """A nested model called twice, beside a plain layer."""
    keras = keras_module
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="first"),
                              keras.layers.Dense(4, name="second")], name="inner")
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    merged = keras.layers.Add(name="add")([inner(a), inner(b)])
    path = tmp_path / "twice.keras"
    keras.Model([a, b], keras.layers.Dense(2, name="head")(merged)).save(path)
    return path


def test_the_selected_call_is_shown_for_the_layer_its_models_and_its_siblings(qtbot, twice_called, tmp_path):
    session = Session(Settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)))
    try:
        session.set_file(twice_called, load_graph(twice_called))
        assert session.shown_call_site("inner/second") == (0, 0)  # nothing selected: every first call
        session.select("inner/first")
        session.set_call_site((1, 0))
        assert session.shown_call_site("inner/first") == (1, 0)
        assert session.shown_call_site("inner/second") == (1, 0)  # inside the same call of the model
        assert session.shown_call_site("inner") == (1,)
        assert session.shown_call_site("head") == (0,)
    finally:
        session.close()


def test_channels_are_ranked_by_their_mean_absolute_difference():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 6, 4)).astype(np.float32)
    b = a.copy()
    b[..., 2] += 3.0  # the most different
    b[..., 0] -= 1.0  # then this one (by magnitude: the sign does not matter)
    ranked = fm.channel_differences(a, b)
    assert [c.channel for c in ranked] == [2, 0, 1, 3]
    assert ranked[0].difference == pytest.approx(3.0) and ranked[-1].difference == 0.0
    assert ranked[1].mean_a == pytest.approx(float(a[..., 0].mean()))
    assert ranked[1].mean_b == pytest.approx(float(b[..., 0].mean()))
    assert list(fm.channel_order(a - b, "magnitude")[:2]) == [2, 0]  # the grid's order of A-B
    assert [c.channel for c in fm.channel_differences(np.array([1.0, 5.0]), np.array([1.5, 1.0]))] == [1, 0]
    assert fm.channel_differences(a, b[:2]) == []  # outputs of different shapes are not compared


def test_a_difference_is_tiled_about_zero():
    difference = np.zeros((2, 2, 2), np.float32)
    difference[0, 0, 0], difference[1, 1, 0] = -4.0, 2.0
    difference[0, 0, 1] = 1.0
    tiles = fm.mosaic(difference, symmetric=True, gap=0)
    first = tiles.image[:2, :2]
    assert first[0, 0] == 0.0 and first[1, 1] == 0.75 and first[0, 1] == 0.5  # -4..4 per tile: 0 in the middle
    shared = fm.mosaic(difference, symmetric=True, shared_scale=True, gap=0)
    assert shared.image[0, 2] == pytest.approx(0.625)  # channel 1's 1.0 on the layer's -4..4


def test_the_folder_statistics_file_becomes_per_layer_numbers(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({
        "layer": ["conv", "conv", "conv", "shared", "shared"],
        "call_site": [[0], [0], [0], [1], [1]],
        "channel": [0, 1, 2, 0, 1],
        "mean": [1.0, 2.0, 6.0, -1.0, 1.0],
        "max": [2.0, 3.0, 9.0, 0.0, 2.0],
        "dead_fraction": [0.0, 0.5, 1.0, 0.25, 0.25],
        "images": [4] * 5,
    })
    pq.write_table(table, tmp_path / "stats.parquet")
    images, measures = folder_numbers(tmp_path / "stats.parquet")
    assert images == 4
    assert measures[FOLDER_MEAN] == {("conv", (0,)): 3.0, ("shared", (1,)): 0.0}
    assert measures[FOLDER_DEAD] == {("conv", (0,)): 0.5, ("shared", (1,)): 0.25}


def test_the_stats_command_line():
    run = StatsRun("/data/photos", "/data/stats.parquet", "caffe", batch_size=8)
    assert stats_arguments("/m/net.keras", run, trust=True, custom_objects="/m/defs.py") == [
        "stats", "/m/net.keras", "--images", "/data/photos", "-o", "/data/stats.parquet", "--batch-size", "8",
        "--preprocess", "caffe", "--trust", "--custom-objects", "/m/defs.py"]
    assert "--preprocess" not in stats_arguments("/m/net.keras", StatsRun("i", "o.parquet", "custom"))
