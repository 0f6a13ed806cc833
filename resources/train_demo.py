#!/usr/bin/env python
"""Train the small texture-classifier CNN that ships as Keras Explorer's demo model.

Everything is built from images bundled *inside* the scikit-image wheel
(``skimage/data/*.png``), so the script needs no network access.

Outputs (next to this script unless ``--out-dir`` is given):

* ``demo_model.keras``   - trained Keras 3 model (``model.save`` format)
* ``demo_model_classes.json``  - class names in output order
* ``images/*.png|jpg``   - sample images for the explorer (held-out texture
  crops that the model never saw during training, plus one natural photo)

Usage::

    .venv/bin/python resources/train_demo.py               # train + images
    .venv/bin/python resources/train_demo.py --images-only # only regenerate images

Data / split
------------
The three grayscale 512x512 textures ``brick``, ``grass`` and ``gravel`` are
each split spatially: the bottom-right 256x256 quadrant is held out (test
crops and the sample images come from it), training crops come only from the
remaining L-shaped region, so train and test pixels never overlap.

Each sample is a random square crop with side 64..256 px, resized to 64x64
(so the model works both on native-scale 64x64 patches and on a whole
256x256 sample image resized to the input size), randomly rotated by a
multiple of 90 degrees / flipped, then turned into RGB with random colour
tint, brightness and contrast (the source textures are grayscale, so colour
carries no class information and the model has to use texture).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Must be set before TensorFlow is imported to take effect for oneDNN kernels.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import numpy as np
from PIL import Image

SEED = 1234
INPUT_SIZE = 64
CLASSES = ["brick", "grass", "gravel"]  # output order of the model
HELD_OUT = 256  # bottom-right HELD_OUT x HELD_OUT quadrant is never trained on
CROP_MIN, CROP_MAX = 64, 256  # side of the source crop before resizing to INPUT_SIZE

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- data
def load_textures() -> dict[str, np.ndarray]:
    """Load the bundled textures straight from the installed skimage package.

    ``skimage.data.<name>()`` reads ``skimage/data/<name>.png`` from the wheel
    for these images (no pooch download); we assert the files exist locally so
    a future scikit-image that stops bundling them fails loudly instead of
    trying to fetch them.
    """
    import skimage
    import skimage.data

    data_dir = Path(skimage.__file__).parent / "data"
    out = {}
    for name in CLASSES:
        path = data_dir / f"{name}.png"
        if not path.is_file():
            raise SystemExit(f"{path} is not bundled with this scikit-image; cannot run offline")
        img = getattr(skimage.data, name)()
        assert img.shape == (512, 512) and img.dtype == np.uint8, (name, img.shape, img.dtype)
        out[name] = img
    return out


def _crop_resize(img: np.ndarray, y: int, x: int, side: int, size: int) -> np.ndarray:
    patch = img[y : y + side, x : x + side]
    if side != size:
        patch = np.asarray(Image.fromarray(patch).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None))
    return patch


def _random_box(rng: np.random.Generator, h: int, w: int, held_out: bool) -> tuple[int, int, int]:
    """Random square (y, x, side) fully inside the train region or the held-out quadrant."""
    side = int(rng.integers(CROP_MIN, CROP_MAX + 1))
    q0 = h - HELD_OUT
    if held_out:
        y = int(rng.integers(q0, h - side + 1))
        x = int(rng.integers(q0, w - side + 1))
        return y, x, side
    while True:  # rejection-sample boxes that do not touch the held-out quadrant
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        if y + side <= q0 or x + side <= q0:
            return y, x, side


def _to_rgb(gray: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Grayscale uint8 -> RGB uint8, optionally with random tint/brightness/contrast."""
    g = gray.astype(np.float32)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    if rng is not None:
        contrast = rng.uniform(0.7, 1.3)
        brightness = rng.uniform(-30.0, 30.0)
        rgb = (rgb - rgb.mean()) * contrast + rgb.mean() + brightness
        if rng.random() < 0.75:  # colour tint (keeps grayscale samples in the mix too)
            gains = rng.uniform(0.65, 1.35, size=3).astype(np.float32)
            gains /= gains.mean()
            rgb = rgb * gains
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def make_split(
    textures: dict[str, np.ndarray], n_per_class: int, held_out: bool, augment: bool, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, name in enumerate(CLASSES):
        img = textures[name]
        for _ in range(n_per_class):
            y, x, side = _random_box(rng, *img.shape, held_out=held_out)
            patch = _crop_resize(img, y, x, side, INPUT_SIZE)
            patch = np.rot90(patch, k=int(rng.integers(4)))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            xs.append(_to_rgb(patch, rng if augment else None))
            ys.append(label)
    order = rng.permutation(len(xs))
    return np.stack(xs)[order], np.asarray(ys, dtype=np.int32)[order]


def write_sample_images(textures: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
    """Held-out 256x256 texture quadrants (as RGB PNG) + one natural photo."""
    import skimage.data

    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CLASSES:
        quadrant = textures[name][-HELD_OUT:, -HELD_OUT:]  # never used for training
        p = img_dir / f"{name}.png"
        Image.fromarray(_to_rgb(quadrant, None)).save(p, optimize=True)
        paths.append(p)
    # Natural photo (out of distribution for the classifier, good for feature maps).
    p = img_dir / "chelsea.jpg"
    Image.fromarray(skimage.data.chelsea()).save(p, quality=90, optimize=True)
    paths.append(p)
    return paths


def load_image_for_model(path: Path) -> np.ndarray:
    """What a viewer would do: RGB, resize whole image to the model input, uint8 0..255."""
    img = Image.open(path).convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


# -------------------------------------------------------------------------- model
def build_model(num_classes: int):
    import keras
    from keras import layers

    def conv_block(name: str, filters: int, strides: int = 1, relu: bool = True) -> keras.Sequential:
        """Conv2D -> BatchNorm (-> ReLU) as a nested Sequential sub-model."""
        block = [
            layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"),
            layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"),
        ]
        if relu:
            block.append(layers.ReLU(name=f"{name}_relu"))
        return keras.Sequential(block, name=name)

    def residual_stage(name: str, in_shape: tuple[int, int, int], filters: int) -> keras.Model:
        """Down-sampling residual stage as a nested Functional sub-model (contains Sequentials)."""
        inp = keras.Input(shape=in_shape, name=f"{name}_input")
        y = conv_block(f"{name}_block_a", filters, strides=2)(inp)
        y = conv_block(f"{name}_block_b", filters, relu=False)(y)
        shortcut = layers.Conv2D(filters, 1, strides=2, use_bias=False, name=f"{name}_shortcut")(inp)
        out = layers.Add(name=f"{name}_add")([y, shortcut])
        out = layers.ReLU(name=f"{name}_relu")(out)
        return keras.Model(inp, out, name=name)

    s = INPUT_SIZE
    inputs = keras.Input(shape=(s, s, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv_block("stem", 16)(x)  # 64x64x16
    x = residual_stage("res_stage1", (s, s, 16), 32)(x)  # 32x32x32
    x = residual_stage("res_stage2", (s // 2, s // 2, 32), 64)(x)  # 16x16x64

    # Two pooling branches mixed by ONE shared 1x1 conv (same layer instance called twice).
    max_branch = layers.MaxPooling2D(2, name="branch_maxpool")(x)  # 8x8x64
    avg_branch = layers.AveragePooling2D(2, name="branch_avgpool")(x)  # 8x8x64
    shared_mixer = layers.Conv2D(64, 1, activation="relu", name="shared_mixer")
    x = layers.Concatenate(name="merge_branches")([shared_mixer(max_branch), shared_mixer(avg_branch)])

    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(0.3, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="texture_cnn")


def print_summary(model) -> None:
    """model.summary() with nested blocks expanded; widen rich's console when stdout is not a tty."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        model.summary(expand_nested=True, line_length=100, print_fn=print)
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--images-only", action="store_true", help="only (re)write images/ and exit")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train-per-class", type=int, default=900)
    ap.add_argument("--test-per-class", type=int, default=300)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    textures = load_textures()
    image_paths = write_sample_images(textures, out_dir)
    print("sample images:", ", ".join(f"{p.name} ({p.stat().st_size // 1024} KB)" for p in image_paths))
    if args.images_only:
        return 0

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)  # python, numpy and TF seeds
    tf.config.experimental.enable_op_determinism()

    x_train, y_train = make_split(textures, args.train_per_class, held_out=False, augment=True, seed=SEED)
    x_test, y_test = make_split(textures, args.test_per_class, held_out=True, augment=False, seed=SEED + 1)
    x_test_col, y_test_col = make_split(textures, args.test_per_class, held_out=True, augment=True, seed=SEED + 2)
    print(f"data: train {x_train.shape} test {x_test.shape} ({time.perf_counter() - t_start:.1f}s)")

    model = build_model(len(CLASSES))
    steps = args.epochs * int(np.ceil(len(x_train) / 64))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    print_summary(model)

    t_fit = time.perf_counter()
    model.fit(x_train.astype(np.float32), y_train, batch_size=64, epochs=args.epochs, shuffle=True, verbose=2)
    fit_s = time.perf_counter() - t_fit

    _, acc = model.evaluate(x_test.astype(np.float32), y_test, batch_size=256, verbose=0)
    _, acc_col = model.evaluate(x_test_col.astype(np.float32), y_test_col, batch_size=256, verbose=0)
    print(f"held-out accuracy: {acc:.4f} (plain grayscale crops), {acc_col:.4f} (colour-jittered crops)")

    model_path = out_dir / "demo_model.keras"
    model.save(model_path)
    (out_dir / "demo_model_classes.json").write_text(json.dumps(CLASSES, indent=2) + "\n")

    # Round-trip check with safe_mode=True (no lambdas / custom objects allowed).
    reloaded = keras.saving.load_model(model_path, safe_mode=True)
    probe = x_test[:64].astype(np.float32)
    np.testing.assert_allclose(model.predict(probe, verbose=0), reloaded.predict(probe, verbose=0), atol=1e-5)
    print(f"saved {model_path} ({model_path.stat().st_size / 1024:.0f} KB); reload with safe_mode=True OK")

    print("sample image predictions (whole image resized to 64x64):")
    batch = np.stack([load_image_for_model(p) for p in image_paths])
    for p, probs in zip(image_paths, reloaded.predict(batch, verbose=0), strict=True):
        top = int(np.argmax(probs))
        detail = ", ".join(f"{c}={v:.3f}" for c, v in zip(CLASSES, probs, strict=True))
        print(f"  {p.name:12s} -> {CLASSES[top]:6s} ({detail})")

    print(f"training time {fit_s:.1f}s, total {time.perf_counter() - t_start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
