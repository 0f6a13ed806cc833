"""Images for the activation view: load a picture, fit it to a model input, apply the model's preprocessing.

Pure numpy + Pillow (no Qt, no TensorFlow). Arrays handed between the steps are always channels-last
(H, W, C): ``fit_to_input`` -> ``apply_preprocessing`` -> ``model_input_preview`` work in that layout, and
``to_model_batch`` makes the final (1, ...) array in the model's own layout.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
PRESETS = ("none", "unit", "symmetric", "caffe", "torch", "custom")
FIT_MODES = ("resize", "crop")
CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR order, as keras.applications.imagenet_utils
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
# Bilinear, not Keras' load_img default ("nearest"): Pillow's bilinear widens its kernel when shrinking, so a
# photo reduced to 224 px is antialiased instead of aliased. Values can differ slightly from a nearest pipeline.
RESAMPLE = Image.Resampling.BILINEAR
_WHITE = (255, 255, 255, 255)
_GRAY_MODES = {"1", "L", "LA", "La"}
_INT16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


class ImageError(Exception):
    """A problem with the user's image or its fit to the model, worded for the user."""


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded picture: ``pixels`` is read-only uint8 (H, W, 3) for mode "RGB" or (H, W, 1) for "L".

    ``original_size`` is (width, height) of the full-resolution image as displayed (EXIF orientation applied),
    before any downscaling to ``max_side``.
    """

    pixels: np.ndarray
    mode: str
    source: str
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]


def load_image(path: str | os.PathLike[str], max_side: int = 4096) -> LoadedImage:
    """Decode any still image Pillow reads (first frame of animations) to 8-bit RGB or grayscale.

    Large images are shrunk so that max(height, width) <= ``max_side``; JPEGs are decoded at reduced size.
    """
    source = str(path)
    name = Path(source).name or source
    if not os.path.exists(source):
        raise ImageError(f"{name}: file not found")
    if os.path.isdir(source):
        raise ImageError(f"{name}: is a folder, not an image")
    if os.path.getsize(source) == 0:
        raise ImageError(f"{name}: the file is empty")
    try:
        # Pillow warns above MAX_IMAGE_PIXELS; we check the size ourselves after draft() below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (cannot identify image file)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: too large to open safely ({exc})") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    with image:
        width, height = image.size
        try:
            orientation = image.getexif().get(0x0112)
        except Exception:  # a broken EXIF block must not stop the picture; decoding errors surface below
            orientation = None
        original_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # 5-8 swap axes
        if max(width, height) > max_side:
            scale = max_side / max(width, height)
            image.draft(None, (max(1, int(width * scale)), max(1, int(height * scale))))  # JPEG only: no-op else
        limit = Image.MAX_IMAGE_PIXELS
        if limit and image.width * image.height > limit:
            raise ImageError(
                f"{name}: {width}x{height} pixels is more than can be decoded safely ({limit / 1e6:.0f} megapixels,"
                " a guard against decompression bombs); save a smaller copy"
            )
        try:
            image.load()
            image = _to_8bit(ImageOps.exif_transpose(image))
            image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
            pixels = np.asarray(image, dtype=np.uint8)
        except ImageError as exc:
            raise ImageError(f"{name}: {exc}") from None
        except Exception as exc:  # corrupt data surfaces as OSError, SyntaxError, ValueError, struct.error...
            raise ImageError(f"{name}: the image data is damaged or incomplete ({exc})") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    pixels.setflags(write=False)  # shared between views and worker threads
    return LoadedImage(pixels=pixels, mode=image.mode, source=source, original_size=original_size)


def _to_8bit(image: Image.Image) -> Image.Image:
    """RGB or L: alpha composited on white, palette/CMYK/YCbCr to RGB, high bit depths scaled to 0..255."""
    if image.mode in _INT16_MODES or image.mode in ("I", "F"):
        values = np.asarray(image).astype(np.float64)
        if image.mode in _INT16_MODES:
            # The bit depth is the nominal range: 65535 -> 255 keeps absolute brightness (a dark frame stays
            # dark) and maps 8-bit data stored as 16-bit (v * 257) back exactly. Pillow's convert("L") clips.
            values = values / 257.0
        else:
            # 32-bit int / float have no nominal range: stretch the real one.
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(np.clip(np.round(np.nan_to_num(values)), 0, 255).astype(np.uint8))
    target = "L" if image.mode in _GRAY_MODES else "RGB"
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert(target)
    try:
        return image.convert(target)
    except ValueError:
        raise ImageError(f"colour mode {image.mode} is not supported") from None


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """How pixel values (0..255) become model input. ``mean``/``std`` are used by "custom" only, in 0..255
    units, one value for all channels or one per channel. ``reason`` explains a suggestion; it is not part of
    equality, so ``suggest_preprocessing(...) == Preprocessing("caffe")`` compares the settings only.
    """

    preset: str = "none"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    reason: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preprocessing preset {self.preset!r}; expected one of {PRESETS}")
        mean, std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        if not mean or not std:
            raise ValueError("mean and std need at least one value")
        if any(s == 0 or not np.isfinite(s) for s in std) or not all(np.isfinite(mean)):
            raise ValueError("std values must be non-zero and mean/std finite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)


def apply_preprocessing(array: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """A new float32 array: ``prep`` applied to channels-last pixel values in 0..255 (input is not modified)."""
    x = np.array(array, dtype=np.float32)  # always a copy
    channels = x.shape[-1]
    if prep.preset in ("caffe", "torch") and channels != 3:
        raise ImageError(f"The '{prep.preset}' preprocessing needs 3 colour channels; the model input has {channels}")
    if prep.preset == "unit":
        return x / np.float32(255.0)
    if prep.preset == "symmetric":
        return x / np.float32(127.5) - np.float32(1.0)
    if prep.preset == "caffe":  # RGB -> BGR, then zero-centre; no scaling
        return x[..., ::-1] - np.asarray(CAFFE_MEAN, dtype=np.float32)
    if prep.preset == "torch":
        x = x / np.float32(255.0)
        return (x - np.asarray(TORCH_MEAN, dtype=np.float32)) / np.asarray(TORCH_STD, dtype=np.float32)
    if prep.preset == "custom":
        for label, values in (("mean", prep.mean), ("std", prep.std)):
            if len(values) not in (1, channels):
                raise ImageError(f"Custom {label} has {len(values)} values; the model input has {channels} channels")
        return (x - np.asarray(prep.mean, dtype=np.float32)) / np.asarray(prep.std, dtype=np.float32)
    return x


# Ordered: the first matching pattern wins (mobilenetv3 before mobilenet, resnet..v2 before resnet...).
_FAMILIES: tuple[tuple[str, str, str], ...] = (
    (r"mobilenetv3", "none", "MobileNetV3 rescales inside the model"),
    (r"efficientnet", "none", "EfficientNet rescales inside the model"),
    (r"convnext", "none", "ConvNeXt normalises inside the model"),
    (r"regnet", "none", "RegNet rescales inside the model"),
    (r"inceptionresnetv2", "symmetric", "InceptionResNetV2 expects [-1, 1]"),
    (r"resnet\d*v2", "symmetric", "ResNetV2 expects [-1, 1]"),
    (r"resnet(50|101|152)", "caffe", "ResNet (v1) expects Caffe-style BGR minus the ImageNet mean"),
    (r"vgg1[69]", "caffe", "VGG expects Caffe-style BGR minus the ImageNet mean"),
    (r"mobilenet", "symmetric", "MobileNet (v1/v2) expects [-1, 1]"),
    (r"inceptionv3", "symmetric", "InceptionV3 expects [-1, 1]"),
    (r"xception", "symmetric", "Xception expects [-1, 1]"),
    (r"nasnet", "symmetric", "NASNet expects [-1, 1]"),
    (r"densenet", "torch", "DenseNet expects Torch-style ImageNet normalisation"),
)
# Layers that leave pixel values alone at inference, so a Rescaling behind them still comes "first".
_VALUE_NEUTRAL = {"InputLayer", "Resizing", "CenterCrop"}
_SCALING_FUNCTIONS = {"math.truediv", "math.divide", "__operators__.truediv", "math.multiply"}


def suggest_preprocessing(
    class_names_in_order: list[str], model_name: str, first_layer_config: dict[str, Any] | None
) -> Preprocessing:
    """A sensible default preset, with a one-line ``reason``.

    ``class_names_in_order``: layer class names in graph order (nested models flattened); ``first_layer_config``:
    the config of the first layer after the inputs, only used to word the reason.
    """
    first = next((c for c in class_names_in_order if c not in _VALUE_NEUTRAL and not c.startswith("Random")), None)
    function = (first_layer_config or {}).get("function")
    if first == "TrueDivide" or (first == "TFOpLambda" and function in _SCALING_FUNCTIONS):
        # preprocess_input inside the model (x / 127.5 - 1 as TensorFlow ops or keras.ops): it takes raw pixels.
        shown = f"tf.{function}" if first == "TFOpLambda" else "a division"
        return Preprocessing("none", reason=f"The model scales its input itself ({shown})")
    if first in ("Rescaling", "Normalization"):
        config = first_layer_config or {}
        values = [(key, config.get(key)) for key in ("scale", "offset")]
        detail = ", ".join(f"{key}={value:.6g}" for key, value in values if isinstance(value, float | int))
        return Preprocessing("none", reason=f"The model starts with {first}{f' ({detail})' if detail else ''}")
    compact = re.sub(r"[^a-z0-9]", "", model_name.lower())
    for pattern, preset, reason in _FAMILIES:
        if re.search(pattern, compact):
            return Preprocessing(preset, reason=f"{reason} (model name {model_name!r})")
    return Preprocessing("unit", reason="No known model family; most models are trained on pixels scaled to [0, 1]")


# --------------------------------------------------------------------------- fitting to the model input


def fit_to_input(
    image: LoadedImage,
    input_shape: tuple[int | None, ...],
    mode: str = "resize",
    max_free_side: int = 1024,
    channels_first: bool = False,
) -> np.ndarray:
    """float32 (H, W, C) pixel values in 0..255 sized for ``input_shape`` (no batch axis).

    ``input_shape`` is in the model's layout: (H, W, C), or (C, H, W) with ``channels_first``, or (H, W) for
    grayscale models without a channel axis. The result is channels-last either way (see ``to_model_batch``).
    "resize" stretches to the target size, "crop" first cuts the centre to the target aspect ratio. ``None``
    sizes take the image's own (keeping the aspect ratio, max side <= ``max_free_side``).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}; expected one of {FIT_MODES}")
    height, width, channels = _spatial(input_shape, channels_first)
    picture = Image.fromarray(image.pixels[..., 0] if image.mode == "L" else image.pixels)
    w, h = picture.size
    if height is None and width is None:
        scale = min(1.0, max_free_side / max(w, h))
        width, height = max(1, round(w * scale)), max(1, round(h * scale))
    elif height is None:
        height = max(1, round(h * width / w))
    elif width is None:
        width = max(1, round(w * height / h))
    elif mode == "crop":
        # Largest centred box with the target aspect ratio, then resize: nothing from outside the box leaks in.
        crop_w, crop_h = min(w, max(1, round(h * width / height))), min(h, max(1, round(w * height / width)))
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        picture = picture.crop((left, top, left + crop_w, top + crop_h))
    if picture.size != (width, height):
        picture = picture.resize((width, height), RESAMPLE)
    wanted = {1: "L", 3: "RGB", 4: "RGBA"}[channels or image.pixels.shape[-1]]
    if picture.mode != wanted:
        picture = picture.convert(wanted)  # RGB -> L is luminance; L -> RGB repeats; RGBA gets opaque alpha
    array = np.asarray(picture, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array


def _spatial(input_shape: tuple[int | None, ...], channels_first: bool) -> tuple[int | None, int | None, int | None]:
    shape = tuple(input_shape)
    if len(shape) == 2:
        height, width, channels = shape[0], shape[1], 1
    elif len(shape) == 3:
        height, width, channels = (shape[1], shape[2], shape[0]) if channels_first else shape
    else:
        raise ImageError(
            f"The model input has shape {shape} (without the batch axis); only image inputs "
            "(height, width) or (height, width, channels) can take a picture"
        )
    for dim in (height, width, channels):
        if dim is not None and (not isinstance(dim, int | np.integer) or dim <= 0):
            raise ImageError(f"The model input shape {shape} has an invalid size {dim!r}")
    if channels not in (None, 1, 3, 4):
        raise ImageError(
            f"The model expects {channels} channels per pixel; a picture can only give 1 (grayscale), "
            "3 (RGB) or 4 (RGBA)"
        )
    return height, width, channels


def to_model_batch(array: np.ndarray, input_shape: tuple[int | None, ...], channels_first: bool = False) -> np.ndarray:
    """The (1, *input_shape) float32 array to feed: channels moved first if asked, channel axis dropped for
    (H, W) inputs."""
    x = np.asarray(array, dtype=np.float32)
    if len(input_shape) == 2:
        x = x[..., 0]
    elif channels_first:
        x = np.moveaxis(x, -1, 0)
    return np.ascontiguousarray(x[None])


def model_input_preview(array: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) view of the exact channels-last array fed to the model (leading batch axes of 1 allowed).

    Each channel is min-max stretched on its own (so any preset is visible); a constant channel is mid-grey.
    Channels are shown in the order the model receives them: after "caffe" the picture is BGR, so red and
    blue look swapped - that is what the model sees. One channel is shown as grey, a 4th (alpha) is dropped.
    """
    x = np.asarray(array, dtype=np.float64)
    while x.ndim > 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.size == 0:
        raise ValueError(f"expected an (H, W, C) array, got shape {np.shape(array)}")
    x = x[..., :3] if x.shape[-1] >= 3 else np.repeat(x[..., :1], 3, axis=-1)
    x = np.where(np.isfinite(x), x, 0.0)
    low, high = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    span = high - low
    scaled = np.where(span > 0, (x - low) / np.where(span > 0, span, 1.0), 0.5)
    return np.round(scaled * 255.0).astype(np.uint8)


def image_files(folder: str | Path) -> list[Path]:
    """The image files of a folder (by suffix, not recursing), or every file a glob pattern matches (``**``
    recurses): the inputs a folder run accounts for, each in its output or its skipped list."""
    root = Path(folder)
    if root.is_dir():
        return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if glob.has_magic(str(folder)):
        return sorted(p for p in map(Path, glob.glob(str(folder), recursive=True)) if p.is_file())
    raise ImageError(f"{root}: not a folder (nor a pattern such as 'photos/**/*.jpg')")
