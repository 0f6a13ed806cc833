"""Attribution and one-pass figures for ``make bench`` (run in a subprocess of bench.py, one model each).

``python benchmarks/attribution_time.py gradcam MODEL.keras``: a plain Keras forward pass of the model
(``model(x, training=False)``, median of ROUNDS after a warm-up) against Grad-CAM on its last spatial layer
through explorer.runtime.attribution (the first call, which builds the cut, reported apart), same input.
``python benchmarks/attribution_time.py one_pass MODEL.keras``: every layer's statistics in one pass
(explorer.runtime.layer_stats.layer_statistics), its time and the process's peak resident memory (VmHWM);
``forward MODEL.keras``: the same for one plain forward pass (the baseline: Keras keeps every intermediate
tensor until the call returns). Each in its own process, so each peak is its own.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROUNDS = 5


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def median_seconds(run, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> int:
    import keras
    import numpy as np

    from explorer.runtime.attribution import Scorer, explain, last_spatial_layer
    from explorer.runtime.layer_stats import layer_statistics

    what, path = sys.argv[1], sys.argv[2]
    model = keras.saving.load_model(path, compile=False)
    shape = tuple(model.input_shape[1:])
    x = np.random.default_rng(0).uniform(-100, 100, shape).astype(np.float32)
    forward = lambda: np.asarray(model(x[None], training=False))  # noqa: E731
    loaded_mb = peak_rss_mb()
    if what == "one_pass":
        start = time.perf_counter()
        layers = len(layer_statistics(model, x))
        print(json.dumps({"layers": layers, "one_pass_s": time.perf_counter() - start, "loaded_mb": loaded_mb,
                          "peak_mb": peak_rss_mb()}))
        return 0
    if what == "forward":
        start = time.perf_counter()
        forward()
        print(json.dumps({"forward_s": time.perf_counter() - start, "loaded_mb": loaded_mb,
                          "peak_mb": peak_rss_mb()}))
        return 0
    forward()  # warm-up: TensorFlow's one-time start
    if what == "gradcam":
        forward_s = median_seconds(forward)
        start = time.perf_counter()
        scorer = Scorer(model, *last_spatial_layer(model))
        explain(scorer, x, "gradcam")
        first_s = time.perf_counter() - start
        gradcam_s = median_seconds(lambda: explain(scorer, x, "gradcam"))
        print(json.dumps({"layer": scorer.layer, "forward_s": forward_s, "gradcam_s": gradcam_s,
                          "gradcam_first_s": first_s}))
        return 0
    raise SystemExit(f"unknown measurement {what!r}: gradcam, one_pass or forward")


if __name__ == "__main__":
    sys.exit(main())
