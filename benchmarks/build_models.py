"""Build the benchmark models (random weights, no download) and save them to a cache folder.

Run as a subprocess by ``bench.py`` so that TensorFlow never enters the process that times the GUI:
``python benchmarks/build_models.py CACHE_DIR NAME...``. A model already in the cache is reused; each file is
written under a temporary name and renamed, so an interrupted build never leaves a truncated model behind.

The Keras 2 models are written by tf-keras 2.21 (the ``tf.keras`` of TF 2.13-2.15, on this venv's TensorFlow),
which is not a project dependency: it is installed once into the cache folder (``pip install --no-deps
--target``) and the writer runs in a subprocess of its own with it on ``PYTHONPATH``, as
``tests/fixtures/make_generations.py`` does.
"""

from __future__ import annotations

import os
import subprocess
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
KERAS2_BUILDERS = {"resnet50_keras2": "ResNet50"}  # saved by tf-keras as a legacy .h5
TF_KERAS = "tf-keras==2.21.0"
KERAS2_FLAG = "--keras2"  # argv[1] of the subprocess that runs with tf-keras importable


def model_path(cache: Path, name: str) -> Path:
    return cache / f"{name}{'.h5' if name in KERAS2_BUILDERS else '.keras'}"


def build(cache: Path, names: list[str]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not model_path(cache, n).exists()]
    keras3 = [n for n in missing if n in BUILDERS]
    keras2 = [n for n in missing if n in KERAS2_BUILDERS]
    if keras3:
        import keras

        write(keras, cache, keras3, BUILDERS)
    if keras2:
        packages = cache / TF_KERAS.replace("==", "-")
        if not (packages / "tf_keras").is_dir():
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                            str(packages), TF_KERAS], check=True)
        env = dict(os.environ, PYTHONPATH=str(packages), PYTHONNOUSERSITE="1")
        subprocess.run([sys.executable, __file__, KERAS2_FLAG, str(cache), *keras2], env=env, check=True)


def write(keras, cache: Path, names: list[str], builders: dict[str, str]) -> None:
    """``keras`` is Keras 3 or tf-keras: both save to the format the file suffix names."""
    for name in names:
        start = time.perf_counter()
        model = getattr(keras.applications, builders[name])(weights=None)
        target = model_path(cache, name)
        partial = target.with_name(f".{target.stem}.partial{target.suffix}")  # save() picks the format by suffix
        model.save(partial)
        partial.replace(target)
        print(f"built {target.name} (Keras {keras.__version__}): {len(model.layers)} layers, "
              f"{model.count_params():,} params, {target.stat().st_size / 1e6:.0f} MB in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        del model
        keras.backend.clear_session()


if __name__ == "__main__":
    if sys.argv[1] == KERAS2_FLAG:
        import tf_keras

        write(tf_keras, Path(sys.argv[2]), sys.argv[3:], KERAS2_BUILDERS)
    else:
        build(Path(sys.argv[1]), sys.argv[2:] or [*BUILDERS, *KERAS2_BUILDERS])
