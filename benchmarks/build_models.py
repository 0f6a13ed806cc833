"""Build the benchmark models (random weights, no download) and save them to a cache folder.

Run as a subprocess by ``bench.py`` so that TensorFlow never enters the process that times the GUI:
``python benchmarks/build_models.py CACHE_DIR NAME...``. A model already in the cache is reused; each file is
written under a temporary name and renamed, so an interrupted build never leaves a truncated model behind.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

BUILDERS = {  # file stem -> keras.applications constructor name (default input sizes)
    "resnet50": "ResNet50",
    "densenet121": "DenseNet121",
    "efficientnetb7": "EfficientNetB7",  # 600x600 input by default
}


def model_path(cache: Path, name: str) -> Path:
    return cache / f"{name}.keras"


def build(cache: Path, names: list[str]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not model_path(cache, n).exists()]
    if not missing:
        return
    import keras

    for name in missing:
        start = time.perf_counter()
        model = getattr(keras.applications, BUILDERS[name])(weights=None)
        target = model_path(cache, name)
        partial = target.with_name(f".{target.stem}.partial.keras")  # save() wants a .keras suffix
        model.save(partial)
        partial.replace(target)
        print(f"built {name}: {len(model.layers)} layers, {model.count_params():,} params, "
              f"{target.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s", flush=True)
        del model
        keras.backend.clear_session()


if __name__ == "__main__":
    build(Path(sys.argv[1]), sys.argv[2:] or list(BUILDERS))
