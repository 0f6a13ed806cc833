"""Attribution and per-layer numbers through a real live-tier worker process: the answers equal the same
computations done in this process on the same model file."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import shutil

import numpy as np
import pytest

from explorer.live.client import LiveTier
from explorer.live.protocol import Explained, Failed, LayerMeasure, LayerNumbers, Loaded, Status, WorkerState
from explorer.resources import demo_model
from explorer.runtime.attribution import Scorer, explain
from explorer.runtime.layer_stats import ab_similarity, layer_statistics
from explorer.runtime.loading import open_model
from explorer.runtime.worker import worker_main
from tests.support.flagged import flagged_demo
from tests.support.worker_events import WorkerEvents

DEMO = demo_model().resolve()


@pytest.fixture(scope="module")
def worker():
    events = WorkerEvents()
    tier = LiveTier(events, worker_main)
    tier.start()
    try:
        events.wait_for(lambda e: isinstance(e, Status) and e.state == WorkerState.READY, "ready worker")
        request = tier.load(str(DEMO))
        loaded = events.wait_for(lambda e: isinstance(e, Loaded | Failed) and e.request == request, "Loaded")
        assert isinstance(loaded, Loaded), loaded.message
        yield tier, events
    finally:
        tier.stop()


def _answer(events: WorkerEvents, request: int, kind: type) -> object:
    answer = events.wait_for(lambda e: isinstance(e, kind | Failed) and e.request == request, kind.__name__)
    assert isinstance(answer, kind), answer.message
    return answer


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    return tuple(rng.uniform(0, 255, (64, 64, 3)).astype(np.float32) for _ in range(2))


def test_gradcam_from_the_worker_equals_the_same_computation_here(worker, inputs, keras_module):
    tier, events = worker
    a, _ = inputs
    request = tier.explain("gradcam", None, (), 2, {"image": a})
    answer = _answer(events, request, Explained)
    expected = explain(Scorer(open_model(DEMO).graph, "merge_branches"), a, "gradcam", 2)
    assert answer.layer == "merge_branches" and answer.class_index == 2
    np.testing.assert_allclose(answer.map, expected.map, atol=1e-6)
    assert len(answer.scores) == 3 and answer.scores[2] == pytest.approx(expected.score, rel=1e-6)


def test_layer_numbers_from_the_worker(worker, inputs, keras_module, tmp_path):
    tier, events = worker
    a, b = inputs
    model = open_model(DEMO).graph
    means = _answer(events, tier.layer_numbers(LayerMeasure.MEAN, {"image": a}), LayerNumbers).values
    expected = layer_statistics(model, a)
    assert means.keys() == expected.keys()
    assert ("res_stage1/res_stage1_block_a/res_stage1_block_a_conv", (0, 0, 0)) in means
    assert ("shared_mixer", (1,)) in means  # each call site of a shared layer
    assert all(means[key] == pytest.approx(expected[key].mean, rel=1e-5, abs=1e-6) for key in means)
    similar = _answer(events, tier.layer_numbers(LayerMeasure.SIMILARITY, {"image": a}, {"image": b}),
                      LayerNumbers).values
    reference = ab_similarity(model, a, b)
    assert all(similar[key] == pytest.approx(reference[key], abs=1e-6) for key in reference)
    same = tmp_path / "same.keras"
    shutil.copy(DEMO, same)
    moved = _answer(events, tier.layer_numbers(LayerMeasure.CHECKPOINT, {"image": a}, other=str(same)),
                    LayerNumbers).values
    assert moved and max(moved.values()) == 0.0  # the same weights: nothing moved
    norms = _answer(events, tier.layer_numbers(LayerMeasure.WEIGHT_NORM, {"image": a}), LayerNumbers).values
    kernel = np.asarray(model.get_layer("predictions").kernel)
    bias = np.asarray(model.get_layer("predictions").bias)
    assert norms[("predictions", ())] == pytest.approx(float(np.sqrt((kernel ** 2).sum() + (bias ** 2).sum())))


def test_a_second_checkpoint_of_another_architecture_is_refused(worker, inputs, tmp_path, keras_module):
    import keras

    tier, events = worker
    other = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    other.save(tmp_path / "other.keras")
    request = tier.layer_numbers(LayerMeasure.CHECKPOINT, {"image": inputs[0]}, other=str(tmp_path / "other.keras"))
    failed = events.wait_for(lambda e: isinstance(e, Failed) and e.request == request, "refusal")
    assert "not one architecture" in failed.message


def test_a_flagged_second_checkpoint_loads_only_with_its_own_trust(worker, inputs, tmp_path, keras_module):
    """The open file is not flagged; the second checkpoint is: refused until the user trusts that file."""
    tier, events = worker
    other = str(flagged_demo(tmp_path / "flagged.keras"))
    request = tier.layer_numbers(LayerMeasure.WEIGHT_CHANGE, {"image": inputs[0]}, other=other)
    refused = events.wait_for(lambda e: isinstance(e, Failed) and e.request == request, "refusal")
    assert "refusing to load" in refused.message or "safety check" in refused.message, refused.message
    changed = _answer(events, tier.layer_numbers(LayerMeasure.WEIGHT_CHANGE, {"image": inputs[0]}, other=other,
                                                 other_trusted=True), LayerNumbers).values
    assert changed and max(changed.values()) == 0.0  # the demo's own weights
