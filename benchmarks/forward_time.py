"""Plain-Keras baseline for a first activation: cut an extractor out of a loaded model and call it once.

``python benchmarks/forward_time.py MODEL INPUT_NPY [--tf-keras]`` loads the model (not timed; with tf-keras for
a Keras 2 file) and the preprocessed input the window fed the live tier (an (H, W, C) ``.npy``, no batch axis),
prints ``{"load_s": ...}``, then reads layer names from stdin, one per line. For each it times
``keras.Model(model.input, model.get_layer(name).output)`` (build) and one ``extractor(x, training=False)`` call
converted to numpy (call), exactly what the worker does for a new layer, and prints one JSON line
``{"layer", "build_s", "call_s", "total_s", "second_call_s", "shape"}`` (a second call of the same extractor is
the steady state, for the diagnosis). The benchmark sends each layer right after the window computed it, so
both sides see the machine as it is at that moment: its speed drifts by several per cent within a minute.
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
    print(json.dumps({"load_s": time.perf_counter() - start}), flush=True)
    x = np.load(options.input).astype(np.float32)[None]

    for line in sys.stdin:
        name = line.strip()
        start = time.perf_counter()
        extractor = keras.Model(model.input, model.get_layer(name).output)
        built = time.perf_counter()
        output = np.asarray(extractor(x, training=False))
        called = time.perf_counter()
        np.asarray(extractor(x, training=False))
        again = time.perf_counter()
        print(json.dumps({"layer": name, "build_s": built - start, "call_s": called - built,
                          "total_s": called - start, "second_call_s": again - called,
                          "shape": list(output.shape[1:])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
