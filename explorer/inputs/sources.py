"""The arrays fed to the model: one per model input, from an image, zeros, random values or a .npy file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.inputs.images import (
    ImageError,
    LoadedImage,
    Preprocessing,
    apply_preprocessing,
    fit_to_input,
    model_input_preview,
    suggest_preprocessing,
    to_model_batch,
)
from explorer.model.graph import InputSpec, LayerGraph

IMAGE, ZEROS, RANDOM, NPY = "image", "zeros", "random", "npy"
SOURCES = (IMAGE, ZEROS, RANDOM, NPY)
FREE_DIM = 32  # size used for unknown (None) dimensions of non-image inputs
MAX_NPY_BYTES = 512 << 20


@dataclass(frozen=True)
class InputSource:
    kind: str = IMAGE
    npy_path: str | None = None


@dataclass(frozen=True)
class PreparedInput:
    array: np.ndarray  # exactly what the model gets, without the batch axis
    preview: np.ndarray | None  # uint8 (H, W, 3) of the fed array, for image inputs
    picture: np.ndarray | None  # the fitted picture before preprocessing (uint8), for overlays


def file_input_specs(graph: LayerGraph) -> list[InputSpec]:
    """The model inputs as the file records them: known before TensorFlow has loaded the model."""
    return [InputSpec(p.name, tuple(p.shape[1:]), "float32") for p in graph.inputs if p.shape]


def suggested_preprocessing(graph: LayerGraph) -> Preprocessing:
    """The preset proposed for this model: from a leading Rescaling/Normalization layer or its name."""
    classes = [n.class_name for n in graph.nodes if not n.is_group]
    first = next((n.config for n in graph.nodes if n.class_name in ("Rescaling", "Normalization", "TFOpLambda",
                                                                     "TrueDivide")), None)
    return suggest_preprocessing(classes, graph.name, first)


def is_image_input(shape: tuple[int | None, ...]) -> bool:
    """(H, W, C) with 1, 3 or 4 channels, or an unknown channel count, and spatial axes that are not tiny."""
    if len(shape) != 3:
        return False
    height, width, channels = shape
    return channels in (1, 3, 4, None) and all(d is None or d >= 8 for d in (height, width))


def default_source(spec: InputSpec) -> InputSource:
    return InputSource(IMAGE if is_image_input(spec.shape) else ZEROS)


def prepare_input(spec: InputSpec, source: InputSource, image: LoadedImage | None, preprocessing: Preprocessing,
                  fit_mode: str = "resize", for_display: bool = True) -> PreparedInput:
    """Raises ImageError (a message for the user) when the source cannot feed this input. Without
    ``for_display`` (batch extraction) the preview and picture are not made: most of the per-image cost."""
    if source.kind == IMAGE:
        if image is None:
            raise ImageError(f"input '{spec.name}' needs an image: open one (File > Open Image)")
        shape = spec.shape if spec.shape[-1] is not None else (*spec.shape[:-1], 3)
        pixels = fit_to_input(image, shape, fit_mode)
        fed = apply_preprocessing(pixels, preprocessing)
        array = to_model_batch(fed, shape)[0]
        if not for_display:
            return PreparedInput(array, None, None)
        return PreparedInput(array, model_input_preview(fed), pixels.astype(np.uint8))
    shape = tuple(FREE_DIM if d is None else d for d in spec.shape)
    if source.kind == ZEROS:
        return PreparedInput(np.zeros(shape, np.float32), None, None)
    if source.kind == RANDOM:
        return PreparedInput(np.random.default_rng(0).standard_normal(shape).astype(np.float32), None, None)
    if source.kind == NPY:
        return PreparedInput(load_npy(source.npy_path, spec), None, None)
    raise ValueError(f"unknown input source {source.kind!r}")


def load_npy(path: str | Path | None, spec: InputSpec) -> np.ndarray:
    """A .npy array for one input, with or without the batch axis; never unpickles objects."""
    if path is None:
        raise ImageError(f"input '{spec.name}': choose a .npy file")
    file = Path(path)
    if not file.is_file():
        raise ImageError(f"{file}: no such file")
    if file.stat().st_size > MAX_NPY_BYTES:
        raise ImageError(f"{file.name}: larger than {MAX_NPY_BYTES >> 20} MB")
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ImageError(f"{file.name}: not a readable .npy array ({error})") from error
    if array.ndim == len(spec.shape) + 1 and array.shape[0] == 1:
        array = array[0]
    expected = spec.shape
    if array.ndim != len(expected) or any(e is not None and e != a for e, a in zip(expected, array.shape,
                                                                                     strict=True)):
        raise ImageError(f"{file.name}: shape {array.shape} does not fit input '{spec.name}' {expected}")
    return array.astype(spec.dtype if spec.dtype.startswith(("float", "int", "uint", "bool")) else np.float32)


BASELINES = ("black", "blurred")  # Integrated Gradients' starting points, as pictures


def baseline_input(spec: InputSpec, prepared: PreparedInput, preprocessing: Preprocessing,
                   kind: str = "black") -> np.ndarray:
    """The model input of a black or blurred copy of the fitted picture, preprocessed like the picture itself;
    for an array input (no picture), black is all zeros."""
    if prepared.picture is None:
        if kind != "black":
            raise ImageError(f"a {kind} baseline needs an image input")
        return np.zeros_like(prepared.array)
    if kind == "black":
        pixels = np.zeros(prepared.picture.shape, np.float32)
    elif kind == "blurred":
        from PIL import Image, ImageFilter

        grey = prepared.picture.shape[-1] == 1
        picture = Image.fromarray(prepared.picture[..., 0] if grey else prepared.picture)
        radius = max(picture.size) / 20  # the shapes go, the colours stay
        pixels = np.asarray(picture.filter(ImageFilter.GaussianBlur(radius)), np.float32)
        pixels = pixels[..., None] if grey else pixels
    else:
        raise ValueError(f"unknown baseline {kind!r}: choose {', '.join(BASELINES)}")
    shape = spec.shape if spec.shape[-1] is not None else (*spec.shape[:-1], 3)
    return to_model_batch(apply_preprocessing(pixels, preprocessing), shape)[0]
