"""The live tier on files Keras 2 wrote (tests/fixtures/generations: Keras 2.12 and tf-keras 2.21, every format):
each is loaded with tf-keras, rebuilt in Keras 3, and what the explorer computes for a layer inside a nested
model, a shared layer's second call and a TensorFlow op layer equals what tf-keras computes in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from explorer.model.files import load_graph
from explorer.runtime.extraction import extract
from explorer.runtime.keras2 import is_keras2
from explorer.runtime.loading import open_model
from tests.support.generations import GENERATIONS, KERAS_FILES, calling, edited_copy

KERAS2_FILES = sorted(name for name in KERAS_FILES if name.startswith(("keras_2", "tf_keras"))
                      and "/nested" in name and not name.endswith("_arch.h5"))
# (layer path, call site): inside a nested Sequential, inside a nested Functional, a shared layer's second call,
# and a TFOpLambda op (x / 127.5 - 1).
TARGETS = [("inner_seq/inner_bn", (0, 0)), ("block/block_relu", (0, 0)), ("shared_dense", (1,)),
           ("tf.math.subtract", (0,))]
TOLERANCE = 1e-5  # of the outputs' magnitude: float32 rounding of pixel-range inputs


def difference(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected))) / max(1.0, float(np.max(np.abs(expected))))

# tf-keras computes the same outputs its own way: a nested layer through the nested model's call in the outer
# graph (its last node: the first is its own construction when it has one), a shared layer at its second node.
REFERENCE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tf_keras

    files, image, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
    for index, path in enumerate(files):
        if path.endswith(".json"):
            model = tf_keras.models.model_from_json(open(path).read())
            model.load_weights(path[:-len(".json")] + ".h5")
        else:
            model = tf_keras.models.load_model(path, compile=False)
        def nested(outer, inner):
            group = model.get_layer(outer)
            before = tf_keras.Model(model.input, group.get_input_at(len(group.inbound_nodes) - 1))
            cut = tf_keras.Model(group.input, group.get_layer(inner).output)
            return cut(before(image))
        subtract = next(l for l in model.layers if l.name.startswith("tf.math.subtract"))
        outputs = [nested("inner_seq", "inner_bn"), nested("block", "block_relu"),
                   tf_keras.Model(model.input, model.get_layer("shared_dense").get_output_at(1))(image),
                   tf_keras.Model(model.input, subtract.output)(image)]
        np.savez(f"{out}/{index}.npz", *[np.asarray(o)[0] for o in outputs])
""")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(image, tmp_path_factory) -> dict[str, list[np.ndarray]]:
    folder = tmp_path_factory.mktemp("tf_keras_reference")
    np.save(folder / "image.npy", image)
    paths = [str(GENERATIONS / name) for name in KERAS2_FILES]
    done = subprocess.run([sys.executable, "-c", REFERENCE, json.dumps(paths), str(folder / "image.npy"),
                           str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = {}
    for index, name in enumerate(KERAS2_FILES):
        with np.load(folder / f"{index}.npz") as arrays:
            result[name] = [arrays[f"arr_{i}"] for i in range(len(TARGETS))]
    return result


def test_the_keras2_files_of_every_format_are_covered():
    assert {name.rsplit("/", 1)[1] for name in KERAS2_FILES} == {"nested.h5", "nested.keras", "nested_savedmodel",
                                                                  "nested_arch.json"}
    assert all(is_keras2(load_graph(GENERATIONS / name)) for name in KERAS2_FILES)


@pytest.mark.parametrize("name", KERAS2_FILES)
def test_nested_shared_and_op_layers_equal_tf_keras(name, image, reference):
    graph = load_graph(GENERATIONS / name)
    live = open_model(GENERATIONS / name, file_graph=graph)
    (spec,) = live.specs
    op = next(node.path for node in graph.nodes if node.path.startswith("tf.math.subtract"))
    for (layer, site), expected in zip(TARGETS, reference[name], strict=True):
        layer = op if layer == "tf.math.subtract" else layer
        (got,) = extract(live, layer, site, {spec.name: image[0]})
        assert got.shape == expected.shape, layer
        assert difference(got, expected) <= TOLERANCE, (layer, difference(got, expected))


def test_the_standard_transfer_learning_file_computes_like_tf_keras(tmp_path):
    """preprocess_input, then a MobileNetV2 nested whole: a layer deep inside the base, against tf-keras."""
    path = GENERATIONS / "tf_keras_2.21" / "transfer.h5"
    image = np.random.default_rng(3).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tf_keras
        model = tf_keras.models.load_model(sys.argv[1], compile=False)
        base = model.get_layer("mobilenetv2_0.35_96")
        before = tf_keras.Model(model.input, base.get_input_at(len(base.inbound_nodes) - 1))
        cut = tf_keras.Model(base.input, base.get_layer("block_6_project_BN").output)
        image = np.load(sys.argv[2])
        np.save(sys.argv[3], np.asarray(cut(before(image)))[0])
        np.save(sys.argv[4], np.asarray(model(image))[0])
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "image.npy"),
                           str(tmp_path / "layer.npy"), str(tmp_path / "out.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    live = open_model(path)
    (layer,) = extract(live, "mobilenetv2_0.35_96/block_6_project_BN", (0, 0), {"image": image[0]})
    (classes,) = extract(live, "classes", (0,), {"image": image[0]})
    assert difference(layer, np.load(tmp_path / "layer.npy")) <= TOLERANCE
    assert difference(classes, np.load(tmp_path / "out.npy")) <= TOLERANCE


def test_a_tensorflow_function_with_no_keras3_operation_computes_but_is_not_rebuilt(tmp_path, image):
    """A TFOpLambda of a function keras.ops lacks: tf-keras computes it live; the Keras 3 rebuild (for exports)
    names it in its refusal."""
    from explorer.runtime.errors import RuntimeFailure

    # tensor math: the safety check lets it through
    target = edited_copy("tf_keras_2.21/nested.h5", tmp_path / "floordiv.h5", calling("math.floordiv"))
    graph = load_graph(target)
    assert not graph.findings
    live = open_model(target, file_graph=graph)
    (got,) = extract(live, "tf.math.truediv", (0,), {live.specs[0].name: image[0]})  # x / 127.5, edited
    np.testing.assert_array_equal(got, np.floor_divide(image[0], np.float32(127.5)))
    with pytest.raises(RuntimeFailure, match=r"calls tf.math.floordiv, which has no Keras 3 equivalent"):
        live.keras3_graph()


def test_the_rebuild_keeps_every_name_weight_and_count(tmp_path):
    path = GENERATIONS / "keras_2.12" / "transfer.h5"
    twin = open_model(path).keras3_graph()
    graph = load_graph(path)
    assert twin.count_params() == graph.totals[0]
    names = {operation.name for operation in twin.operations}  # layers, ops and inputs
    assert {node.path for node in graph.nodes if node.parent is None} == names


@pytest.fixture(scope="module")
def densenet(tmp_path_factory) -> tuple[Path, dict]:
    """tf-keras' DenseNet121 names its layers conv1/conv, conv2_block1_1_conv…: "/" in names, as Keras 2 allowed."""
    folder = tmp_path_factory.mktemp("densenet_keras2")
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        import tf_keras
        model = tf_keras.applications.DenseNet121(weights=None, include_top=False, input_shape=(32, 32, 3))
        model.save(sys.argv[1] + "/densenet.h5")
        image = np.random.default_rng(5).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
        np.save(sys.argv[1] + "/image.npy", image)
        layer = tf_keras.Model(model.input, model.get_layer("conv2_block1_1_conv").output)(image)
        np.save(sys.argv[1] + "/layer.npy", np.asarray(layer)[0])
        names = [layer.name for layer in model.layers]
        print(json.dumps({"count_params": int(model.count_params()), "names": names}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, json.loads(done.stdout.strip().splitlines()[-1])


def test_keras2_names_with_a_slash_are_one_layer_each(densenet):
    folder, facts = densenet
    graph = load_graph(folder / "densenet.h5")
    assert graph.totals[0] == facts["count_params"] and not graph.problems
    assert [node.name for node in graph.nodes] == facts["names"]
    conv = next(node for node in graph.nodes if node.name == "conv1/conv")
    assert conv.path == "conv1_conv" and conv.parent is None and conv.weights


def test_keras2_names_with_a_slash_compute_like_tf_keras(densenet):
    folder, _facts = densenet
    live = open_model(folder / "densenet.h5")
    image = np.load(folder / "image.npy")
    (got,) = extract(live, "conv2_block1_1_conv", (0,), {live.specs[0].name: image[0]})
    assert difference(got, np.load(folder / "layer.npy")) <= TOLERANCE
    assert "conv1_conv" in {operation.name for operation in live.keras3_graph().operations}


def test_a_trusted_keras2_json_with_a_lambda_computes_it(tmp_path):
    """tf-keras' model_from_json refuses Lambda bytecode in its safe mode; the user's trust switches it off."""
    script = textwrap.dedent("""
        import sys
        import tf_keras
        inputs = tf_keras.Input((4,), name="x")
        doubled = tf_keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
        model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="head")(doubled))
        open(sys.argv[1] + "/lambda.json", "w").write(model.to_json())
        model.save_weights(sys.argv[1] + "/lambda.h5")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    graph = load_graph(tmp_path / "lambda.json")
    assert any("Lambda" in str(finding) for finding in graph.findings)
    live = open_model(tmp_path / "lambda.json", trust=True, file_graph=graph)
    x = np.arange(4, dtype=np.float32)
    (got,) = extract(live, "double", (0,), {"x": x})
    assert np.array_equal(got, x * 2)


def test_a_keras3_h5_keras_cannot_reload_computes_like_its_keras_archive():
    """Keras 3.0.5 wrote ``x / 127.5 - 1`` into its .h5 as TrueDivide / Subtract entries Keras cannot load
    back: named as the operations they are, the file computes what the same model's .keras does."""
    folder = GENERATIONS / "keras_3.0.5"
    image = np.random.default_rng(2).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    from_h5, from_archive = open_model(folder / "nested.h5"), open_model(folder / "nested.keras")
    for layer, site in (("true_divide", (0,)), ("inner_seq/inner_bn", (0, 0)), ("add", (0,))):
        (got,) = extract(from_h5, layer, site, {"image": image})
        (expected,) = extract(from_archive, layer, site, {"image": image})
        assert difference(got, expected) <= TOLERANCE, layer


@pytest.mark.parametrize("name", KERAS2_FILES)
def test_copy_as_python_for_a_keras2_file_is_tf_keras_code_that_computes_the_same(name, image, reference,
                                                                                   tmp_path):
    """The snippet runs in a fresh process with tf-keras alone and gives what tf-keras computes."""
    from explorer.model.graph import Target
    from explorer.runtime.snippet import python_snippet

    graph = load_graph(GENERATIONS / name)
    op = next(node.path for node in graph.nodes if node.path.startswith("tf.math.subtract"))
    targets = [Target(op if layer == "tf.math.subtract" else layer, site) for layer, site in TARGETS]
    code = python_snippet(GENERATIONS / name, targets, graph)
    assert code.startswith("import tf_keras as keras")
    run = "import sys\nimport numpy as np\nimages = np.load(sys.argv[1])\n" + code + textwrap.dedent("""
        np.savez(sys.argv[2], *[np.asarray(features[key])[0] for key in OUTPUTS])
    """).replace("OUTPUTS", repr([t.output_name for t in targets]))
    folder = tmp_path
    np.save(folder / "image.npy", image)
    done = subprocess.run([sys.executable, "-c", run, str(folder / "image.npy"), str(folder / "out.npz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(folder / "out.npz") as got:
        for index, expected in enumerate(reference[name]):
            assert difference(got[f"arr_{index}"], expected) <= TOLERANCE, targets[index]


def test_features_over_a_folder_of_a_keras2_file_equal_tf_keras(tmp_path, capsys):
    """``keras-explorer features`` on the tf-keras transfer file: a layer inside the nested base for each image,
    against tf-keras on the very arrays the command fed (prepared by the same code)."""
    from explorer.cli import main
    from explorer.inputs.images import Preprocessing, load_image
    from explorer.inputs.sources import IMAGE, InputSource, prepare_input
    from explorer.model.graph import InputSpec
    from tests.support.processes import image_folder

    source = GENERATIONS / "tf_keras_2.21" / "transfer.h5"
    images = image_folder(tmp_path)
    out = tmp_path / "features.npz"
    assert main(["features", str(source), "--layer", "mobilenetv2_0.35_96/block_6_project_BN", "--images",
                 str(images), "--preprocess", "none", "-o", str(out)]) == 0
    with np.load(out) as saved:
        features, files = saved["features"], [Path(f).name for f in saved["files"]]
    assert files == ["brick.png", "grass.png"]  # the truncated one is listed and skipped
    spec = InputSpec("image", (96, 96, 3), "float32")
    batch = np.stack([prepare_input(spec, InputSource(IMAGE), load_image(images / name), Preprocessing("none"),
                                    for_display=False).array for name in files])
    np.save(tmp_path / "batch.npy", batch)
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tf_keras
        model = tf_keras.models.load_model(sys.argv[1], compile=False)
        base = model.get_layer("mobilenetv2_0.35_96")
        before = tf_keras.Model(model.input, base.get_input_at(len(base.inbound_nodes) - 1))
        cut = tf_keras.Model(base.input, base.get_layer("block_6_project_BN").output)
        np.save(sys.argv[3], np.asarray(cut(before(np.load(sys.argv[2])))))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / "batch.npy"),
                           str(tmp_path / "expected.npy")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert difference(features, np.load(tmp_path / "expected.npy")) <= TOLERANCE


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_an_extractor_exported_from_a_keras2_file_is_verified(suffix, image, reference, tmp_path, capsys):
    """By default a Keras 3 file; ``.h5`` keeps a tf-keras legacy file, for people who stay on Keras 2. Either
    way it is reloaded in a fresh process and computes what tf-keras computes."""
    from explorer.cli import main

    name = "tf_keras_2.21/nested.h5"
    out = tmp_path / f"extractor{suffix}"
    np.save(tmp_path / "image.npy", image)
    assert main(["export", str(GENERATIONS / name), "--layer", "inner_seq/inner_bn", "--layer", "shared_dense",
                 "--call", "0", "--call", "1", "-o", str(out)]) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "verified" in said and (suffix == ".h5" or "equal to tf-keras on the original file" in said), said
    script = textwrap.dedent("""
        import sys
        import numpy as np
        if sys.argv[1].endswith(".h5"):
            import tf_keras as keras
            model = keras.models.load_model(sys.argv[1], compile=False)
        else:
            import keras
            model = keras.saving.load_model(sys.argv[1], compile=False, safe_mode=True)
        result = model(np.load(sys.argv[2]), training=False)
        np.savez(sys.argv[3], *[np.asarray(result[key])[0] for key in sorted(result)])
    """)
    done = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "image.npy"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as got:  # sorted: inner_seq__inner_bn, shared_dense__call1
        assert difference(got["arr_0"], reference[name][0]) <= TOLERANCE
        assert difference(got["arr_1"], reference[name][2]) <= TOLERANCE


def test_an_h5_export_is_for_files_keras2_wrote(tmp_path, capsys):
    from explorer.cli import main

    out = tmp_path / "x.h5"
    assert main(["export", str(GENERATIONS / "keras_3.0.5" / "nested.keras"), "--layer", "pre", "-o", str(out)]) == 1
    assert "for files Keras 2 wrote" in capsys.readouterr().err and not out.exists()


def test_a_layer_computes_in_inference_unless_its_call_says_otherwise(tmp_path):
    """Activations run only the layers a target depends on, called as tf-keras' own Functional call does in
    inference: BatchNormalization uses its moving statistics, and a Dropout called with ``training=True`` in
    the model (Monte Carlo dropout) keeps dropping."""
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tf_keras
        inputs = tf_keras.Input((64,), name="x")
        norm = tf_keras.layers.BatchNormalization(name="norm")
        normed = norm(inputs)
        kept = tf_keras.layers.Dropout(0.5, name="mc_dropout")(normed, training=True)
        model = tf_keras.Model(inputs, tf_keras.layers.Add(name="out")([normed, kept]))
        norm.set_weights([np.full(64, 2.0), np.full(64, 0.5), np.full(64, 3.0), np.full(64, 4.0)])
        model.save(sys.argv[1] + "/mc.h5")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    live = open_model(tmp_path / "mc.h5")
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    (normed,) = extract(live, "norm", (0,), {"x": x})
    np.testing.assert_allclose(normed, 2.0 * (x - 3.0) / np.sqrt(4.0 + 1e-3) + 0.5, rtol=1e-5)  # moving statistics
    (dropped,) = extract(live, "mc_dropout", (0,), {"x": x})
    zeros = int(np.sum(dropped == 0))
    assert 8 < zeros < 56  # about half dropped
    np.testing.assert_allclose(dropped[dropped != 0], 2 * normed[dropped != 0], rtol=1e-5)  # the rest scaled by 2
