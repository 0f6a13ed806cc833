"""Where the time of ``keras-explorer features`` goes, next to the plain-Keras loop of ``plain_features.py``.

``python benchmarks/profile_features.py [--model M] [--layer L] [--images DIR] [--batches K] [--sections ...]``
(defaults: the cached ResNet50 of ``bench.py``, ``conv4_block6_out``, the ``features`` step's 1,000 JPEGs).
Nothing in ``explorer/`` is changed; the CLI's steps are called (or copied, with timers added) from here:

- ``decode``: per image, on one thread, each step of the CLI's ``_decoded_batches.decode`` (``load_image``,
  ``fit_to_input``, ``apply_preprocessing``, ``to_model_batch``, ``model_input_preview`` and the uint8 copy of
  the picture that ``prepare_input`` makes and ``extract_features`` throws away), next to the plain loop's
  ``load_img`` + ``img_to_array`` and, per batch, ``np.stack`` and ``resnet50.preprocess_input``;
- ``inference``: one batch (the same array), each way warmed up once, then timed round-robin ``--batches`` times
  (min, median, user/system CPU seconds, page faults): ``run_batch`` (eager, node by node: the window's path,
  and the CLI's before commit f7df065), ``extractor(x, training=False)`` (eager), ``predict_on_batch`` (a
  ``tf.function``: the CLI's path since f7df065 and the plain loop's), ``tf.function(extractor)`` directly, the
  same with Grappler's remapper off, and ``run_batch`` inside a ``tf.function`` (node by node, traced once);
- ``layers``: one eager node-by-node run (``run_batch``'s order) with each node timed, summed per layer class;
- ``pipeline``: the CLI's current ``extract_features`` copied with timers (waiting for the decoded batch,
  ``np.stack``, ``predict_on_batch``, ``np.concatenate``; decode seconds summed over the pool's threads) over
  ``--batches`` batches, then the same ``predict_on_batch`` calls without decoding threads running (contention);
- ``variants``: the real ``extract_features`` over ``--batches`` batches (after a warm-up batch each), round-robin
  for ``--rounds`` rounds: as is; ``lean decode`` (``prepare_input`` patched, from here, in
  ``explorer.runtime.features`` to skip the preview and picture copies the batch path throws away); ``eager
  run_batch`` (a stand-in extractor whose ``predict_on_batch`` is ``runtime.run_batch``: the CLI before
  f7df065); plus the decoding alone (no model running);
- ``output``: ``np.concatenate`` of 1,000 rows of the layer's output and ``np.savez`` of them (~800 MB for
  conv4_block6_out) with the file names, as ``run_features`` writes them;
- ``cprofile``: the real ``extract_features`` on ``--batches`` batches under cProfile (main thread only).

Prints a table per section and, as its last line, one JSON object with all the numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

CACHE = Path(os.environ.get("KERAS_EXPLORER_BENCH_CACHE", Path(tempfile.gettempdir()) / "keras-explorer-bench"))
SECTIONS = ("decode", "inference", "layers", "pipeline", "variants", "output", "cprofile")
DECODE_IMAGES = 256


def log(message: str) -> None:
    print(message, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(CACHE / "resnet50.keras"))
    parser.add_argument("--layer", default="conv4_block6_out")
    parser.add_argument("--images", default=str(CACHE / "features-images-1000"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per way / in the pipeline")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the variants section")
    parser.add_argument("--top", type=int, default=20)
    options = parser.parse_args()

    import numpy as np

    from explorer.inputs.images import Preprocessing, image_files
    from explorer.runtime.extraction import build_extractor
    from explorer.runtime.keras_graph import input_specs
    from explorer.runtime.loading import load_model

    files = image_files(options.images)
    preprocessing = Preprocessing("caffe")
    results: dict[str, Any] = {}
    start = time.perf_counter()
    model = load_model(options.model)
    extractor = build_extractor(model, options.layer)
    specs = input_specs(model)
    log(f"model loaded and extractor built in {time.perf_counter() - start:.2f} s; {len(files)} images; "
        f"{os.cpu_count()} CPUs")
    batch = np.stack([decode_like_cli(specs[0], path, preprocessing) for path in files[:options.batch_size]])

    sections: dict[str, Callable[[], dict]] = {
        "decode": lambda: profile_decode(files, specs[0], preprocessing, options.batch_size),
        "inference": lambda: profile_inference(extractor, specs[0].name, batch, options.batches),
        "layers": lambda: profile_layers(extractor, specs[0].name, batch),
        "pipeline": lambda: profile_pipeline(extractor, specs, files, preprocessing, options),
        "variants": lambda: profile_variants(extractor, specs, files, preprocessing, options),
        "output": lambda: profile_output(extractor, specs[0].name, batch, files),
        "cprofile": lambda: profile_cprofile(extractor, specs, files, preprocessing, options),
    }
    for name in options.sections:
        log(f"\n== {name}")
        results[name] = sections[name]()
    print(json.dumps(results), flush=True)
    return 0


def decode_like_cli(spec: Any, path: Path, preprocessing: Any) -> Any:
    from explorer.inputs.images import load_image
    from explorer.inputs.sources import IMAGE, InputSource, prepare_input

    return prepare_input(spec, InputSource(IMAGE), load_image(path), preprocessing).array


# --------------------------------------------------------------------------- decode


def profile_decode(files: list[Path], spec: Any, preprocessing: Any, batch_size: int) -> dict:
    import keras
    import numpy as np

    from explorer.inputs.images import (
        apply_preprocessing,
        fit_to_input,
        load_image,
        model_input_preview,
        to_model_batch,
    )
    from explorer.inputs.sources import IMAGE, InputSource, prepare_input

    sample = files[:DECODE_IMAGES]
    steps: dict[str, list[float]] = defaultdict(list)
    shape = spec.shape
    for path in sample:  # the CLI's decode(), step by step (prepare_input's body)
        t0 = time.perf_counter()
        image = load_image(path)
        t1 = time.perf_counter()
        pixels = fit_to_input(image, shape, "resize")
        t2 = time.perf_counter()
        fed = apply_preprocessing(pixels, preprocessing)
        t3 = time.perf_counter()
        to_model_batch(fed, shape)
        t4 = time.perf_counter()
        model_input_preview(fed)
        t5 = time.perf_counter()
        pixels.astype(np.uint8)
        t6 = time.perf_counter()
        for label, (a, b) in {"load_image": (t0, t1), "fit_to_input": (t1, t2), "apply_preprocessing": (t2, t3),
                              "to_model_batch": (t3, t4), "model_input_preview (unused)": (t4, t5),
                              "picture uint8 copy (unused)": (t5, t6)}.items():
            steps[label].append(b - a)
    for path in sample:
        t0 = time.perf_counter()
        prepare_input(spec, InputSource(IMAGE), load_image(path), preprocessing)
        steps["CLI decode() total"].append(time.perf_counter() - t0)
    for path in sample:
        t0 = time.perf_counter()
        keras.utils.img_to_array(keras.utils.load_img(path, target_size=(224, 224)))
        steps["plain load_img + img_to_array"].append(time.perf_counter() - t0)
    arrays = [decode_like_cli(spec, path, preprocessing) for path in sample[:batch_size]]
    raw = [keras.utils.img_to_array(keras.utils.load_img(path, target_size=(224, 224))) for path in sample[:batch_size]]
    per_batch: dict[str, list[float]] = defaultdict(list)
    for _ in range(5):
        t0 = time.perf_counter()
        stacked = np.stack(raw)
        t1 = time.perf_counter()
        keras.applications.resnet50.preprocess_input(stacked)
        t2 = time.perf_counter()
        np.stack(arrays)
        t3 = time.perf_counter()
        per_batch["plain np.stack"].append(t1 - t0)
        per_batch["plain preprocess_input (batch)"].append(t2 - t1)
        per_batch["CLI np.stack"].append(t3 - t2)
    log(f"  per image, one thread, median of {len(sample)}:")
    table = {label: statistics.median(values) for label, values in steps.items()}
    for label, value in table.items():
        log(f"    {label:34} {ms(value)}   x1000 images: {value * 1000:6.2f} s")
    log(f"  per batch of {batch_size}, median of 5:")
    for label, values in per_batch.items():
        table[label] = statistics.median(values)
        log(f"    {label:34} {ms(table[label])}")
    return table


# --------------------------------------------------------------------------- inference


def profile_inference(extractor: Any, input_name: str, batch: Any, repeats: int) -> dict:
    """Each way warmed up once, then timed round-robin (way 1, way 2, ..., way 1, ...): load from other
    processes then hits all ways alike. Reports min and median per way."""
    import numpy as np
    import tensorflow as tf

    from explorer.runtime.extraction import run_batch

    def traced_without_remapper(function: Callable) -> Callable:
        # Grappler optimizes a tf.function's graph when it is first run (instantiated), with the options
        # in force then; afterwards the optimized graph is reused, whatever the options.
        previous = tf.config.optimizer.get_experimental_options().get("remapping", True)
        tf.config.optimizer.set_experimental_options({"remapping": False})
        try:
            function(batch)
        finally:
            tf.config.optimizer.set_experimental_options({"remapping": previous})
        return function

    graph_fn = tf.function(lambda x: extractor(x, training=False))
    node_fn = tf.function(lambda x: run_batch(extractor, {input_name: x})[0])
    plain_fn = traced_without_remapper(tf.function(lambda x: extractor(x, training=False)))
    ways: dict[str, Callable[[Any], Any]] = {
        "run_batch (eager, node by node)": lambda x: np.asarray(run_batch(extractor, {input_name: x})[0]),
        "extractor(x) (plain, eager)": lambda x: np.asarray(extractor(x, training=False)),
        "predict_on_batch (CLI now, plain)": extractor.predict_on_batch,
        "tf.function(extractor)": lambda x: np.asarray(graph_fn(x)),
        "tf.function(extractor), remapper off": lambda x: np.asarray(plain_fn(x)),
        "tf.function(run_batch)": lambda x: np.asarray(node_fn(x)),
    }
    reference = np.asarray(run_batch(extractor, {input_name: batch})[0])
    table: dict[str, dict] = {}
    times: dict[str, list[float]] = {label: [] for label in ways}
    log(f"  one batch {tuple(batch.shape)}: first call (incl. tracing), then {repeats} rounds, ways interleaved")
    for label, way in ways.items():
        t0 = time.perf_counter()
        first = np.asarray(way(batch))
        first_s = time.perf_counter() - t0
        difference = float(np.max(np.abs(first - reference)) / max(1e-12, float(np.max(np.abs(reference)))))
        table[label] = {"first_s": first_s, "relative_difference": difference}
    usage: dict[str, list[tuple[float, float, int]]] = {label: [] for label in ways}  # user s, system s, faults
    for _ in range(repeats):
        for label, way in ways.items():
            before = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            way(batch)
            times[label].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_SELF)
            usage[label].append((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
                                 after.ru_minflt - before.ru_minflt))
    for label in ways:
        best, middle = min(times[label]), statistics.median(times[label])
        user, system, faults = (statistics.median(u[i] for u in usage[label]) for i in range(3))
        table[label].update({"min_s": best, "median_s": middle, "images_per_s": len(batch) / middle,
                             "images_per_s_at_min": len(batch) / best, "user_cpu_s": user, "system_cpu_s": system,
                             "minor_faults": faults})
        log(f"    {label:38} first {table[label]['first_s']:6.2f} s   min {best:6.3f} s ({len(batch) / best:5.1f}/s)"
            f"   median {middle:6.3f} s ({len(batch) / middle:5.1f}/s)   CPU user {user:5.2f} s sys {system:5.2f} s"
            f"   {faults / 1000:6.0f}k page faults   vs run_batch {table[label]['relative_difference']:.1e}"
            f"   [{', '.join(f'{t:.2f}' for t in times[label])}]")
    t0 = time.perf_counter()
    tensor = run_batch(extractor, {input_name: batch})[0]
    t1 = time.perf_counter()
    np.asarray(tensor)
    t2 = time.perf_counter()
    log(f"    np.asarray(EagerTensor) of the batch output: {ms(t2 - t1)} (run_batch itself {t1 - t0:.3f} s)")
    table["asarray_s"] = t2 - t1
    return table


# --------------------------------------------------------------------------- per layer class


def profile_layers(extractor: Any, input_name: str, batch: Any) -> dict:
    """``run_batch``'s loop with a timer around each node (eager CPU ops run synchronously)."""
    import keras
    from keras.src import tree
    from keras.src.models.functional import operation_fn

    from explorer.runtime.keras_graph import flat_inputs, graph_of, input_names

    graph = graph_of(extractor)
    nodes = [node for depth in sorted(graph._nodes_by_depth, reverse=True)
             for node in graph._nodes_by_depth[depth] if node.operation and not node.is_input]
    uses = Counter(id(t) for node in nodes for t in node.input_tensors)
    uses.update(id(t) for t in graph.outputs)
    per_class: dict[str, float] = defaultdict(float)
    counts: Counter = Counter()
    for run in range(2):  # the first run warms up (oneDNN primitives are created on first use)
        per_class.clear()
        counts.clear()
        tensors = {id(t): keras.ops.convert_to_tensor({input_name: batch}[name])
                   for name, t in zip(input_names(graph), flat_inputs(graph), strict=True)}
        left = Counter(uses)
        start = time.perf_counter()
        for node in nodes:
            if any(id(t) not in tensors for t in node.input_tensors):
                continue
            t0 = time.perf_counter()
            args, kwargs = node.arguments.fill_in(tensors)
            outputs = operation_fn(node.operation, training=False)(*args, **kwargs)
            per_class[type(node.operation).__name__] += time.perf_counter() - t0
            counts[type(node.operation).__name__] += 1
            for symbolic, value in zip(node.outputs, tree.flatten(outputs), strict=True):
                tensors[id(symbolic)] = value
            for symbolic in node.input_tensors:
                left[id(symbolic)] -= 1
                if left[id(symbolic)] <= 0:
                    tensors.pop(id(symbolic), None)
        total = time.perf_counter() - start
        if run == 0:
            log(f"  warm-up run {total:.2f} s")
    log(f"  eager node-by-node run of one batch {tuple(batch.shape)}: {total:.3f} s, per layer class:")
    for name, seconds in sorted(per_class.items(), key=lambda item: -item[1]):
        log(f"    {name:22} x{counts[name]:3}  {seconds:7.3f} s  {seconds / total:6.1%}")
    return {"total_s": total, "per_class_s": dict(per_class), "counts": dict(counts)}


# --------------------------------------------------------------------------- the pipeline, instrumented


def profile_pipeline(extractor: Any, specs: list, files: list[Path], preprocessing: Any,
                     options: argparse.Namespace) -> dict:
    """``extract_features`` + ``_decoded_batches`` (as of f7df065) copied, with timers; decode time summed over
    the pool's threads."""
    import numpy as np

    first = specs[0]
    chosen = files[:options.batch_size * options.batches]
    decode_s = []
    lock = threading.Lock()

    def decode(path: Path) -> Any:
        t0 = time.perf_counter()
        array = decode_like_cli(first, path, preprocessing)
        with lock:
            decode_s.append(time.perf_counter() - t0)
        return array

    def decoded_batches():
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            batches = [chosen[i:i + options.batch_size] for i in range(0, len(chosen), options.batch_size)]
            pending = [pool.map(decode, batch) for batch in batches[:2]]
            for index in range(len(batches)):
                if index + 2 < len(batches):
                    pending.append(pool.map(decode, batches[index + 2]))
                yield list(pending[index])

    extractor.predict_on_batch(np.stack([decode(p) for p in chosen[:options.batch_size]]))  # warm-up (tracing)
    decode_s.clear()
    parts: dict[str, list[float]] = defaultdict(list)
    rows = []
    start = time.perf_counter()
    iterator = decoded_batches()
    fed_batches = []
    while True:
        t0 = time.perf_counter()
        try:
            arrays = next(iterator)
        except StopIteration:
            break
        t1 = time.perf_counter()
        fed = np.stack(arrays)
        t2 = time.perf_counter()
        rows.append(np.asarray(extractor.predict_on_batch(fed)))
        t3 = time.perf_counter()
        parts["wait for decoded batch"].append(t1 - t0)
        parts["np.stack"].append(t2 - t1)
        parts["predict_on_batch"].append(t3 - t2)
        fed_batches.append(fed)
    t0 = time.perf_counter()
    np.concatenate(rows)
    parts["np.concatenate"].append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    alone = []
    for fed in fed_batches:  # the same batches again, no decoding threads competing for the CPUs
        t0 = time.perf_counter()
        extractor.predict_on_batch(fed)
        alone.append(time.perf_counter() - t0)
    images = len(chosen)
    log(f"  {len(fed_batches)} batches of {options.batch_size} (after one warm-up batch): {total:.2f} s, "
        f"{images / total:.2f} images/s; main thread:")
    table = {label: sum(values) for label, values in parts.items()}
    for label, value in table.items():
        log(f"    {label:28} {value:7.3f} s  {value / total:6.1%}")
    table["decode threads (sum)"] = sum(decode_s)
    table["predict_on_batch alone"] = sum(alone)
    log(f"    {'decode, summed over threads':28} {sum(decode_s):7.3f} s  (overlaps predict_on_batch; "
        f"{statistics.median(decode_s) * 1000:.1f} ms per image in the pool)")
    log(f"    predict_on_batch on the same batches without decoding running: {sum(alone):.3f} s "
        f"(contention costs {table['predict_on_batch'] - sum(alone):+.3f} s)")
    table["total_s"] = total
    table["images_per_s"] = images / total
    return table


# --------------------------------------------------------------------------- variants of the real pipeline


class EagerExtractor:
    """A stand-in extractor for ``extract_features``: ``predict_on_batch`` runs ``runtime.run_batch`` (eager,
    node by node), what the CLI ran before f7df065."""

    def __init__(self, extractor: Any, input_name: str) -> None:
        self.extractor, self.input_name, self.input = extractor, input_name, extractor.input

    def predict_on_batch(self, batch: Any) -> Any:
        import numpy as np

        from explorer.runtime.extraction import run_batch

        return np.asarray(run_batch(self.extractor, {self.input_name: batch})[0])


def profile_variants(extractor: Any, specs: list, files: list[Path], preprocessing: Any,
                     options: argparse.Namespace) -> dict:
    import explorer.runtime.features as features
    from explorer.inputs.images import apply_preprocessing, fit_to_input, to_model_batch
    from explorer.inputs.sources import IMAGE, PreparedInput

    first = specs[0]
    chosen = files[:options.batch_size * options.batches]
    if not hasattr(features, "prepare_input"):
        raise RuntimeError("explorer.runtime.features no longer uses prepare_input: update this section")
    original_prepare = features.prepare_input

    def lean_prepare_input(spec: Any, source: Any, image: Any, prep: Any, fit_mode: str = "resize") -> Any:
        if source.kind != IMAGE:
            return original_prepare(spec, source, image, prep, fit_mode)
        shape = spec.shape if spec.shape[-1] is not None else (*spec.shape[:-1], 3)
        fed = apply_preprocessing(fit_to_input(image, shape, fit_mode), prep)
        return PreparedInput(to_model_batch(fed, shape)[0], None, None)

    eager = EagerExtractor(extractor, first.name)
    variants = {"CLI as is": (extractor, original_prepare), "lean decode": (extractor, lean_prepare_input),
                "eager run_batch (before f7df065)": (eager, original_prepare)}

    def run(model: Any, prepare: Callable, files_: list[Path]) -> float:
        features.prepare_input = prepare
        try:
            t0 = time.perf_counter()
            result = features.extract_features(model, specs, files_, preprocessing, options.batch_size)
            seconds = time.perf_counter() - t0
        finally:
            features.prepare_input = original_prepare
        if len(result.files) != len(files_):
            raise RuntimeError(f"{len(result.skipped)} images skipped")
        return seconds

    warm = files[-options.batch_size:]
    for model, prepare in variants.values():
        run(model, prepare, warm)  # tracing of predict_on_batch: paid once per CLI process
    times: dict[str, list[float]] = {name: [] for name in variants}
    decode_only = []
    for _ in range(options.rounds):
        for name, (model, prepare) in variants.items():
            times[name].append(run(model, prepare, chosen))
        t0 = time.perf_counter()
        for _batch in features._decoded_batches(first, chosen, preprocessing, options.batch_size):
            pass
        decode_only.append(time.perf_counter() - t0)
    images = len(chosen)
    log(f"  extract_features on {images} images, {options.rounds} rounds round-robin (min and median):")
    table = {}
    for name, values in times.items():
        best, middle = min(values), statistics.median(values)
        table[name] = {"min_s": best, "median_s": middle, "images_per_s": images / middle}
        log(f"    {name:34} min {best:6.2f} s ({images / best:5.2f}/s)   median {middle:6.2f} s "
            f"({images / middle:5.2f}/s)   [{', '.join(f'{t:.2f}' for t in values)}]")
    table["decode only"] = {"min_s": min(decode_only), "median_s": statistics.median(decode_only)}
    log(f"    {'decoding only (CLI pool, no model)':34} min {min(decode_only):6.2f} s "
        f"({min(decode_only) / images * 1000:.1f} ms per image of wall time)")
    return table


# --------------------------------------------------------------------------- output


def profile_output(extractor: Any, input_name: str, batch: Any, files: list[Path]) -> dict:
    import numpy as np

    from explorer.runtime.extraction import run_batch

    row = np.asarray(run_batch(extractor, {input_name: batch})[0])
    rows = [row.copy() for _ in range(-(-len(files) // len(batch)))]  # fresh memory per batch, like the CLI
    t0 = time.perf_counter()
    features = np.concatenate(rows)[:len(files)]
    t1 = time.perf_counter()
    del rows
    with tempfile.TemporaryDirectory(prefix="profile-features-") as scratch:
        out = Path(scratch) / "feats.npz"
        t2 = time.perf_counter()
        np.savez(out, features=features, files=np.array([str(f) for f in files]))
        t3 = time.perf_counter()
        size = out.stat().st_size
        t4 = time.perf_counter()
        os.sync()  # how much of the write was only in the page cache
        t5 = time.perf_counter()
    log(f"  np.concatenate of {len(files)} rows {tuple(row.shape[1:])} {row.dtype}: {t1 - t0:.3f} s "
        f"({features.nbytes / 1e6:.0f} MB)")
    log(f"  np.savez: {t3 - t2:.3f} s for {size / 1e6:.0f} MB ({size / 1e6 / (t3 - t2):.0f} MB/s), "
        f"then os.sync {t5 - t4:.3f} s")
    return {"concatenate_s": t1 - t0, "savez_s": t3 - t2, "sync_s": t5 - t4, "bytes": size}


# --------------------------------------------------------------------------- cProfile


def profile_cprofile(extractor: Any, specs: list, files: list[Path], preprocessing: Any,
                     options: argparse.Namespace) -> dict:
    from explorer.runtime.features import extract_features

    chosen = files[:options.batch_size * options.batches]
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    extract_features(extractor, specs, chosen, preprocessing, options.batch_size)
    profiler.disable()
    total = time.perf_counter() - t0
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(options.top)
        log(f"  extract_features on {len(chosen)} images: {total:.2f} s; by {key} (main thread only):")
        log("\n".join("    " + line for line in text.getvalue().splitlines() if line.strip())[:6000])
    return {"total_s": total, "images_per_s": len(chosen) / total}


if __name__ == "__main__":
    sys.exit(main())
