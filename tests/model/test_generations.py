"""Files written by older Keras generations (tests/fixtures/make_generations.py: Keras 2.12, tf-keras 2.21, Keras
3.0.5 and 3.3.3, plain TensorFlow 2.21), read without TensorFlow and compared with what the writing Keras
reported (the manifest beside them)."""

from __future__ import annotations

import shutil

import pytest

from explorer.model.files import load_graph
from tests.support.generations import GENERATIONS, KERAS_FILES, MANIFEST, calling, edited_copy

KERAS3_H5_OPERATIONS = {"TrueDivide", "Subtract"}
KERAS3_H5_OPERATION_LAYERS = {"true_divide"}  # Keras cannot load back TrueDivide (Subtract is also a layer)


@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_the_structure_is_what_keras_reported(name):
    facts = MANIFEST[name]
    graph = load_graph(GENERATIONS / name)
    classes = {node.path: node.class_name for node in graph.nodes}
    for path, class_name in facts["layers"].items():
        assert classes.get(path) == class_name, f"{path}: {classes.get(path)} != {class_name}"
    extra = [graph.node(path) for path in classes if path not in facts["layers"]]
    # Keras lists a Sequential model's layers without the InputLayer it built, and Keras 3 lists no keras.ops
    # operation (``x / 127.5 - 1`` is TrueDivide and Subtract; its legacy .h5 drops their module); the file holds
    # both.
    assert all(node.class_name == "InputLayer" or str(node.module).startswith("keras.src.ops")
               or node.class_name in KERAS3_H5_OPERATIONS for node in extra), \
        [(node.path, node.class_name, node.module) for node in extra]
    (output,) = graph.outputs
    assert list(output.shape) == facts["output_shape"]
    assert not graph.findings, graph.findings
    assert all(p.layer in KERAS3_H5_OPERATION_LAYERS for p in graph.problems), graph.problems


@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_parameter_counts_are_exact(name):
    """Legacy .h5 groups carry layer names; tf.keras .keras groups do not and are found as Keras loads them."""
    facts = MANIFEST[name]
    total, trainable, _ = load_graph(GENERATIONS / name).totals
    assert (total, trainable) == (facts["count_params"], facts["trainable_params"])


def test_a_nested_model_is_called_at_its_first_saved_node():
    """Keras 2 does not save a nested model's own first node, so the outer model cites its calls from 1."""
    graph = load_graph(GENERATIONS / "tf_keras_2.21" / "transfer.h5")
    base = next(node for node in graph.nodes if node.class_name == "Functional")
    assert base.calls == 1
    assert graph.inbound("gap") == [base.path]
    assert graph.node("gap").input_shapes == (((None, 3, 3, 1280),),)


def test_preprocess_input_ops_are_drawn_with_their_shapes():
    graph = load_graph(GENERATIONS / "tf_keras_2.21" / "transfer.h5")
    ops = [node for node in graph.nodes if node.class_name == "TFOpLambda"]
    assert [node.config["function"] for node in ops] == ["math.truediv", "math.subtract"]
    assert all(node.output_shapes == (((None, 96, 96, 3),),) for node in ops)
    assert graph.inbound(ops[1].path) == [ops[0].path]


def test_a_tensorflow_op_that_is_not_tensor_math_is_a_finding(tmp_path):
    """A TFOpLambda may name any TensorFlow function; one that writes files is code the file makes run."""
    hostile = edited_copy("tf_keras_2.21/nested.h5", tmp_path / "writes_files.h5", calling("io.write_file"))
    findings = load_graph(hostile).findings
    assert len(findings) == 1 and "io.write_file" in str(findings[0]), findings


def test_an_architecture_json_alone_opens_without_weights(tmp_path):
    alone = tmp_path / "nested_arch.json"
    shutil.copy(GENERATIONS / "tf_keras_2.21" / "nested_arch.json", alone)
    graph = load_graph(alone)
    assert {node.path for node in graph.nodes} >= set(MANIFEST["tf_keras_2.21/nested_arch.json"]["layers"])
    assert graph.totals == (0, 0, 0)  # the weights are what it lacks, not the structure
    assert graph.keras_version == "2.21.0"


def test_a_json_file_that_is_not_a_model_says_so(tmp_path):
    from explorer.model.files import ModelFileError

    other = tmp_path / "settings.json"
    other.write_text('{"theme": "dark"}')
    with pytest.raises(ModelFileError, match="not a Keras model architecture"):
        load_graph(other)


@pytest.mark.parametrize("name", ["tf_keras_2.21/nested_arch.h5", "keras_3.0.5/nested_arch.weights.h5"])
def test_a_weights_only_file_opens_as_its_stored_layers(name):
    """save_weights output (Keras 2 layout, unnamed Keras 3 groups): layers and variables, exact totals, and no
    connection invented."""
    facts = MANIFEST[name.replace(".weights.h5", ".json").replace("nested_arch.h5", "nested_arch.json")]
    graph = load_graph(GENERATIONS / name)
    assert graph.kind == "weights" and not graph.edges and not graph.findings
    total, trainable, _ = graph.totals
    assert (total, trainable) == (facts["count_params"], facts["trainable_params"])
    assert all(node.weights or node.children for node in graph.nodes)


@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_the_file_says_what_wrote_it(name):
    """Provenance as the user knows it: the Keras release (its distribution for Keras 2) and the kind of file."""
    graph = load_graph(GENERATIONS / name)
    generation, file_name = name.split("/")
    expected_format = ("SavedModel with Keras 2 metadata" if file_name.endswith("_savedmodel") else
                       ".keras archive" if file_name.endswith(".keras") else
                       "architecture JSON with the weights of " if file_name.endswith(".json") else "legacy HDF5")
    assert graph.file_format.startswith(expected_format)
    version = MANIFEST[name]["keras_version"]
    if graph.keras_version is not None or generation.startswith(("tf_keras", "keras_2")):
        assert graph.keras_version == version
    assert graph.writer == {"tf_keras_2.21": "tf-keras", "keras_2.12": "tf.keras"}.get(generation)


@pytest.mark.parametrize("name", sorted(n for n in KERAS_FILES if n.endswith("_savedmodel")))
def test_a_savedmodel_opens_from_its_folder_or_its_saved_model_pb(name):
    folder = GENERATIONS / name
    from_pb = load_graph(folder / "saved_model.pb")
    assert from_pb.totals == load_graph(folder).totals
    assert from_pb.source == str(folder)


def test_a_savedmodel_without_keras_metadata_says_so():
    from explorer.model.files import ModelFileError

    (name,) = [n for n, facts in MANIFEST.items() if not facts.get("keras_metadata", True)]
    with pytest.raises(ModelFileError, match="SavedModel without Keras metadata"):
        load_graph(GENERATIONS / name)
    with pytest.raises(ModelFileError, match="SavedModel without Keras metadata"):
        load_graph(GENERATIONS / name / "saved_model.pb")


def test_a_folder_that_is_no_savedmodel_says_so(tmp_path):
    from explorer.model.files import ModelFileError

    with pytest.raises(ModelFileError, match="not a SavedModel"):
        load_graph(tmp_path)


def test_a_keras3_h5_with_keras_ops_is_drawn_with_what_keras_cannot_reload():
    """Keras 3 writes ``x / 127.5`` into a legacy .h5 as a TrueDivide entry without its module, which Keras
    itself then cannot load: drawn, with the problem on the node (not blocking: the rest of the file is sound)."""
    graph = load_graph(GENERATIONS / "keras_3.0.5" / "nested.h5")
    (problem,) = graph.problems
    assert problem.layer == "true_divide" and "cannot load it back" in problem.what and not problem.blocking


@pytest.mark.parametrize("generation", sorted({n.split("/")[0] for n in KERAS_FILES if n.endswith("/nested.h5")}))
def test_each_layer_has_its_own_weights_in_every_format(generation):
    """Keras 3 stores a nested model's variables flat in its .h5 group, Keras 2 under each layer's name, the
    .keras archive and a SavedModel by layer: every format gives each layer the same variables."""
    def per_layer(name):
        graph = load_graph(GENERATIONS / generation / name)
        return {node.path: [(w.name, w.shape, w.trainable) for w in node.weights] for node in graph.nodes
                if node.weights}

    formats = [name for name in ("nested.h5", "nested.keras", "nested_savedmodel")
               if (GENERATIONS / generation / name).exists()]
    reference = per_layer("nested.h5")
    assert set(reference) == {"inner_seq/inner_conv", "inner_seq/inner_bn", "block/block_conv", "pre",
                              "shared_dense"}
    for name in formats[1:]:
        assert per_layer(name) == reference, name


def test_a_nested_model_naming_an_output_it_lacks_is_drawn_with_the_problem(tmp_path):
    def ghost_output(config: dict) -> None:
        block = next(layer for layer in config["config"]["layers"] if layer["name"] == "block")
        block["config"]["output_layers"] = [["ghost", 0, 0]]

    broken = edited_copy("tf_keras_2.21/nested.h5", tmp_path / "ghost_output.h5", ghost_output)
    graph = load_graph(broken)
    (problem,) = graph.problems
    assert str(problem) == "layer 'block': its output 'block/ghost' is a layer that does not exist"
    assert graph.node("block").output_layers == () and problem.blocking
    assert {node.path for node in graph.nodes} >= set(MANIFEST["tf_keras_2.21/nested.h5"]["layers"])
