"""Time ``keras.utils.plot_model`` (Keras' own graph drawing, the baseline) on a saved model.

``python benchmarks/plot_model_time.py MODEL OUT_DIR REPETITIONS``: loads the model first (not timed), then times
each ``plot_model(model, to_file=..., show_shapes=True)`` call. Prints one JSON line: ``{"times_s": [...]}``, or
``{"error": "..."}`` when plot_model cannot run (pydot is not installed, Graphviz is missing, ...).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main() -> int:
    model_path, out_dir, repetitions = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    try:
        import pydot  # noqa: F401  (plot_model needs it; checked first for a clear message)
    except ImportError as error:
        print(json.dumps({"error": f"pydot is not installed ({error}); add it to the test extras"}))
        return 0
    import keras

    start = time.perf_counter()
    model = keras.saving.load_model(model_path, compile=False)
    load_s = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    times = []
    try:
        for index in range(repetitions):
            target = out_dir / f"{model_path.stem}_plot_model_{index}.png"
            start = time.perf_counter()
            keras.utils.plot_model(model, to_file=str(target), show_shapes=True)
            times.append(time.perf_counter() - start)
    except Exception as error:  # report, do not crash the benchmark: the baseline is optional
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 0
    print(json.dumps({"times_s": times, "load_s": load_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
