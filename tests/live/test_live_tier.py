"""The live tier end to end: a real worker process started with ``spawn``, real TensorFlow, real models.

Events arrive on LiveTier's background threads; they are collected in a queue and waited for with
timeouts. Activations are compared with values computed directly with Keras in the test process.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.live.client import LiveTier, WorkerLost
from explorer.live.protocol import Activation, Failed, Loaded, Status, WorkerState
from explorer.runtime.worker import worker_main
from tests.support.models import build_functional_dense, build_slow_convnet, randomise_statistics

START_TIMEOUT = 60.0  # a worker start imports TensorFlow (a few seconds, more on a busy machine)
EVENT_TIMEOUT = 30.0
ATOL = 1e-5


class Events:
    """Collects LiveTier events (called from its threads) and lets the test wait for them."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []

    def __call__(self, event: Any) -> None:
        self._queue.put(event)

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = EVENT_TIMEOUT, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                recent = "\n  ".join(repr(e)[:200] for e in self.seen[-15:])
                raise AssertionError(
                    f"no {what or 'matching event'} within {timeout:.0f} s; last events:\n  {recent}") from None
            self.seen.append(event)
            if predicate(event):
                return event

    def collect(self, seconds: float) -> list[Any]:
        """Everything that arrives within ``seconds``."""
        found = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                found.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        self.seen.extend(found)
        return found

    def since(self, mark: int) -> list[Any]:
        return self.seen[mark:]


def _is(kind: type, request: int | None = None) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, kind) and (request is None or e.request == request)


def _ready(event: Any) -> bool:
    return isinstance(event, Status) and event.state == WorkerState.READY


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


# --------------------------------------------------------------------------- models and references


@dataclass
class Saved:
    path: Path
    model: Any
    inputs: dict[str, np.ndarray]  # one example, no batch axis

    def reference(self, layer: str) -> list[np.ndarray]:
        import keras

        node = self.model.get_layer(layer)._inbound_nodes[0]
        submodel = keras.Model(self.model.input, list(node.output_tensors))
        feed = next(iter(self.inputs.values()))[None, ...]
        result = submodel(feed, training=False)
        return [np.asarray(v)[0] for v in (result if isinstance(result, list | tuple) else [result])]


def _close(actual: list[np.ndarray], expected: list[np.ndarray]) -> bool:
    return len(actual) == len(expected) and all(
        a.shape == b.shape and np.allclose(a, b, atol=ATOL) for a, b in zip(actual, expected, strict=True))


@pytest.fixture(scope="module")
def models(keras_module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Saved]:
    keras_module.utils.set_random_seed(3)
    folder = tmp_path_factory.mktemp("live_tier")
    rng = np.random.default_rng(3)
    small = build_functional_dense()
    randomise_statistics(small, rng)
    slow = build_slow_convnet()  # slow enough that the worker can be killed while it computes
    saved = {
        "small": Saved(folder / "small.keras", small, {"x": rng.normal(size=(8,)).astype("float32")}),
        "slow": Saved(folder / "slow.keras", slow,
                      {"image": rng.normal(size=(384, 384, 3)).astype("float32")}),
    }
    for item in saved.values():
        item.model.save(item.path)
    return saved


def _stop_for_good(tier: LiveTier) -> None:
    """Teardown that works even if ``stop`` does not: no cap to trip, then stop until no worker is left."""
    tier.memory_cap = 1 << 60
    for _ in range(5):
        tier.stop(wait=5.0)
        time.sleep(0.3)
        if tier.pid is None:
            return


@pytest.fixture(scope="module")
def running(models) -> Iterator[tuple[LiveTier, Events]]:
    """One worker shared by the tests that do not end it (each test loads the model it needs)."""
    events = Events()
    tier = LiveTier(events, worker_main)
    tier.start()
    try:
        events.wait_for(_ready, START_TIMEOUT, "ready status after start")
        yield tier, events
    finally:
        _stop_for_good(tier)


def _load(tier: LiveTier, events: Events, saved: Saved) -> Loaded:
    request = tier.load(str(saved.path))
    loaded = events.wait_for(lambda e: _is(Loaded, request)(e) or _is(Failed, request)(e), EVENT_TIMEOUT,
                             f"Loaded for request {request}")
    assert isinstance(loaded, Loaded), loaded
    return loaded


# --------------------------------------------------------------------------- tests


def test_load_and_compute(running, models) -> None:
    tier, events = running
    saved = models["small"]
    loaded = _load(tier, events, saved)
    assert loaded.model_name == "small"
    assert [(s.name, s.shape, s.dtype) for s in loaded.inputs] == [("x", (8,), "float32")]

    for layer in ["hidden", "norm", "out"]:
        request = tier.compute(layer, (0,), saved.inputs)
        result = events.wait_for(lambda e, r=request: _is(Activation, r)(e) or _is(Failed, r)(e), EVENT_TIMEOUT,
                                 f"Activation of {layer}")
        assert isinstance(result, Activation), result
        assert (result.layer, result.call_site) == (layer, (0,))
        assert result.seconds >= 0
        expected = saved.reference(layer)
        assert _close(result.outputs, expected), (layer, result.outputs, expected)


def test_newest_compute_supersedes_waiting_ones(running, models) -> None:
    tier, events = running
    saved = models["small"]
    mark = len(events.seen)
    load_request = tier.load(str(saved.path))  # keeps the worker busy while the computes pile up behind it
    layers = ["hidden", "norm", "out", "hidden", "norm"]
    requests = [tier.compute(layer, (0,), saved.inputs) for layer in layers]
    last = events.wait_for(_is(Activation, requests[-1]), EVENT_TIMEOUT, "Activation of the newest compute")
    assert _close(last.outputs, saved.reference(layers[-1]))
    # The worker answers in order, so anything for the older requests has arrived by now.
    answered = [e for e in events.since(mark) if isinstance(e, Activation | Failed | Loaded)]
    assert any(_is(Loaded, load_request)(e) for e in answered)
    assert {e.request for e in answered if isinstance(e, Activation)} == {requests[-1]}
    assert not [e for e in answered if isinstance(e, Failed)]


def test_bad_layer_fails_and_worker_keeps_working(running, models, caplog) -> None:
    tier, events = running
    saved = models["small"]
    _load(tier, events, saved)
    pid = tier.pid
    with caplog.at_level(logging.ERROR, logger="explorer.live.client"):
        bad = tier.compute("no_such_layer", (0,), saved.inputs)
        failed = events.wait_for(lambda e: _is(Failed, bad)(e) or _is(Activation, bad)(e), EVENT_TIMEOUT, "Failed")
    assert isinstance(failed, Failed), failed
    assert "no_such_layer" in failed.message and "\n" not in failed.message  # one line for the user
    # ... and the worker's traceback for the log file (a bug report can carry it).
    assert "Traceback (most recent call last)" in failed.detail and "UnknownLayer" in failed.detail
    logged = [r.getMessage() for r in caplog.records if f"request {bad}:" in r.getMessage()]
    assert logged and failed.detail in logged[0]
    out_of_range = tier.compute("out", (5,), saved.inputs)
    failed = events.wait_for(lambda e: _is(Failed, out_of_range)(e) or _is(Activation, out_of_range)(e),
                             EVENT_TIMEOUT, "Failed")
    assert isinstance(failed, Failed), failed
    assert "call 5 does not exist" in failed.message

    good = tier.compute("out", (0,), saved.inputs)
    result = events.wait_for(lambda e: _is(Activation, good)(e) or _is(Failed, good)(e), EVENT_TIMEOUT)
    assert isinstance(result, Activation), result
    assert _close(result.outputs, saved.reference("out"))
    assert tier.pid == pid, "the worker was restarted after a failed compute"


def test_worker_killed_mid_computation_restarts_and_reloads(running, models) -> None:
    tier, events = running
    slow = models["slow"]
    loaded = _load(tier, events, slow)
    old_pid = tier.pid
    mark = len(events.seen)
    doomed = tier.compute("pool", (0,), slow.inputs)
    events.wait_for(lambda e: isinstance(e, Status) and e.state == WorkerState.COMPUTING, EVENT_TIMEOUT,
                    "computing status")
    os.kill(old_pid, signal.SIGKILL)  # the compute has just begun and takes seconds

    lost = events.wait_for(_is(WorkerLost), EVENT_TIMEOUT, "WorkerLost")
    assert "unexpectedly" in lost.reason
    reloaded = events.wait_for(_is(Loaded), START_TIMEOUT, "Loaded after the restart")
    assert reloaded.model_name == "slow"
    # The reload answers the window's own load request, so the window takes it for the file it has open.
    assert reloaded.request == loaded.request
    assert tier.pid not in (None, old_pid)
    assert _wait_dead(old_pid, 5.0)
    assert not [e for e in events.since(mark) if _is(Activation, doomed)(e)], "the killed compute finished first"

    request = tier.compute("conv1", (0,), slow.inputs)
    result = events.wait_for(lambda e: _is(Activation, request)(e) or _is(Failed, request)(e), EVENT_TIMEOUT)
    assert isinstance(result, Activation), result
    assert _close(result.outputs, slow.reference("conv1"))


def test_memory_cap_restarts_worker_and_stop_ends_it(models) -> None:
    events = Events()
    cap = 200 << 20
    tier = LiveTier(events, worker_main, memory_cap=cap)
    tier.start()
    first_pid = tier.pid
    try:
        lost = events.wait_for(_is(WorkerLost), START_TIMEOUT, "WorkerLost for the memory cap")
        assert "cap" in lost.reason, lost.reason
        assert tier.peak_rss > cap
        assert _wait_dead(first_pid, 5.0), "the worker over its cap is still running"
        # The replacement reports in (it will go over the cap as well); stop it.
        events.wait_for(lambda e: isinstance(e, Status) and e.state == WorkerState.STARTING, START_TIMEOUT,
                        "a new worker")
        replacement = tier.pid
        tier.stop()
        late = events.collect(2.0)
        assert tier.pid is None
        assert replacement is None or _wait_dead(replacement, 1.0)
        assert not [e for e in late if isinstance(e, WorkerLost | Loaded)], late
    finally:
        _stop_for_good(tier)


def test_stop_while_a_restart_is_under_way(models) -> None:
    """``stop()`` called between a restart's WorkerLost event and its new worker must win.

    In the window the Qt side reacts to WorkerLost on its own thread (the user closes the window, say)
    while the restart goes on in LiveTier's watch thread. A handler that takes a moment widens the window
    to make the order certain: WorkerLost is delivered, stop() runs and returns, then the restart resumes.
    """
    events = Events()
    lost = threading.Event()
    stopped = threading.Event()

    def slow_handler(event: Any) -> None:
        events(event)
        if isinstance(event, WorkerLost) and not lost.is_set():
            lost.set()
            stopped.wait(5.0)  # the restart resumes only after stop() has returned

    tier = LiveTier(slow_handler, worker_main, memory_cap=200 << 20)
    tier.start()
    try:
        assert lost.wait(START_TIMEOUT), "no WorkerLost for the memory cap"
        events.wait_for(_is(WorkerLost), 1.0, "WorkerLost")  # what came before it is not of interest
        tier.stop()
        stopped.set()
        late = events.collect(2.0)
        pid = tier.pid
        assert pid is None, f"a worker (pid {pid}) was started after stop() returned"
        started = [e for e in late if isinstance(e, Status) and e.state == WorkerState.STARTING]
        assert not started, f"a worker was started after stop() returned: {started}"
    finally:
        stopped.set()
        _stop_for_good(tier)


def test_stop_ends_the_process(models) -> None:
    events = Events()
    tier = LiveTier(events, worker_main)
    tier.start()
    try:
        events.wait_for(_ready, START_TIMEOUT, "ready status after start")
        pid = tier.pid
        assert pid is not None and _alive(pid)
        started = time.monotonic()
        tier.stop()
        assert time.monotonic() - started < 5.0
        assert _wait_dead(pid, 3.0)
        assert tier.pid is None
        events.wait_for(lambda e: isinstance(e, Status) and e.state == WorkerState.STOPPED, 5.0, "stopped status")
        assert not [e for e in events.collect(0.5) if isinstance(e, WorkerLost)]
        request = tier.compute("out", (0,), models["small"].inputs)
        failed = events.wait_for(_is(Failed, request), 5.0, "Failed for a compute after stop")
        assert "not running" in failed.message
    finally:
        _stop_for_good(tier)


def test_a_worker_that_cannot_start_is_not_restarted_for_ever(monkeypatch) -> None:
    """A broken installation (here: Keras asked for a backend that does not exist) kills every worker before it
    is ready: after a few tries the tier says so once, instead of respawning TensorFlow in a loop."""
    from explorer.live.client import MAX_FAILED_STARTS

    monkeypatch.setenv("KERAS_BACKEND", "no_such_backend")  # inherited by the spawned worker
    events = Events()
    tier = LiveTier(events, worker_main)
    tier.start()
    try:
        gave_up = events.wait_for(lambda e: isinstance(e, Status) and "cannot start" in e.detail, START_TIMEOUT,
                                  "the tier giving up")
        assert gave_up.state == WorkerState.FAILED
        lost = [e for e in events.seen if isinstance(e, WorkerLost)]
        assert len(lost) == MAX_FAILED_STARTS - 1  # restarted twice, then no more
        assert not [e for e in events.collect(2.0) if isinstance(e, Status) and e.state == WorkerState.STARTING]
    finally:
        _stop_for_good(tier)
