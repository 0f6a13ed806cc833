"""Attribution against the recipes people use: Grad-CAM as keras-io computes it (``GradientTape`` on
``Model(input, [conv.output, model.output])`` with the softmax removed) on the demo, on a keras.applications
model, and on a layer inside a nested base model (where the recipe has to be applied to the cut model by
hand); Integrated Gradients' completeness; saliency as a plain gradient. The models are real Keras models,
saved and loaded as the app loads them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.inputs.images import Preprocessing, load_image
from explorer.inputs.sources import IMAGE, InputSource, baseline_input, prepare_input
from explorer.model.graph import InputSpec
from explorer.resources import demo_model, resources_dir
from explorer.runtime.attribution import Scorer, Settings, explain, last_spatial_layer
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.loading import open_model

DEMO = demo_model().resolve()
IMAGES = resources_dir() / "images"
SPEC = InputSpec("image", (64, 64, 3), "float32")
TOLERANCE = 1e-5
BASE = "mobilenetv2_0.35_96"


def _recipe(grad_model, x: np.ndarray, class_index: int, head=None) -> np.ndarray:
    """keras-io's make_gradcam_heatmap; ``head`` maps the second output to logits when it is not them."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        conv, preds = grad_model(x[None])
        preds = head(preds) if head is not None else preds
        class_channel = preds[:, class_index]
    grads = tape.gradient(class_channel, conv)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.squeeze(conv[0] @ pooled_grads[..., tf.newaxis])
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return np.asarray(heatmap)


def _without_softmax(path: Path):
    """A second copy of the model, its last layer's softmax removed as the recipe does."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    model.layers[-1].activation = None
    return model


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """The demo's input for a bundled picture (the demo rescales inside: no preprocessing)."""
    return prepare_input(SPEC, InputSource(IMAGE), load_image(IMAGES / "brick.png"), Preprocessing("none")).array


@pytest.fixture(scope="module")
def demo(keras_module):
    return open_model(DEMO).graph


@pytest.mark.parametrize("layer", ["merge_branches", "branch_maxpool"])
def test_gradcam_equals_the_keras_io_recipe_on_the_demo(demo, image, layer):
    import keras

    reference = _without_softmax(DEMO)
    grad_model = keras.Model(reference.inputs, [reference.get_layer(layer).output, reference.output])
    result = explain(Scorer(demo, layer), image, "gradcam")
    expected = _recipe(grad_model, image, result.class_index)
    assert result.map.shape == expected.shape == (8, 8) and result.layer == layer
    assert float(np.max(np.abs(result.map - expected))) <= TOLERANCE


def test_the_default_layer_is_the_last_spatial_one(demo):
    assert last_spatial_layer(demo) == ("merge_branches", (0,))


@pytest.fixture(scope="module")
def transfer(keras_module, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """keras.applications.MobileNetV2 (random weights) nested whole in a classifier, as transfer learning does."""
    import keras

    folder = tmp_path_factory.mktemp("attribution")
    keras.utils.set_random_seed(1)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.35)
    inputs = keras.Input((96, 96, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base(x))
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax", name="classes")(x))
    path = folder / "transfer.keras"
    model.save(path)
    pixels = np.random.default_rng(2).uniform(0, 255, (96, 96, 3)).astype(np.float32)
    return path, pixels


def test_gradcam_inside_a_nested_base_equals_the_recipe_on_the_cut_model(transfer):
    import keras

    path, pixels = transfer
    live = open_model(path)
    layer = f"{BASE}/block_13_expand_relu"
    result = explain(Scorer(live.graph, layer), pixels, "gradcam", class_index=3)

    reference = _without_softmax(path)
    base = reference.get_layer(BASE)
    inner = keras.Model(base.inputs, [base.get_layer("block_13_expand_relu").output, base.output])
    scale, pool, dense = (reference.get_layer(name) for name in ("scale", "pool", "classes"))
    grad_model = keras.Model(reference.inputs, inner(scale(reference.inputs[0])))
    expected = _recipe(grad_model, pixels, 3, head=lambda features: dense(pool(features)))
    assert result.map.shape == expected.shape == (6, 6)
    assert float(np.max(np.abs(result.map - expected))) <= TOLERANCE
    assert not np.allclose(result.map, explain(Scorer(live.graph, layer), pixels, "gradcam", class_index=0).map)


def test_gradcam_on_a_keras_applications_model_equals_the_recipe(keras_module, tmp_path):
    import keras

    keras.utils.set_random_seed(4)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=7)
    path = tmp_path / "mobilenet.keras"
    model.save(path)
    x = keras.applications.mobilenet_v2.preprocess_input(
        np.random.default_rng(5).uniform(0, 255, (96, 96, 3)).astype(np.float32))
    live = open_model(path)
    result = explain(Scorer(live.graph, *last_spatial_layer(live.graph)), x, "gradcam")
    reference = _without_softmax(path)
    grad_model = keras.Model(reference.inputs, [reference.get_layer("out_relu").output, reference.output])
    expected = _recipe(grad_model, x, result.class_index)
    assert last_spatial_layer(live.graph) == ("out_relu", (0,))
    assert float(np.max(np.abs(result.map - expected))) <= TOLERANCE


@pytest.mark.parametrize("baseline", ["black", "blurred"])
def test_integrated_gradients_add_up_to_the_score_difference(demo, image, baseline):
    prepared = prepare_input(SPEC, InputSource(IMAGE), load_image(IMAGES / "grass.png"), Preprocessing("none"))
    start = baseline_input(SPEC, prepared, Preprocessing("none"), baseline)
    assert start.shape == prepared.array.shape and not np.array_equal(start, prepared.array)
    result = explain(Scorer(demo), prepared.array, "ig", baseline=start, settings=Settings(steps=64))
    difference = result.score - result.baseline_score
    assert abs(float(result.map.sum()) - difference) <= 0.01 * abs(difference), (result.map.sum(), difference)


def test_saliency_is_the_largest_gradient_over_channels(demo, image):
    import tensorflow as tf

    reference = _without_softmax(DEMO)
    x = tf.constant(image[None])
    result = explain(Scorer(demo), image, "saliency", class_index=2)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = reference(x, training=False)[:, 2]
    expected = np.max(np.abs(np.asarray(tape.gradient(score, x))[0]), axis=-1)
    np.testing.assert_allclose(result.map, expected, rtol=1e-4, atol=1e-7)
    smooth = explain(Scorer(demo), image, "smoothgrad", class_index=2, settings=Settings(samples=8))
    assert smooth.map.shape == expected.shape and not np.allclose(smooth.map, expected)
    again = explain(Scorer(demo), image, "smoothgrad", class_index=2, settings=Settings(samples=8))
    np.testing.assert_array_equal(smooth.map, again.map)  # seeded: the same picture each time


def test_gradcam_plus_plus_is_a_normalised_map_that_agrees_with_gradcam(demo, image):
    plain = explain(Scorer(demo, "merge_branches"), image, "gradcam").map
    plus = explain(Scorer(demo, "merge_branches"), image, "gradcam++").map
    assert plus.shape == plain.shape and float(plus.min()) >= 0 and float(plus.max()) == pytest.approx(1.0)
    assert np.corrcoef(plain.ravel(), plus.ravel())[0, 1] > 0.5


def test_a_layer_without_a_spatial_output_is_refused_in_one_line(demo):
    with pytest.raises(RuntimeFailure, match="spatial output"):
        Scorer(demo, "global_pool")


def test_cli_explain_writes_the_map_and_its_picture(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    image = str(IMAGES / "brick.png")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "explorer", "explain", str(DEMO), "--image", image, *args],
                              capture_output=True, text=True, env=env, timeout=240)

    done = cli("--class", "brick", "--npy", str(tmp_path / "map.npy"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gradcam on merge_branches: class brick" in done.stderr
    assert np.load(tmp_path / "map.npy").shape == (8, 8)
    drawn = cli("--method", "ig", "--steps", "32", "-o", str(tmp_path / "ig.png"))
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    from PIL import Image

    assert Image.open(tmp_path / "ig.png").size == (256, 256)
    wrong = cli("--method", "saliency", "--layer", "stem", "--npy", str(tmp_path / "x.npy"))
    assert wrong.returncode == 1 and "--layer is for gradcam" in wrong.stderr
    unknown = cli("--class", "marble", "--npy", str(tmp_path / "x.npy"))
    assert unknown.returncode == 1 and "no class named 'marble'" in unknown.stderr


def test_cli_explain_takes_an_array_by_input_name(image, tmp_path):
    np.save(tmp_path / "x.npy", image)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    base = [sys.executable, "-m", "explorer", "explain", str(DEMO), "--method", "saliency", "--class", "1"]
    done = subprocess.run([*base, "--input", f"image={tmp_path / 'x.npy'}", "--npy", str(tmp_path / "map.npy")],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "map.npy"), explain(Scorer(open_model(DEMO).graph), image,
                                                                      "saliency", 1).map, rtol=1e-5, atol=1e-8)
    wrong = subprocess.run([*base, "--input", f"pixels={tmp_path / 'x.npy'}", "--npy", str(tmp_path / "m.npy")],
                           capture_output=True, text=True, env=env, timeout=240)
    assert wrong.returncode == 1 and "the model's input is 'image', not 'pixels'" in wrong.stderr
