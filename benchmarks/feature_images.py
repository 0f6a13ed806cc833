"""A folder of natural-looking 224x224 JPEGs for the ``features`` benchmark, made once from the sample images.

``python benchmarks/feature_images.py FOLDER [COUNT]``; ``bench.py`` calls ``make_images`` (Pillow and numpy
only, no TensorFlow). Each image is a random crop (35-100 % of the shorter side, aspect 3:4 to 4:3) of one of
``resources/images/*``, maybe mirrored (and, for the textures, turned by a multiple of 90 degrees), with random
brightness, contrast, saturation and per-channel colour gains, resized to 224x224 (bicubic) and saved as JPEG
quality 90. The content is deterministic (seeded). The folder is filled under a temporary name and renamed when
complete, so an interrupted run never leaves a partial set behind; an existing complete folder is reused.
With ``small=N`` (the memory benchmark's folders) the images are then resized to N x N and saved as PNG; the
first K images of a larger folder are the images of a K folder (same seed).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

SOURCES = Path(__file__).resolve().parent.parent / "resources" / "images"
SIZE = 224
QUALITY = 90
TEXTURES = ("brick", "grass", "gravel")  # no up or down: any rotation still looks natural


def image_names(count: int, suffix: str = "jpg") -> list[str]:
    return [f"img_{index:05d}.{suffix}" for index in range(count)]


def is_complete(folder: Path, names: list[str]) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in names)


def make_images(folder: Path, count: int = 1000, seed: int = 0, small: int | None = None) -> tuple[bool, float]:
    """Fill ``folder`` with ``count`` JPEGs (``small``: small x small PNGs) unless it already holds them;
    returns (made now, seconds)."""
    names = image_names(count, "png" if small else "jpg")
    if is_complete(folder, names):
        return False, 0.0
    start = time.perf_counter()
    sources = {path.stem: Image.open(path).convert("RGB") for path in sorted(SOURCES.iterdir())
               if path.suffix.lower() in (".png", ".jpg", ".jpeg")}
    stems = sorted(sources)
    rng = np.random.default_rng(seed)
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in names:
        stem = stems[rng.integers(len(stems))]
        picture = _variant(sources[stem], stem in TEXTURES, rng)
        if small:
            picture.resize((small, small), Image.Resampling.BICUBIC).save(partial / name, "PNG")
        else:
            picture.save(partial / name, "JPEG", quality=QUALITY)
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete older set
    partial.replace(folder)
    return True, time.perf_counter() - start


def _variant(source: Image.Image, texture: bool, rng: np.random.Generator) -> Image.Image:
    width, height = source.size
    side = min(width, height) * rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w, crop_h = min(width, round(side * np.sqrt(aspect))), min(height, round(side / np.sqrt(aspect)))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    picture = source.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        picture = ImageOps.mirror(picture)
    if texture:
        picture = picture.rotate(90 * int(rng.integers(4)), expand=True)
    picture = picture.resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    picture = ImageEnhance.Brightness(picture).enhance(rng.uniform(0.7, 1.3))
    picture = ImageEnhance.Contrast(picture).enhance(rng.uniform(0.7, 1.3))
    picture = ImageEnhance.Color(picture).enhance(rng.uniform(0.6, 1.4))
    gains = rng.uniform(0.85, 1.15, 3)  # a colour cast
    pixels = np.asarray(picture, dtype=np.float32) * gains.astype(np.float32)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    made, seconds = make_images(target, int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    print(f"{'made' if made else 'reused'} {target}" + (f" in {seconds:.1f} s" if made else ""))
