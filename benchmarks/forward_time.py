"""Plain-Keras baseline for a first activation: cut an extractor out of a loaded model and call it once.

``python benchmarks/forward_time.py MODEL INPUT_NPY [--warmup LAYER] [--tf-keras] LAYER...``: loads the model
(not timed; with tf-keras for a Keras 2 file) and
the preprocessed input the window fed the live tier (an (H, W, C) ``.npy``, no batch axis), then for each layer
times ``keras.Model(model.input, model.get_layer(name).output)`` (build) and one
``extractor(x, training=False)`` call converted to numpy (call), exactly what the worker does for a new layer.
A second call of the same extractor is timed too (steady state, for the diagnosis). The ``--warmup`` layer is
computed first and reported apart, as the window's benchmark does, so that TensorFlow's one-time start-up
(thread pools, first kernels) is not charged to the first measured layer of either side.

Prints one JSON line: ``{"load_s": ..., "warmup": {...}, "layers": {name: {"build_s", "call_s", "total_s",
"second_call_s", "shape"}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("input", help=".npy array (H, W, C) as fed by the window, without the batch axis")
    parser.add_argument("layers", nargs="+")
    parser.add_argument("--warmup", help="a layer computed first and reported apart")
    parser.add_argument("--tf-keras", action="store_true", help="load and cut with tf-keras (a Keras 2 file)")
    options = parser.parse_args()

    import numpy as np

    if options.tf_keras:
        import tf_keras as keras

        load = keras.models.load_model
    else:
        import keras

        load = keras.saving.load_model
    start = time.perf_counter()
    model = load(options.model, compile=False)
    load_s = time.perf_counter() - start
    x = np.load(options.input).astype(np.float32)[None]

    def first_activation(name: str) -> dict:
        start = time.perf_counter()
        extractor = keras.Model(model.input, model.get_layer(name).output)
        built = time.perf_counter()
        output = np.asarray(extractor(x, training=False))
        called = time.perf_counter()
        np.asarray(extractor(x, training=False))
        again = time.perf_counter()
        return {"build_s": built - start, "call_s": called - built, "total_s": called - start,
                "second_call_s": again - called, "shape": list(output.shape[1:])}

    warmup = first_activation(options.warmup) if options.warmup else None
    layers = {name: first_activation(name) for name in options.layers}
    print(json.dumps({"load_s": load_s, "warmup": warmup, "layers": layers}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
