"""Where the live-tier worker's memory goes when it computes layers: peak RSS per layer, per way of running.

``python benchmarks/profile_worker_memory.py [MODEL] [--size N] [--layers L1,L2,...] [--ways keras,freeing,graph]``
(default: the cached EfficientNetB7 of ``bench.py`` at 600x600 and the 10 layers of ``effb7_10_layers_peak_gb``).
Each way runs in a fresh process (so each has its own peak), computes the layers one after another like the
worker, and prints after each layer: its time, the process's peak RSS (VmHWM) and its current RSS.

- ``keras``: what the worker does, ``keras.Model(model.input, layer.output)(x, training=False)``. Keras 3's
  ``Function._run_through_graph`` keeps every intermediate tensor in its ``tensor_dict`` until the call returns,
  so the peak is the sum of all activations up to the layer;
- ``freeing``: the same nodes in the same order, each computed tensor dropped once its last consumer has run
  (what tf.keras 2 did with ``tensor_usage_count``); with ``--check`` the result is compared with ``keras``'
  output (that extra call happens after the readings, but raises the peak of the next layers);
- ``graph``: the extractor wrapped in ``tf.function`` (TensorFlow's executor frees tensors when no longer
  needed), first call = tracing + run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEFAULT_MODEL = Path(tempfile.gettempdir()) / "keras-explorer-bench" / "efficientnetb7.keras"
DEFAULT_LAYERS = ("stem_activation,block1a_activation,block1d_add,block2a_expand_activation,"
                  "block3a_expand_activation,block3d_activation,block4e_activation,block5f_activation,"
                  "block6h_activation,top_activation")
IMAGE = Path(__file__).resolve().parent.parent / "resources" / "images" / "chelsea.jpg"


def status_gb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 2**20
    return 0.0


def one_way(model_path: str, size: int, layers: list[str], way: str, check: bool) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from explorer.inputs.images import Preprocessing, apply_preprocessing, fit_to_input, load_image
    from explorer.runtime.extraction import run_batch

    model = keras.saving.load_model(model_path, compile=False)
    x = apply_preprocessing(fit_to_input(load_image(IMAGE), (size, size, 3)), Preprocessing("none"))[None]
    rows = [{"layer": "(model loaded)", "peak_gb": status_gb("VmHWM:"), "rss_gb": status_gb("VmRSS:")}]
    for name in layers:
        start = time.perf_counter()
        extractor = keras.Model(model.input, model.get_layer(name).output)
        if way == "keras":
            output = np.asarray(extractor(x, training=False))
        elif way == "freeing":
            # what the worker does: explorer.runtime.extraction.run_batch frees each tensor after its last use
            output = np.asarray(run_batch(extractor, {extractor.inputs[0].name: x})[0])
        else:
            output = np.asarray(tf.function(lambda t, e=extractor: e(t, training=False))(tf.constant(x)))
        seconds = time.perf_counter() - start
        row = {"layer": name, "shape": list(output.shape[1:]), "seconds": seconds,
               "peak_gb": status_gb("VmHWM:"), "rss_gb": status_gb("VmRSS:")}
        if way == "freeing" and check:  # after the readings: the reference call has the keras peak
            reference = np.asarray(extractor(x, training=False))
            row["max_abs_diff_vs_keras"] = float(np.max(np.abs(reference - output)))
        rows.append(row)
        del output
    print(json.dumps(rows), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--layers", default=DEFAULT_LAYERS)
    parser.add_argument("--ways", default="keras,freeing,graph")
    parser.add_argument("--check", action="store_true", help="compare 'freeing' outputs with Keras' (raises its peak)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one way in this process
    options = parser.parse_args()
    layers = options.layers.split(",")
    if options.one:
        one_way(options.model, options.size, layers, options.one, options.check)
        return 0
    for way in options.ways.split(","):
        result = subprocess.run([sys.executable, __file__, options.model, "--size", str(options.size),
                                 "--layers", options.layers, "--one", way, *(["--check"] if options.check else [])],
                                capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            print(f"{way}: failed\n{result.stderr[-2000:]}")
            continue
        print(f"\n{way}:\n{'layer':28} {'shape':18} {'seconds':>8} {'peak GB':>8} {'RSS GB':>8}")
        for row in json.loads(result.stdout.strip().splitlines()[-1]):
            extra = f"  max |diff| {row['max_abs_diff_vs_keras']:.2g}" if "max_abs_diff_vs_keras" in row else ""
            print(f"{row['layer']:28} {tuple(row.get('shape', ()))!s:18} {row.get('seconds', 0):8.2f} "
                  f"{row['peak_gb']:8.2f} {row['rss_gb']:8.2f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
