"""``explorer.inputs.images`` on real files written with Pillow, and its presets against keras.applications."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.inputs.images import (
    PRESETS,
    ImageError,
    LoadedImage,
    Preprocessing,
    apply_preprocessing,
    fit_to_input,
    load_image,
    model_input_preview,
    suggest_preprocessing,
    to_model_batch,
)

ROOT = Path(__file__).resolve().parents[2]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _bands(size: tuple[int, int], colours, vertical: bool = True, mode: str = "RGB") -> Image.Image:
    """Equal bands of ``colours``: left to right (``vertical``) or top to bottom."""
    image = Image.new(mode, size)
    count = len(colours)
    for i, colour in enumerate(colours):
        if vertical:
            box = (size[0] * i // count, 0, size[0] * (i + 1) // count, size[1])
        else:
            box = (0, size[1] * i // count, size[0], size[1] * (i + 1) // count)
        image.paste(colour, box)
    return image


def _loaded(image: Image.Image, source: str = "memory") -> LoadedImage:
    pixels = np.asarray(image)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return LoadedImage(pixels=pixels, mode=image.mode, source=source, original_size=image.size)


# --------------------------------------------------------------------------- load_image: formats and modes


@pytest.mark.parametrize(
    ("extension", "options", "tolerance"),
    [
        ("png", {}, 0),
        ("jpg", {"quality": 95}, 12),
        ("bmp", {}, 0),
        ("tif", {}, 0),
        ("webp", {"quality": 90}, 12),
        ("gif", {}, 0),
    ],
)
def test_every_format_loads_as_rgb(tmp_path, extension, options, tolerance):
    path = tmp_path / f"bands.{extension}"
    _bands((48, 32), [RED, BLUE]).save(path, **options)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.pixels.shape == (32, 48, 3)
    assert image.pixels.dtype == np.uint8
    assert not image.pixels.flags.writeable
    assert image.original_size == (48, 32) == image.size
    assert image.source == str(path)
    np.testing.assert_allclose(image.pixels[16, 4], RED, atol=tolerance)
    np.testing.assert_allclose(image.pixels[16, 44], BLUE, atol=tolerance)


def test_gif_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    first, second = Image.new("RGB", (20, 10), RED), Image.new("RGB", (20, 10), BLUE)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    assert (load_image(path).pixels == RED).all()


def test_grayscale_stays_one_channel(tmp_path):
    path = tmp_path / "gray.png"
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(path)
    image = load_image(path)
    assert image.mode == "L"
    assert image.pixels.shape == (16, 16, 1)
    np.testing.assert_array_equal(image.pixels[..., 0], values)


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 255, 0)  # fully transparent
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black
    Image.fromarray(rgba).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert tuple(image.pixels[0, 0]) == RED
    assert tuple(image.pixels[0, 1]) == (255, 255, 255)
    np.testing.assert_allclose(image.pixels[0, 2], [127, 127, 127], atol=1)


def test_gray_with_alpha_is_composited_to_gray(tmp_path):
    path = tmp_path / "la.png"
    Image.merge("LA", [Image.new("L", (4, 4), 0), Image.new("L", (4, 4), 0)]).save(path)
    image = load_image(path)
    assert image.mode == "L"
    assert (image.pixels == 255).all()


def test_palette_becomes_rgb_and_transparent_index_white(tmp_path):
    palette_image = Image.new("P", (4, 2), 0)
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette_image.paste(1, (2, 0, 4, 2))
    plain, transparent = tmp_path / "palette.png", tmp_path / "palette_t.png"
    palette_image.save(plain)
    palette_image.save(transparent, transparency=0)

    image = load_image(plain)
    assert image.mode == "RGB"
    assert tuple(image.pixels[0, 0]) == (10, 20, 30)
    assert tuple(image.pixels[0, 3]) == (200, 100, 50)
    image = load_image(transparent)
    assert tuple(image.pixels[0, 0]) == (255, 255, 255)
    assert tuple(image.pixels[0, 3]) == (200, 100, 50)


@pytest.mark.parametrize("extension", ["png", "tif"])
def test_16_bit_gray_is_scaled_by_full_range(tmp_path, extension):
    path = tmp_path / f"deep.{extension}"
    values = np.array([[0, 257 * 10, 65535, 1000, 32768]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    image = load_image(path)
    assert image.mode == "L"
    # 65535 -> 255; 8-bit data stored as 16 bit (v * 257) comes back exactly.
    np.testing.assert_array_equal(image.pixels[0, :, 0], [0, 10, 255, 4, 128])


def test_32_bit_integer_gray_is_stretched_to_its_range(tmp_path):
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[1000, 2000, 3000]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(load_image(path).pixels[0, :, 0], [0, 128, 255])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # no cyan, full magenta+yellow = red
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_allclose(image.pixels[8, 8], RED, atol=8)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    _bands((40, 20), [RED, BLUE]).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.pixels.shape == (40, 20, 3)
    assert image.original_size == (20, 40)
    # The left (red) half of the stored picture is on top once turned clockwise.
    np.testing.assert_allclose(image.pixels[5, 10], RED, atol=12)
    np.testing.assert_allclose(image.pixels[35, 10], BLUE, atol=12)


def test_max_side_downscales_keeping_aspect(tmp_path):
    path = tmp_path / "wide.png"
    _bands((300, 200), [RED, GREEN, BLUE]).save(path)
    image = load_image(path, max_side=100)
    assert image.pixels.shape == (67, 100, 3)
    assert image.original_size == (300, 200)


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    _bands((12000, 9000), [RED, GREEN, BLUE]).save(path, quality=85)
    return path


def test_very_large_jpeg_is_downscaled_quickly(huge_jpeg):
    # 108 megapixels: above Pillow's decompression-bomb warning, so this also proves draft() decoding is used.
    assert Image.MAX_IMAGE_PIXELS < 12000 * 9000
    start = time.perf_counter()
    image = load_image(huge_jpeg)
    elapsed = time.perf_counter() - start
    assert image.pixels.shape == (3072, 4096, 3)
    assert image.original_size == (12000, 9000)
    np.testing.assert_allclose(image.pixels[1536, 100], RED, atol=12)
    np.testing.assert_allclose(image.pixels[1536, 2048], GREEN, atol=12)
    assert elapsed < 3.0, f"loading took {elapsed:.2f} s"


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warning_range, error_range = tmp_path / "warn.png", tmp_path / "bomb.png"
    Image.new("L", (40, 40)).save(warning_range)  # 1600 px: Pillow only warns, but a PNG cannot be draft-decoded
    Image.new("L", (100, 100)).save(error_range)  # 10000 px: more than twice the limit, Pillow refuses
    with pytest.raises(ImageError, match=r"^warn\.png: 40x40 pixels .*decompression bombs"):
        load_image(warning_range)
    with pytest.raises(ImageError, match=r"^bomb\.png: too large to open safely"):
        load_image(error_range)
    # A JPEG in the warning range is fine when draft() brings it under the limit.
    small_enough = tmp_path / "draft.jpg"
    Image.new("RGB", (40, 40), RED).save(small_enough)
    assert load_image(small_enough, max_side=10).pixels.shape == (10, 10, 3)


def test_unreadable_files_raise_image_error(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    cases = {
        text: r"^notes\.jpg: not an image Pillow can read \(cannot identify image file\)$",
        empty: r"^empty\.png: the file is empty$",
        truncated: r"^cut\.png: the image data is damaged or incomplete \(.+\)$",
        tmp_path / "missing.png": r"^missing\.png: file not found$",
        tmp_path: r": is a folder, not an image$",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError, match=message):
            load_image(path)


# --------------------------------------------------------------------------- preprocessing


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (7, 9, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def imagenet_utils():
    from keras.applications import imagenet_utils

    return imagenet_utils


@pytest.mark.parametrize(("preset", "keras_mode"), [("caffe", "caffe"), ("torch", "torch"), ("symmetric", "tf")])
def test_presets_match_keras(imagenet_utils, pixels, preset, keras_mode):
    ours = apply_preprocessing(pixels, Preprocessing(preset))
    reference = imagenet_utils.preprocess_input(pixels.copy(), data_format="channels_last", mode=keras_mode)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, reference)


def test_caffe_matches_keras_channels_first(imagenet_utils, pixels):
    ours = np.moveaxis(apply_preprocessing(pixels, Preprocessing("caffe")), -1, 0)
    chw = np.ascontiguousarray(np.moveaxis(pixels, -1, 0))
    reference = imagenet_utils.preprocess_input(chw, data_format="channels_first", mode="caffe")
    np.testing.assert_array_equal(ours, reference)


def test_simple_and_custom_presets(pixels):
    before = pixels.copy()
    np.testing.assert_array_equal(apply_preprocessing(pixels, Preprocessing()), pixels)
    np.testing.assert_allclose(apply_preprocessing(pixels, Preprocessing("unit")), pixels / 255, rtol=1e-6)
    custom = Preprocessing("custom", mean=[10, 20, 30], std=[2, 4, 8])
    np.testing.assert_allclose(apply_preprocessing(pixels, custom), (pixels - [10, 20, 30]) / [2, 4, 8], rtol=1e-5)
    scalar = Preprocessing("custom", mean=(127.5,), std=(127.5,))
    np.testing.assert_allclose(apply_preprocessing(pixels, scalar), pixels / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(pixels, before)  # input untouched
    assert custom.mean == (10.0, 20.0, 30.0) and hash(custom)


def test_preprocessing_validation(pixels):
    assert set(PRESETS) == {"none", "unit", "symmetric", "caffe", "torch", "custom"}
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        Preprocessing("imagenet")
    with pytest.raises(ValueError, match="non-zero"):
        Preprocessing("custom", std=(1.0, 0.0, 1.0))
    with pytest.raises(ImageError, match="Custom mean has 2 values; the model input has 3 channels"):
        apply_preprocessing(pixels, Preprocessing("custom", mean=(1, 2)))
    with pytest.raises(ImageError, match="'caffe' preprocessing needs 3 colour channels; the model input has 1"):
        apply_preprocessing(pixels[..., :1], Preprocessing("caffe"))
    assert Preprocessing("caffe", reason="because") == Preprocessing("caffe")


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        ("resnet50", "caffe"),
        ("resnet152", "caffe"),
        ("vgg16", "caffe"),
        ("vgg19", "caffe"),
        ("resnet50v2", "symmetric"),
        ("mobilenetv2_1.00_224", "symmetric"),
        ("mobilenet_1.00_224", "symmetric"),
        ("inception_v3", "symmetric"),
        ("inception_resnet_v2", "symmetric"),
        ("xception", "symmetric"),
        ("nasnet_mobile", "symmetric"),
        ("densenet121", "torch"),
        ("efficientnetb0", "none"),
        ("efficientnetv2-b0", "none"),
        ("convnext_tiny", "none"),
        ("MobileNetV3Small", "none"),
        ("regnetx002", "none"),
        ("my_model", "unit"),
    ],
)
def test_suggest_by_model_name(model_name, expected):
    suggestion = suggest_preprocessing(["InputLayer", "Conv2D", "BatchNormalization", "Dense"], model_name, None)
    assert suggestion.preset == expected
    assert suggestion.reason


@pytest.mark.parametrize(
    "layers",
    [
        ["InputLayer", "Rescaling", "Conv2D"],
        ["InputLayer", "Normalization", "Conv2D"],
        ["InputLayer", "RandomFlip", "Resizing", "Rescaling", "Conv2D"],  # value-neutral layers in front
    ],
)
def test_suggest_none_when_model_rescales_itself(layers):
    suggestion = suggest_preprocessing(layers, "resnet50", {"scale": 1 / 255, "offset": 0.0})
    assert suggestion == Preprocessing("none")  # the layer wins over the name
    assert "starts with" in suggestion.reason


def test_suggest_for_the_demo_model():
    from explorer.model.files import load_graph

    graph = load_graph(ROOT / "resources" / "demo_model.keras")
    top = [node for node in graph.nodes if node.parent is None]
    first = next(node for node in top if node.class_name != "InputLayer")
    suggestion = suggest_preprocessing([n.class_name for n in graph.nodes], graph.name, dict(first.config))
    assert graph.name == "texture_cnn"
    assert suggestion.preset == "none"
    assert suggestion.reason == "The model starts with Rescaling (scale=0.00392157, offset=0)"
    assert suggest_preprocessing(["InputLayer", "Conv2D"], "texture_cnn", None).preset == "unit"


# --------------------------------------------------------------------------- fit_to_input


@pytest.fixture(scope="module")
def photo() -> LoadedImage:
    return _loaded(_bands((300, 200), [RED, GREEN, BLUE]))


@pytest.mark.parametrize(
    ("input_shape", "channels_first", "expected"),
    [
        ((224, 224, 3), False, (224, 224, 3)),
        ((64, 64, 3), False, (64, 64, 3)),
        ((28, 28, 1), False, (28, 28, 1)),
        ((28, 28), False, (28, 28, 1)),
        ((32, 32, 4), False, (32, 32, 4)),
        ((3, 224, 224), True, (224, 224, 3)),
        ((1, 28, 28), True, (28, 28, 1)),
        ((None, None, 3), False, (200, 300, 3)),  # own size, already under max_free_side
        ((None, 150, 3), False, (100, 150, 3)),  # one free side follows the aspect ratio
        ((100, None, 3), False, (100, 150, 3)),
        ((None, None, None), False, (200, 300, 3)),
        ((3, None, None), True, (200, 300, 3)),
    ],
)
def test_fit_shapes(photo, input_shape, channels_first, expected):
    array = fit_to_input(photo, input_shape, channels_first=channels_first)
    assert array.shape == expected
    assert array.dtype == np.float32
    assert array.min() >= 0 and array.max() <= 255
    batch = to_model_batch(array, input_shape, channels_first=channels_first)
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    assert batch.shape[0] == 1 and len(batch.shape) == len(input_shape) + 1
    assert all(b == d for b, d in zip(batch.shape[1:], input_shape, strict=True) if d is not None)


def test_free_sides_are_bounded():
    large = _loaded(Image.new("RGB", (2000, 1000), GREEN))
    assert fit_to_input(large, (None, None, 3)).shape == (512, 1024, 3)
    assert fit_to_input(large, (None, None, 3), max_free_side=500).shape == (250, 500, 3)


def test_fit_channel_conversions(photo):
    gray = fit_to_input(photo, (20, 30, 1))
    np.testing.assert_array_equal(gray[10, 2, 0], 76)  # luminance of pure red: 0.299 * 255
    rgba = fit_to_input(photo, (20, 30, 4))
    assert (rgba[..., 3] == 255).all()
    gray_photo = _loaded(Image.new("L", (30, 20), 90))
    repeated = fit_to_input(gray_photo, (20, 30, 3))
    assert (repeated == 90).all()
    assert fit_to_input(gray_photo, (None, None, None)).shape == (20, 30, 1)


def test_fit_same_size_is_exact(photo):
    np.testing.assert_array_equal(fit_to_input(photo, (200, 300, 3)), photo.pixels.astype(np.float32))


def test_crop_keeps_the_centre():
    wide = _loaded(_bands((300, 100), [RED, GREEN, BLUE]))
    assert (fit_to_input(wide, (50, 50, 3), mode="crop") == GREEN).all()
    stretched = fit_to_input(wide, (50, 50, 3), mode="resize")
    assert tuple(stretched[25, 0]) == RED and tuple(stretched[25, 25]) == GREEN and tuple(stretched[25, 49]) == BLUE
    tall = _loaded(_bands((90, 300), [RED, GREEN, BLUE], vertical=False))
    assert (fit_to_input(tall, (30, 30, 3), mode="crop") == GREEN).all()
    # A wide target on a square picture keeps the middle rows.
    square = _loaded(_bands((120, 120), [RED, GREEN, GREEN, BLUE], vertical=False))
    assert (fit_to_input(square, (20, 40, 3), mode="crop") == GREEN).all()


def test_fit_errors(photo):
    with pytest.raises(ImageError, match="expects 2 channels per pixel"):
        fit_to_input(photo, (32, 32, 2))
    with pytest.raises(ImageError, match=r"shape \(784,\)"):
        fit_to_input(photo, (784,))
    with pytest.raises(ImageError, match="invalid size"):
        fit_to_input(photo, (0, 32, 3))
    with pytest.raises(ValueError, match="unknown fit mode"):
        fit_to_input(photo, (32, 32, 3), mode="pad")


# --------------------------------------------------------------------------- model_input_preview


def test_preview_stretches_each_channel(photo):
    array = fit_to_input(photo, (20, 30, 3))
    unit = model_input_preview(apply_preprocessing(array, Preprocessing("unit")))
    assert unit.dtype == np.uint8 and unit.shape == (20, 30, 3)
    assert tuple(unit[10, 2]) == RED
    torch = model_input_preview(apply_preprocessing(array, Preprocessing("torch")))
    np.testing.assert_allclose(torch, unit, atol=1)
    # Caffe is shown as the model sees it: BGR, so red and blue trade places.
    caffe = model_input_preview(apply_preprocessing(array, Preprocessing("caffe")))
    np.testing.assert_allclose(caffe, unit[..., ::-1], atol=1)
    assert tuple(caffe[10, 2]) == BLUE


def test_preview_shapes_and_constant_channels():
    gray = model_input_preview(np.linspace(-1, 1, 12, dtype=np.float32).reshape(1, 3, 4, 1))
    assert gray.shape == (3, 4, 3)
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[-1, -1].tolist() == [255, 255, 255]
    flat = model_input_preview(np.full((2, 2, 4), 7.0))
    assert flat.shape == (2, 2, 3) and (flat == 128).all()
    with pytest.raises(ValueError):
        model_input_preview(np.zeros(5))


# --------------------------------------------------------------------------- end to end, isolation


def test_end_to_end_with_the_demo_model():
    import keras

    model = keras.saving.load_model(ROOT / "resources" / "demo_model.keras", compile=False)
    input_shape = tuple(model.inputs[0].shape[1:])
    image = load_image(ROOT / "resources" / "images" / "chelsea.jpg")
    array = fit_to_input(image, input_shape, mode="crop")
    prep = suggest_preprocessing([layer.__class__.__name__ for layer in model.layers], model.name, None)
    batch = to_model_batch(apply_preprocessing(array, prep), input_shape)
    prediction = np.asarray(model(batch))
    assert prediction.shape[0] == 1 and np.isfinite(prediction).all()


def test_import_loads_no_qt_or_tensorflow():
    heavy = {"PySide6", "shiboken6", "tensorflow", "keras", "tf_keras", "jax", "torch"}
    code = (
        "import json, sys, explorer.inputs.images\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", ["tf_keras_2.21/transfer.h5", "keras_2.12/nested_savedmodel",
                                  "keras_3.0.5/nested.keras", "keras_3.0.5/nested.h5"])
def test_a_model_that_scales_its_input_itself_gets_raw_pixels(name):
    """preprocess_input inside the model (x / 127.5 - 1, saved as tf.math ops or keras.ops) takes raw pixels."""
    from explorer.inputs.sources import suggested_preprocessing
    from explorer.model.files import load_graph
    from tests.support.generations import GENERATIONS

    suggestion = suggested_preprocessing(load_graph(GENERATIONS / name))
    assert suggestion.preset == "none" and "scales its input itself" in suggestion.reason
