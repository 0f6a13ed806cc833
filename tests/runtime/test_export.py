"""Feature-extractor export end to end: export -> verification in a fresh process -> reload in the test -> compare.

Every model is built here, its BatchNormalization statistics randomised (inference mode matters), saved to a
``.keras`` file and loaded back with ``load_model`` (what the CLI and the live tier export from). The
reference side runs the *original* in-memory model with the eager interpreter of ``tests.support.interpreter``
(itself checked against Keras in test_runtime.py), which records every layer's outputs under ``(path, call_site)``.

Each export spawns a verification process that imports TensorFlow (seconds), so every model is exported once
per module, with all its interesting targets at once, and the tests share the result.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import datetime
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from explorer.cli.common import resolve_targets
from explorer.inputs.images import Preprocessing, image_files, load_image
from explorer.inputs.sources import IMAGE, InputSource, prepare_input
from explorer.live.protocol import ExportReport
from explorer.model.files import load_graph
from explorer.model.graph import Target
from explorer.resources import resources_dir
from explorer.runtime import export as export_module
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.export import (
    KERAS,
    SAVEDMODEL,
    TOLERANCE,
    build_multi_extractor,
    export_extractor,
)
from explorer.runtime.extraction import build_extractor, run_extractor
from explorer.runtime.features import extract_features
from explorer.runtime.keras_graph import input_specs
from explorer.runtime.loading import load_model
from explorer.runtime.snippet import python_snippet
from tests.support.exports import read_export_metadata
from tests.support.interpreter import Site, run_model
from tests.support.models import (
    build_functional_cnn,
    build_mobilenet_v2_small,
    build_multi_output_layers,
    build_nested,
    build_nested_shared,
    build_sequential_dense,
    build_shared_layers,
    randomise_statistics,
)

ATOL = 1e-5
BATCH = 3  # examples in the batch the tests run the reloaded files on (the export verifies on one)
IMAGES = resources_dir() / "images"

BUILDERS = {
    "sequential": build_sequential_dense,
    "functional": build_functional_cnn,
    "nested": build_nested,
    "shared": build_shared_layers,
    "multi_output": build_multi_output_layers,
    "mobilenet": build_mobilenet_v2_small,
}

# What each export holds: (layer path, index into graph.call_sites(path)), with the call site that index means.
NESTED_TARGETS = [
    ("block/middle/mid_dense", 0, (0, 0, 0)),  # a layer two models deep, first call of 'middle'
    ("block/middle/mid_dense", 1, (0, 1, 0)),  # ... and second call of 'middle' (called twice inside 'block')
    ("block/middle/innermost/seq_bn", 1, (0, 1, 0, 0)),  # three models deep (a Sequential in 'middle')
    ("block/middle", 1, (0, 1)),  # a nested model as the target
    ("block/cat", 0, (0, 0)),
    ("pre", 0, (0,)),
]
EXPORTS: dict[str, tuple[str, list[tuple[str, int, Site]], str]] = {
    "sequential": ("sequential", [("norm", 0, (0,))], KERAS),
    # A Functional model whose LSTM (sequence, h, c) and attention (values, scores) have several outputs.
    "functional_multi_output": ("multi_output", [("lstm", 0, (0,)), ("attn", 0, (0,)), ("flat_scores", 0, (0,)),
                                                 ("states", 0, (0,))], KERAS),
    "nested": ("nested", NESTED_TARGETS, KERAS),
    "shared": ("shared", [("shared_dense", 0, (0,)), ("shared_dense", 1, (1,)), ("shared_dense", 2, (2,)),
                          ("twice", 0, (0,)), ("twice", 1, (1,)), ("merge", 0, (0,))], KERAS),
    "mobilenet": ("mobilenet", [("block_3_expand_relu", 0, (0,)), ("block_6_project_BN", 0, (0,))], KERAS),
    "functional_savedmodel": ("functional", [("conv1", 0, (0,)), ("add", 0, (0,)), ("flat", 0, (0,))], SAVEDMODEL),
    "nested_savedmodel": ("nested", [("block/middle/mid_dense", 1, (0, 1, 0)), ("block/middle", 0, (0, 0)),
                                     ("pre", 0, (0,))], SAVEDMODEL),
}


# --------------------------------------------------------------------------- models and exports


@dataclass
class Case:
    name: str
    path: Path
    original: Any  # as built: the reference side
    loaded: Any  # loaded back with load_model: what gets exported
    inputs: dict[str, np.ndarray]  # the verification example, per model input name, without batch axis
    batch: list[np.ndarray]  # BATCH examples per input, in model.inputs order (the first is ``inputs``)
    record: dict[tuple[str, Site], list[np.ndarray]] = field(default_factory=dict)

    @property
    def graph(self) -> Any:
        return load_graph(self.path)

    def feed(self) -> Any:
        return self.batch if len(self.batch) > 1 else self.batch[0]

    def reference(self, path: str, site: Site) -> np.ndarray:
        """The layer's first output at ``site`` for the whole batch, computed from the original model."""
        return self.record[(path, site)][0]


@dataclass
class Exported:
    case: Case
    targets: list[Target]
    report: ExportReport
    out: Path


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cases: dict[str, Case] = {}
        self.exports: dict[str, Exported] = {}

    def case(self, name: str) -> Case:
        if name not in self.cases:
            rng = np.random.default_rng(sum(map(ord, name)))
            model = BUILDERS[name]()
            randomise_statistics(model, rng)
            path = self.folder / f"{name}.keras"
            model.save(path)
            names = [t._keras_history.operation.name for t in model.inputs]
            batch = [rng.normal(0.0, 1.0, (BATCH, *t.shape[1:])).astype("float32") for t in model.inputs]
            record: dict[tuple[str, Site], list[np.ndarray]] = {}
            run_model(model, list(batch), "", (), record)
            inputs = {n: b[0] for n, b in zip(names, batch, strict=True)}
            self.cases[name] = Case(name, path, model, load_model(path), inputs, batch, record)
        return self.cases[name]

    def export(self, key: str) -> Exported:
        if key not in self.exports:
            name, wanted, fmt = EXPORTS[key]
            case = self.case(name)
            layers = [layer for layer, _, _ in wanted]
            targets = resolve_targets(case.graph, layers, [index for _, index, _ in wanted])
            assert [t.call_site for t in targets] == [site for _, _, site in wanted], "resolve_targets"
            out = self.folder / (f"{key}_features.keras" if fmt == KERAS else f"{key}_features_savedmodel")
            report = export_extractor(case.loaded, case.path, targets, out, fmt, case.inputs)
            self.exports[key] = Exported(case, targets, report, out)
        return self.exports[key]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import keras

    keras.utils.set_random_seed(3)
    return Store(tmp_path_factory.mktemp("export_models"))


def _as_list(result: Any, names: list[str]) -> list[np.ndarray]:
    """A model's outputs in ``names`` order: a dict is looked up by name, a single tensor is the only one."""
    if isinstance(result, dict):
        assert sorted(result) == sorted(names), f"output names {sorted(result)}, expected {sorted(names)}"
        return [np.asarray(result[name]) for name in names]
    assert len(names) == 1, f"one output tensor for {len(names)} targets"
    return [np.asarray(result)]


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    worst = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
    assert np.allclose(actual, expected, atol=ATOL), f"{what}: max abs difference {worst:.3g}"


# --------------------------------------------------------------------------- export -> reload -> compare


KERAS_EXPORTS = [key for key, (_, _, fmt) in EXPORTS.items() if fmt == KERAS]


@pytest.mark.parametrize("key", KERAS_EXPORTS)
def test_keras_export_is_verified_and_reloads_to_the_original_values(store: Store, key: str) -> None:
    import keras

    exported = store.export(key)
    report, case, targets = exported.report, exported.case, exported.targets
    names = [t.output_name for t in targets]
    assert report.verified, report.message
    assert report.max_abs_diff <= TOLERANCE, report.message
    assert report.format == KERAS and Path(report.path) == exported.out and exported.out.is_file()
    assert list(report.outputs) == names
    assert len(set(names)) == len(names), f"output names collide: {names}"

    reloaded = keras.saving.load_model(exported.out, compile=False)
    result = reloaded(case.feed(), training=False)
    if len(targets) > 1:
        assert isinstance(result, dict), "several targets export a dict named after the layers"
    for target, value in zip(targets, _as_list(result, names), strict=True):
        _assert_close(value, case.reference(target.layer, target.call_site),
                      f"{key}: {target.layer} {target.call_site} (reloaded export vs original model)")


def test_output_names_follow_the_layers_and_call_sites(store: Store) -> None:
    assert store.export("shared").report.outputs == (
        "shared_dense", "shared_dense__call1", "shared_dense__call2", "twice", "twice__call1", "merge")
    assert store.export("nested").report.outputs == (
        "block__middle__mid_dense", "block__middle__mid_dense__call0_1_0",
        "block__middle__innermost__seq_bn__call0_1_0_0", "block__middle__call0_1", "block__cat", "pre")


def test_bad_targets_and_arguments_are_refused_before_anything_is_written(store: Store, tmp_path: Path) -> None:
    case = store.case("shared")
    graph = case.graph
    model = load_model(case.path)  # a private copy: building extractors adds nodes to its layers
    targets = resolve_targets(graph, ["merge"], None)
    for out, fmt, message in [(tmp_path / "x.h5", KERAS, r"must end in \.keras"),
                              (tmp_path / "x.onnx", "onnx", "unknown export format")]:
        with pytest.raises(RuntimeFailure, match=message):
            export_extractor(model, case.path, targets, out, fmt, case.inputs)
        assert not out.exists()
    with pytest.raises(RuntimeFailure, match="at least one layer"):
        export_extractor(model, case.path, [], tmp_path / "y.keras", KERAS, case.inputs)


def test_multi_extractor_covers_every_call_site_of_a_nested_shared_model(store: Store, tmp_path: Path) -> None:
    """What an export saves, without saving it: every (path, call site) of a model whose nested model is called
    twice, holds another nested model called twice, which applies a shared layer twice (eight calls of 'proj')."""
    model = build_nested_shared()
    randomise_statistics(model, np.random.default_rng(5))
    path = tmp_path / "nested_shared.keras"
    model.save(path)
    graph = load_graph(path)
    targets = [Target(node.path, site) for node in graph.nodes for site in graph.call_sites(node.path)]
    assert len(graph.call_sites("pair/inner/proj")) == 8
    rng = np.random.default_rng(6)
    feed = [rng.normal(0.0, 1.0, (2, *t.shape[1:])).astype("float32") for t in model.inputs]
    record: dict[tuple[str, Site], list[np.ndarray]] = {}
    run_model(model, list(feed), "", (), record)
    extractor = build_multi_extractor(load_model(path), targets)
    result = extractor(feed, training=False)
    assert isinstance(result, dict) and len(result) == len(targets)
    for target in targets:
        _assert_close(np.asarray(result[target.output_name]), record[(target.layer, target.call_site)][0],
                      f"{target.layer} {target.call_site}")


def test_both_call_sites_of_a_nested_model_differ(store: Store) -> None:
    """The two calls of 'middle' see different inputs: an export mixing them up would still be 'verified'
    against itself, but not against the reference above; make sure the test data tells them apart."""
    case = store.case("nested")
    first = case.reference("block/middle/mid_dense", (0, 0, 0))
    second = case.reference("block/middle/mid_dense", (0, 1, 0))
    assert not np.allclose(first, second, atol=1e-3)
    shared = store.case("shared")
    assert not np.allclose(shared.reference("shared_dense", (0,)), shared.reference("shared_dense", (1,)), atol=1e-3)


def test_multi_output_layer_exports_its_first_output(store: Store) -> None:
    import keras

    exported = store.export("functional_multi_output")
    case = exported.case
    assert [a.shape[1:] for a in case.record[("lstm", (0,))]] == [(9, 6), (6,), (6,)]  # sequence, h, c
    reloaded = keras.saving.load_model(exported.out, compile=False)
    result = reloaded(case.feed(), training=False)
    assert tuple(result["lstm"].shape) == (BATCH, 9, 6)
    assert tuple(result["attn"].shape) == (BATCH, 9, 6)  # the attended values, not the (2, 9, 9) scores


@pytest.mark.parametrize("key", ["functional_savedmodel", "nested_savedmodel"])
def test_savedmodel_export_is_verified_and_serves_the_original_values(store: Store, key: str) -> None:
    """``tf.saved_model.load(path).serve`` takes what the model takes: one array, or a list for several inputs."""
    import tensorflow as tf

    exported = store.export(key)
    report, case, targets = exported.report, exported.case, exported.targets
    assert report.verified, report.message
    assert report.max_abs_diff <= TOLERANCE, report.message
    assert report.format == SAVEDMODEL and exported.out.is_dir()
    assert (exported.out / "saved_model.pb").is_file()
    loaded = tf.saved_model.load(str(exported.out))
    batch = [tf.constant(b) for b in case.batch]
    result = loaded.serve(batch if len(batch) > 1 else batch[0])
    names = [t.output_name for t in targets]
    for target, value in zip(targets, _as_list(result, names), strict=True):
        _assert_close(value, case.reference(target.layer, target.call_site),
                      f"SavedModel: {target.layer} {target.call_site} (served vs original model)")


# --------------------------------------------------------------------------- provenance


def _check_provenance(info: dict[str, Any] | None, exported: Exported) -> None:
    assert isinstance(info, dict), info
    assert info["source"] == str(exported.case.path.resolve())
    assert info["layers"] == [{"layer": t.layer, "call_site": list(t.call_site), "output": t.output_name}
                              for t in exported.targets]
    date = datetime.datetime.fromisoformat(info["date"])
    assert date.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.UTC) - date).total_seconds()) < 3600


def test_keras_export_records_provenance(store: Store) -> None:
    exported = store.export("nested")
    graph = load_graph(exported.out)
    assert not graph.findings, f"an exported extractor must load without trust: {graph.findings}"
    _check_provenance(graph.provenance, exported)
    _check_provenance(read_export_metadata(exported.out), exported)
    assert graph.provenance == read_export_metadata(exported.out)
    assert read_export_metadata(exported.case.path) is None  # an ordinary model file
    assert load_graph(exported.case.path).provenance is None


def test_savedmodel_export_records_provenance(store: Store) -> None:
    exported = store.export("functional_savedmodel")
    _check_provenance(read_export_metadata(exported.out), exported)


# --------------------------------------------------------------------------- failed verification


def test_failed_verification_removes_the_file(store: Store, tmp_path: Path) -> None:
    """A real exported file whose reloaded outputs differ from the expected ones: not verified, removed."""
    exported = store.export("functional_multi_output")
    copy = tmp_path / "copy.keras"
    shutil.copy(exported.out, copy)
    names = list(exported.report.outputs)
    case = exported.case
    expected = [case.reference(t.layer, t.call_site)[0] + np.float32(1e-3) for t in exported.targets]
    report = export_module._verify(copy, KERAS, case.inputs, expected, names)
    assert not report.verified
    assert report.max_abs_diff > TOLERANCE
    assert "removed" in report.message and "exceeds" in report.message, report.message
    assert not copy.exists(), "a file that failed verification was left behind"
    assert exported.out.exists()


def test_export_that_cannot_be_reloaded_is_removed(store: Store, tmp_path: Path) -> None:
    """A custom layer is known to this process only: the fresh verification process refuses to load the file
    (the static safety check flags a class from outside Keras; without it, Keras could not locate the class)."""
    import keras

    @keras.saving.register_keras_serializable(package="export_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(Doubler(name="double")(inputs)))
    path = tmp_path / "custom.keras"
    model.save(path)
    out = tmp_path / "custom_features.keras"
    targets = resolve_targets(load_graph(path), ["dense"], None)
    report = export_extractor(model, path, targets, out, KERAS, {"x": np.ones(4, np.float32)})
    assert not report.verified
    assert "could not be run again" in report.message and "removed" in report.message, report.message
    assert not out.exists()


def test_export_of_a_trusted_file_is_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``export --trust``: the user consented to the Lambda's code; the verification must load the export (which
    holds the same Lambda) with that consent too, not refuse it and remove a correct file."""
    import keras

    from explorer.cli import main
    from explorer.logs import LOG_DIR_VARIABLE

    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "log"))  # main() logs: not into the user's state folder

    inputs = keras.Input((4,), name="x")
    doubled = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Dense(3, name="dense")(doubled)))
    path = tmp_path / "lambda.keras"
    model.save(path)
    assert load_graph(path).findings, "the safety check flags the Lambda (so --trust is needed)"
    out = tmp_path / "lambda_features.keras"
    code = main(["export", str(path), "--layer", "dense", "-o", str(out), "--trust"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()


# --------------------------------------------------------------------------- the Python snippet


@pytest.mark.parametrize("key", ["nested", "shared", "sequential"])
def test_python_snippet_computes_the_exported_features(store: Store, key: str) -> None:
    import keras

    exported = store.export(key)
    case = exported.case
    code = python_snippet(case.path, exported.targets, case.graph)
    assert repr(str(case.path.resolve())) in code
    namespace: dict[str, Any] = {"images": case.feed()}
    exec(compile(code, f"<snippet {key}>", "exec"), namespace)
    names = list(exported.report.outputs)
    snippet = _as_list(namespace["features"], names)
    reloaded = keras.saving.load_model(exported.out, compile=False)
    from_export = _as_list(reloaded(case.feed(), training=False), names)
    for target, got, want in zip(exported.targets, snippet, from_export, strict=True):
        _assert_close(got, want, f"snippet vs export: {target.layer} {target.call_site}")
        _assert_close(got, case.reference(target.layer, target.call_site),
                      f"snippet vs original: {target.layer} {target.call_site}")


# --------------------------------------------------------------------------- batch features over a folder


def _fitted(path: Path, side: int) -> np.ndarray:
    """The image as the model gets it with the 'unit' preset: RGB stretched to side x side (bilinear), / 255."""
    with Image.open(path) as image:
        pixels = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(pixels, np.float32) / np.float32(255.0)


def test_batch_features_skip_unreadable_files(store: Store, tmp_path: Path) -> None:
    import keras

    case = store.case("functional")
    folder = tmp_path / "images"
    folder.mkdir()
    good = ["a_brick.png", "b_chelsea.jpg", "d_grass.png", "f_gravel.png"]
    for name in good:
        shutil.copy(IMAGES / name.split("_", 1)[1], folder / name)
    data = (IMAGES / "brick.png").read_bytes()
    (folder / "c_broken.png").write_bytes(data[: len(data) // 3])  # a truncated PNG: the header reads, not the pixels
    (folder / "e_notes.png").write_text("not a picture, whatever the suffix says\n")
    (folder / "readme.txt").write_text("not an image file name\n")

    files = image_files(folder)
    assert [f.name for f in files] == ["a_brick.png", "b_chelsea.jpg", "c_broken.png", "d_grass.png",
                                       "e_notes.png", "f_gravel.png"]
    extractor = build_extractor(case.loaded, "pool")
    specs = input_specs(case.loaded)
    seen: list[tuple[int, int]] = []
    result = extract_features(extractor, specs, files, Preprocessing("unit"), batch_size=2,
                              progress=lambda done, total: seen.append((done, total)))

    assert [Path(f).name for f in result.files] == good
    assert {Path(f).name for f, _ in result.skipped} == {"c_broken.png", "e_notes.png"}
    for file, reason in result.skipped:
        assert reason and Path(file).name in reason, (file, reason)
    assert seen[-1] == (6, 6)
    assert result.features.shape == (len(good), 5, 5, 6)

    reference_model = keras.Model(case.original.input, case.original.get_layer("pool").output)
    spec = specs[0]
    for row, name in zip(result.features, good, strict=True):
        prepared = prepare_input(spec, InputSource(IMAGE), load_image(folder / name), Preprocessing("unit")).array
        _assert_close(prepared, _fitted(folder / name, 12), f"{name}: model input")
        _assert_close(row, run_extractor(extractor, {spec.name: prepared}, specs)[0],
                      f"{name}: batch features vs one image at a time")
        expected = np.asarray(reference_model(_fitted(folder / name, 12)[None], training=False))[0]
        _assert_close(row, expected, f"{name}: batch features vs the original model")
