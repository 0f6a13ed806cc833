"""Plain-Keras baseline for ``keras-explorer features``: the loop a user would write over a folder of images.

``python benchmarks/plain_features.py MODEL LAYER FOLDER [--batch-size 32] [--way predict_on_batch|call]``
loads the model and builds ``extractor = keras.Model(model.input, model.get_layer(LAYER).output)`` (neither is
timed, as the CLI's images/s does not count them either), then times the loop over the sorted ``*.jpg`` files:
per batch, ``keras.utils.load_img(path, target_size=(224, 224))`` + ``img_to_array`` for each file,
``np.stack``, ``keras.applications.resnet50.preprocess_input``, then the extractor:

- ``predict_on_batch``: ``extractor.predict_on_batch(batch)`` (a compiled predict function, numpy out);
- ``call``: ``np.asarray(extractor(batch, training=False))`` (eager call of the functional model);

and ``np.concatenate`` of the batches at the end (the CLI's measure includes its concatenation too; neither
includes writing the result). The first batch is in the timing for both ways, as for the CLI (nobody warms up).

Prints one JSON line: ``{"way", "images", "loop_s", "images_per_s", "load_s", "build_s", "parts_s": {"load": ...,
"preprocess": ..., "model": ..., "concatenate": ...}, "first_batch_s", "shape"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

WAYS = ("predict_on_batch", "call")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("layer")
    parser.add_argument("folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--way", choices=WAYS, default="predict_on_batch")
    options = parser.parse_args()

    import keras
    import numpy as np

    files = sorted(Path(options.folder).glob("*.jpg"))
    start = time.perf_counter()
    model = keras.saving.load_model(options.model, compile=False)
    loaded = time.perf_counter()
    extractor = keras.Model(model.input, model.get_layer(options.layer).output)
    built = time.perf_counter()

    if options.way == "predict_on_batch":
        def infer(batch):
            return extractor.predict_on_batch(batch)
    else:
        def infer(batch):
            return np.asarray(extractor(batch, training=False))

    parts = {"load": 0.0, "preprocess": 0.0, "model": 0.0, "concatenate": 0.0}
    features, first_batch = [], None
    start_loop = time.perf_counter()
    for index in range(0, len(files), options.batch_size):
        t0 = time.perf_counter()
        batch = np.stack([keras.utils.img_to_array(keras.utils.load_img(path, target_size=(224, 224)))
                          for path in files[index:index + options.batch_size]])
        t1 = time.perf_counter()
        batch = keras.applications.resnet50.preprocess_input(batch)
        t2 = time.perf_counter()
        features.append(infer(batch))
        t3 = time.perf_counter()
        parts["load"] += t1 - t0
        parts["preprocess"] += t2 - t1
        parts["model"] += t3 - t2
        first_batch = first_batch or t3 - t0
    t0 = time.perf_counter()
    result = np.concatenate(features)
    end = time.perf_counter()
    parts["concatenate"] = end - t0
    loop_s = end - start_loop
    print(json.dumps({"way": options.way, "images": len(result), "loop_s": loop_s,
                      "images_per_s": len(result) / loop_s, "load_s": loaded - start, "build_s": built - loaded,
                      "parts_s": parts, "first_batch_s": first_batch, "shape": list(result.shape[1:])}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
