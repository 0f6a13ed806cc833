"""The one-time cost of moving a Keras 2 file to Keras 3, against a plain tf-keras load of the same file.

``python benchmarks/conversion_time.py MODEL.h5 SCRATCH_DIR``: loads the file with tf-keras as the worker does
(``open_model``), then times the Keras 3 rebuild with its check against tf-keras on a fixed input (what the
worker does on the first export, Save as Keras 3, attribution or per-layer numbers) and Save as Keras 3 itself
(the ``.keras`` written and reloaded with safe mode in a fresh process). The baseline,
``tf_keras.models.load_model`` of the file, is timed last in the same process, so it finds everything warm.
Prints one JSON line of seconds.
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
    source, scratch = Path(sys.argv[1]), Path(sys.argv[2])
    import tf_keras

    from explorer.runtime.keras3_file import save_as_keras3
    from explorer.runtime.loading import open_model, read_file_graph

    start = time.perf_counter()
    live = open_model(source)
    loaded = time.perf_counter()
    live.keras2.twin()
    rebuilt = time.perf_counter()
    report = save_as_keras3(source, read_file_graph(source), scratch / f"{source.stem}_keras3.keras", live=live)
    saved = time.perf_counter()
    if not report.verified:
        raise SystemExit(f"Save as Keras 3 failed: {report.message}")
    tf_keras.models.load_model(source, compile=False)
    plain = time.perf_counter()
    print(json.dumps({"load_s": loaded - start, "rebuild_check_s": rebuilt - loaded,
                      "save_verify_s": saved - rebuilt, "plain_load_s": plain - saved}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
