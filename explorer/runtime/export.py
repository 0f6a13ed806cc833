"""Feature-extractor export: save, verify in a fresh process, record provenance, and the Python snippet.

An export is only reported done after the saved file has been loaded back in a new process and its outputs
compared with the original model's; a file that fails is removed, never left looking valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import multiprocessing
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from explorer.live.protocol import ExportReport
from explorer.model.files import EXPORT_METADATA_KEY
from explorer.model.graph import Target
from explorer.runtime.custom_code import run_custom_code
from explorer.runtime.errors import RuntimeFailure
from explorer.runtime.extraction import build_flat_extractor, run_extractor
from explorer.runtime.guard import loading_guard
from explorer.runtime.keras2 import check_outputs, is_keras2, keras2_extractor, load_keras2
from explorer.runtime.keras_graph import input_specs
from explorer.runtime.loading import LiveModel, load_model, read_file_graph

KERAS, SAVEDMODEL, H5 = "keras", "savedmodel", "h5"
FORMATS = (KERAS, SAVEDMODEL, H5)  # h5: a tf-keras legacy file, for files Keras 2 wrote
TOLERANCE = 1e-6
METADATA_KEY = EXPORT_METADATA_KEY
SAVEDMODEL_METADATA = "keras_explorer_export.json"
VERIFY_TIMEOUT_S = 300.0


def format_for(path: str | Path) -> str:
    """The export format an output name asks for: ``.keras`` files, else a SavedModel folder."""
    return KERAS if str(path).endswith(".keras") else H5 if str(path).endswith(".h5") else SAVEDMODEL


def build_multi_extractor(model: Any, targets: list[Target]) -> Any:
    """One model whose outputs are the targets' outputs: a tensor for one target, a dict named after them for
    several. Layers with several outputs contribute their first (the one the window shows by default)."""
    import keras

    inputs, found = build_flat_extractor(model, [(t.layer, t.call_site) for t in targets])
    # The output names the layer; the Identity holding it needs a name no layer of the model has.
    tensors = {t.output_name: keras.layers.Identity(name=f"{t.output_name}_output")(outputs[0])
               for t, outputs in zip(targets, found, strict=True)}
    outputs = next(iter(tensors.values())) if len(tensors) == 1 else tensors
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=f"{model.name}_features")


def provenance(source: str | Path, targets: list[Target]) -> dict[str, Any]:
    return {
        "source": str(Path(source).resolve()),
        "layers": [{"layer": t.layer, "call_site": list(t.call_site), "output": t.output_name} for t in targets],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tool": "keras-explorer",
    }


def export_live(live: LiveModel, source: str | Path, targets: list[Target], out_path: str | Path, fmt: str,
                inputs: dict[str, np.ndarray], trust: bool = False, custom_objects: str | None = None) -> ExportReport:
    """export_extractor from a loaded model: a Keras 2 file's tf-keras model is the reference (and the source of
    an .h5 export), its Keras 3 rebuild the source of the others."""
    original = live.keras2.model if live.keras2 is not None else None
    if fmt == H5:
        return _export_keras2_h5(source, targets, Path(out_path), inputs, trust, original)
    model = live.keras3_graph()
    if model is None:
        raise RuntimeFailure("this model could only be recorded, not traced: nothing to export")
    return export_extractor(model, source, targets, out_path, fmt, inputs, trust, custom_objects, original)


def export_extractor(model: Any, source: str | Path, targets: list[Target], out_path: str | Path,
                     fmt: str, inputs: dict[str, np.ndarray], trust: bool = False,
                     custom_objects: str | None = None, tf_keras_model: Any = None) -> ExportReport:
    """Build, save, record provenance and verify; returns the report (``verified`` False means removed).

    ``trust``: the source file was trusted, so the export (which may hold the same code) is reloaded with the
    same consent. ``custom_objects``: the Python file the source was opened with; the export holds the same
    classes, so the verification process runs it too. ``tf_keras_model``: a Keras 2 source as tf-keras loaded
    it (else loaded again from the file), the reference the export is compared with."""
    if fmt not in FORMATS:
        raise RuntimeFailure(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    if not targets:
        raise RuntimeFailure("choose at least one layer to export")
    out = Path(out_path)
    if fmt == H5:
        return _export_keras2_h5(source, targets, out, inputs, trust, tf_keras_model)
    extractor = build_multi_extractor(model, targets)
    names = [t.output_name for t in targets]
    expected = _in_order(extractor, run_extractor(extractor, inputs, _specs(extractor)), names)
    agreement = _agrees_with_tf_keras(source, targets, inputs, expected, names, trust, tf_keras_model)
    info = provenance(source, targets)
    if fmt == KERAS:
        if out.suffix != ".keras":
            raise RuntimeFailure(f"{out.name}: a Keras export must end in .keras")
        extractor.save(out)
        _add_metadata(out, info)
    else:
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        extractor.export(str(out), format="tf_saved_model", verbose=False)
        (out / SAVEDMODEL_METADATA).write_text(json.dumps(info, indent=2))
        # A SavedModel runs as a graph; graph and eager execution of the same model differ by float32
        # rounding (~2e-6 on the demo), so compare with the original model run as a graph too.
        expected = _graph_mode_outputs(extractor, inputs, names)
    report = _verify(out, fmt, inputs, expected, names, trust, custom_objects)
    return dataclasses.replace(report, message=f"{report.message}{agreement}") if report.verified else report


def _agrees_with_tf_keras(source: str | Path, targets: list[Target], inputs: dict[str, np.ndarray],
                          expected: list[np.ndarray], names: list[str], trust: bool, original: Any) -> str:
    """For a file Keras 2 wrote: the Keras 3 extractor's outputs against the extractor tf-keras builds from the
    original file, on the same input (RuntimeFailure when they differ); the words for the report."""
    graph = read_file_graph(source)
    if not is_keras2(graph):
        return ""
    original = original or _tf_keras_model(source, graph, trust)
    reference = _keras2_run(keras2_extractor(original, graph, targets), list(inputs.values()), names)
    difference = check_outputs(reference, expected, "the exported extractor")
    return f"; equal to tf-keras on the original file within {difference:.2g}"


def _tf_keras_model(source: str | Path, graph: Any, trust: bool) -> Any:
    with loading_guard(allow_code=trust):
        return load_keras2(source, graph, trust)


def _export_keras2_h5(source: str | Path, targets: list[Target], out: Path, inputs: dict[str, np.ndarray],
                      trust: bool, original: Any) -> ExportReport:
    """The extractor as tf-keras builds it from the original file, saved as a legacy .h5, verified by tf-keras."""
    graph = read_file_graph(source)
    if not is_keras2(graph):
        raise RuntimeFailure("an .h5 export is a tf-keras legacy file: for files Keras 2 wrote (else .keras)")
    if out.suffix != ".h5":
        raise RuntimeFailure(f"{out.name}: a tf-keras legacy export must end in .h5")
    original = original or _tf_keras_model(source, graph, trust)
    extractor = keras2_extractor(original, graph, targets)
    names = [t.output_name for t in targets]
    expected = _keras2_run(extractor, list(inputs.values()), names)
    extractor.save(str(out))
    return _verify(out, H5, inputs, expected, names, trust)


def _keras2_run(model: Any, arrays: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    batch = [np.asarray(a, np.float32)[None] for a in arrays]
    result = model(batch if len(batch) > 1 else batch[0], training=False)
    values = [result[name] for name in names] if isinstance(result, dict) else [result]
    return [np.asarray(value)[0] for value in values]


def _add_metadata(path: Path, info: dict[str, Any]) -> None:
    """Record provenance in the archive's metadata.json (Keras only reads its own keys from it)."""
    temporary = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "metadata.json":
                metadata = json.loads(data)
                metadata[METADATA_KEY] = info
                data = json.dumps(metadata).encode()
            target.writestr(item, data)
    temporary.replace(path)


def _in_order(model: Any, outputs: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Outputs come flattened (a dict's keys sorted, as Keras flattens); return them in ``names`` order."""
    if not isinstance(model.output, dict):
        return outputs
    flat_names = sorted(model.output)
    return [outputs[flat_names.index(name)] for name in names]


def _graph_mode_outputs(extractor: Any, inputs: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    import tensorflow as tf

    specs = _specs(extractor)
    batch = [tf.constant(np.asarray(inputs[s.name], dtype=s.dtype)[None]) for s in specs]
    result = tf.function(lambda *xs: extractor(list(xs) if len(xs) > 1 else xs[0], training=False))(*batch)
    flat = [result[k] for k in sorted(result)] if isinstance(result, dict) else [result]
    return _in_order(extractor, [np.asarray(t)[0] for t in flat], names)


def _specs(extractor: Any) -> list:
    return input_specs(extractor)


def _verify(out: Path, fmt: str, inputs: dict[str, np.ndarray], expected: list[np.ndarray],
            names: list[str], trust: bool = False, custom_objects: str | None = None) -> ExportReport:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pending = pool.apply_async(reload_and_run, (str(out), fmt, inputs, names, trust, custom_objects))
        try:
            got = pending.get(VERIFY_TIMEOUT_S)
        except Exception as error:  # whatever went wrong in the fresh process, the export is not verified
            got = f"{type(error).__name__}: {error}"
    if isinstance(got, str):
        diff, message = float("inf"), f"the saved model could not be run again: {got}"
    elif len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected, strict=False)):
        diff, message = float("inf"), "the saved model's outputs have different shapes"
    else:
        diff = max(float(np.max(np.abs(g.astype(np.float64) - e))) if e.size else 0.0
                   for g, e in zip(got, expected, strict=True))
        message = f"verified: max abs difference {diff:.3g}"
    verified = diff <= TOLERANCE
    if not verified:
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        if diff != float("inf"):
            message = f"max abs difference {diff:.3g} exceeds {TOLERANCE:g}"
        message += "; the file was removed"
    return ExportReport(str(out), fmt, tuple(names), diff, verified, message)


def reload_and_run(path: str, fmt: str, inputs: dict[str, np.ndarray], names: list[str],
                   trust: bool = False, custom_objects: str | None = None) -> list[np.ndarray] | str:
    """Runs in a fresh process: load what was written and compute its outputs, in ``names`` order.
    ``custom_objects`` runs there first (behind the same trust), as it did where the source was opened."""
    try:
        if fmt == H5:
            import tf_keras

            with loading_guard(allow_code=trust):
                reloaded = tf_keras.models.load_model(path, compile=False)
            return _keras2_run(reloaded, list(inputs.values()), names)
        if fmt == KERAS:
            code = run_custom_code(custom_objects, trust) if custom_objects else None
            reloaded = load_model(path, trust=trust, custom_objects=code and code.objects)
            return _in_order(reloaded, run_extractor(reloaded, inputs, _specs(reloaded)), names)
        import tensorflow as tf

        loaded = tf.saved_model.load(path)  # keep the object alive: serve() needs its variables
        served = loaded.serve
        arrays = [np.asarray(inputs[k], dtype=np.float32)[None] for k in inputs]
        result = served(arrays if len(arrays) > 1 else arrays[0])  # serve takes one (list) argument
        if isinstance(result, dict):
            return [np.asarray(result[name])[0] for name in names]
        return [np.asarray(result)[0]]
    except Exception as error:  # reported to the parent as text: the verification failed
        return f"{type(error).__name__}: {error}"
