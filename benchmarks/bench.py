"""Keras Explorer benchmarks: ``make bench`` (``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench.py``).

Prints progress lines, then as its last line one JSON object of medians:

- ``window_shown_s``: process launch to the first painted main window (``first_window.py``, a fresh process each
  time, launched the way ``python -m explorer MODEL`` starts the app), and ``tensorflow_imported_at_window``;
  ``bare_window_shown_s``, the baseline: a bare QMainWindow with a QGraphicsView as its central widget, started
  and measured the same way; ``window_shown_ratio`` their ratio (target <= 1.5);
- ``open_to_graph_s``: ``MainWindow.open_model(path)`` until ``graph_drawn`` plus a forced repaint of the graph
  viewport, in this process with a real window (TensorFlow is never imported here: the models are built in a
  subprocess), for the Keras 3 ``.keras`` models and ResNet50 saved by Keras 2 (tf-keras 2.21) as ``.h5``;
  ``dot_alone_s``, the baseline: the same drawn graph through ``dot -Tjson0`` alone; ``layout_floor_ratio``
  their ratio per model (target <= 3 for EfficientNetB7); ``keras2_vs_keras3``: ResNet50's Keras 2 ``.h5``
  over its Keras 3 ``.keras`` (target <= 1.1);
- ``summary_s``: wall time of the whole ``python -m explorer summary MODEL --json`` process;
- ``plot_model_resnet50_s``: ``keras.utils.plot_model(..., show_shapes=True)`` on ResNet50, the Keras baseline
  (null, with ``plot_model_error``, when it cannot run, e.g. pydot is not installed);
- ``memory_rss_mb_after_efficientnetb7``: this (GUI) process's peak RSS once EfficientNetB7 has been drawn;
- ``first_activation_s``: in a real window with the live tier (worker started, ResNet50 loaded in it, image
  chelsea.jpg set), ``MainWindow.session.select(layer)`` until ``ActivationsPanel.shown`` for that layer plus a
  forced repaint (``grab()``) of the activations view; a different, never computed mid layer each time (the
  extractor is built in the worker), median. One layer of the same stage is computed first, untimed in the
  median (``first_activation_cold_s``), so TensorFlow's one-time start-up is not charged to the first layer;
  ``first_activation_worker_s`` is the worker's own part (build the extractor and run it), median;
- ``forward_s``: the plain-Keras baseline for the same layers (``forward_time.py``, a subprocess with the model
  loaded: ``keras.Model(model.input, layer.output)`` built and called once on the very array the window fed
  the worker), each layer right after the window's click on it, median; ``activation_ratio``: the median over
  the layers of the window's time over the baseline's for that layer (paired, because the machine's speed
  drifts within a run; the ratio of the two medians is logged beside it);
- the same with the ``_keras2`` suffix for the Keras 2 ResNet50 ``.h5`` (tf-keras 2.21): the worker loads it
  with tf-keras and computes with it (its Keras 3 rebuild is made on first export, not here); the baseline is
  plain tf-keras cutting the same layers (``activation_ratio_keras2``); ``open_to_loaded[_keras2]_s`` is
  open_model until the worker has the model; the one-time conversion to Keras 3, in a subprocess
  (``conversion_time.py``): ``keras3_rebuild_check_keras2_s`` (the rebuild and its check against tf-keras),
  ``save_as_keras3_keras2_s`` (written and verified in a fresh process), against ``plain_load_keras2_s``, a plain
  tf-keras load of the file (``rebuild_vs_load_keras2``);
- ``cached_switch_s``: selecting an already computed layer again until it is shown and repainted, median;
- ``grid_2048_channels_draw_s``: ``FeatureView.show_output`` of a (7, 7, 2048) float32 array plus ``grab()``,
  in this process, median;
- ``effb7_10_layers_peak_gb``: the worker's peak RSS (VmHWM) after 10 layers of EfficientNetB7 (600x600, from
  the 300x300 stem to the top) were computed one after another in a fresh window (a fresh worker);
- ``features_images_per_s``: ``python -m explorer features resnet50.keras --layer conv4_block6_out --images DIR
  --preprocess caffe --batch-size 32 -o OUT.npz`` (the real CLI, a subprocess) over 1,000 JPEGs of 224x224
  (``feature_images.py``: crops, mirrors and colour shifts of ``resources/images``, made once in the cache
  folder); the images/s the CLI prints on its last line (the extraction itself: decoding, inference,
  concatenation; not loading the model nor writing the .npz), median; ``features_process_s``: the wall time
  of the whole process (start-up, model loading, extraction, writing the ~800 MB .npz), median;
- ``plain_keras_images_per_s``: the loop a Keras user writes over the same files (``plain_features.py``, a
  subprocess): per batch of 32, ``load_img(target_size=(224, 224))`` + ``img_to_array``,
  ``resnet50.preprocess_input``, then the extractor ``keras.Model(model.input, layer.output)``, measured both
  ways users call it (``predict_on_batch`` and ``extractor(batch, training=False)``) in the first round and
  the faster one (``plain_keras_way``) in every round; images/s of the loop (not loading the model), median.
  Target: ``features_images_per_s >= plain_keras_images_per_s`` (``features_vs_plain`` is their ratio);
- ``features_ray_images_per_s``: the same CLI with ``--engine ray --workers 1 --pool avg -o OUT/`` (a Parquet
  dataset folder; Ray Data on a local Ray runtime) over the same 1,000 JPEGs, same layer and batch size, in
  the same rounds; the images/s it prints (from starting Ray to the last file written: Ray's start-up, the
  actor's TensorFlow import and extractor load, the extraction, writing), median; the baseline
  ``features_local_parquet_images_per_s``, the local engine with ``--pool avg -o OUT/`` (from the first batch
  to the last); ``ray_vs_local`` their ratio (target >= 0.8); ``features_ray_process_s`` and
  ``features_local_parquet_process_s``, the wall time of each whole process, median, and
  ``features_ray_parts_s``, where the Ray process's time goes (median per part, read from the times its
  stderr lines came and from Ray Data's log: ``before_ray``, process start to the extractor exported;
  ``ray_start``, to Ray Data starting the dataset; ``actor_start``, to the first block handed to the actor
  (its TensorFlow import, the extractor loaded and its predict function built); ``extraction``, to the
  dataset finished; ``shutdown_exit``); both outputs are checked (1,000 rows each, the same paths, read with
  pyarrow); ``ray_vs_local_extraction``: the ratio once started, Ray's images/s over its ``extraction`` part
  over the local engine's from its first batch to its last (both logged); other worker counts can be tried
  once (``RAY_WORKERS_TRIED``: ``features_ray_workers{N}_images_per_s``);
- ``features_local_peak_mb_1k``, ``features_local_peak_mb_10k``, ``features_ray_peak_mb_1k``,
  ``features_ray_peak_mb_10k``: the peak resident memory of each engine's whole process tree (the CLI and
  all its descendants: Ray's GCS server, raylet, workers, actor; ``process_tree.py`` sums their VmRSS every
  0.2 s and keeps the largest sum) over 1,000 and over 10,000 PNGs of 64x64 (``feature_images.py``, made once
  in the cache folder) with the demo model ``resources/demo_model.keras`` at ``global_pool`` (128 values),
  batch 32, one run each; ``features_local_peak_growth`` and ``features_ray_peak_growth``: 10k over 1k
  (target <= 1.2: memory stays flat as the folder grows);
- ``features_processes_left_running``: processes of those engine runs (the CLI's descendants) still alive 5 s
  after the CLI exited, over the whole step (expected 0; they are listed in the log, then killed).

- ``gradcam_ratio``: Grad-CAM on ResNet50's last spatial layer (explorer.runtime.attribution, median of 5 after
  the first call, ``gradcam_first_s``, which builds the cut) over a plain ``model(x)`` of the same model in the
  same process (``gradcam_forward_s``), target <= 2.5; ``one_pass_effb7_peak_gb``: the peak memory of a process
  computing every layer's statistics of EfficientNetB7 at 600x600 in one pass (explorer.runtime.layer_stats),
  target <= 2.5 GB, beside ``forward_effb7_peak_gb``, a process's peak for one plain forward pass (each in a
  process of its own: ``attribution_time.py``).

``bench.py --only STEP...`` runs some steps only (window, gui, activations, summary, plot_model, features,
attribution).

Models are cached in ``$KERAS_EXPLORER_BENCH_CACHE`` (default: ``<tmp>/keras-explorer-bench``) and reused.
Targets are printed next to the results; missing one does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from explorer.live.protocol import WorkerState

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CACHE = Path(os.environ.get("KERAS_EXPLORER_BENCH_CACHE", Path(tempfile.gettempdir()) / "keras-explorer-bench"))
MODELS = ("resnet50", "resnet50_keras2", "densenet121", "efficientnetb7")  # the Keras 2 .h5 by its Keras 3 twin
REPETITIONS = 3
WINDOW_REPETITIONS = 5
TARGETS_S = {"window_shown_s": 0.8, "resnet50": 0.3, "efficientnetb7": 1.0}
TARGET_RATIOS = {"window_shown_ratio": 1.5, "efficientnetb7": 3.0, "keras2_vs_keras3": 1.1}
OPEN_TIMEOUT_S = 180.0

IMAGE = HERE.parent / "resources" / "images" / "chelsea.jpg"
RESNET_WARMUP_LAYER = "conv4_block1_out"  # computed first, not in the median: TensorFlow's one-time start-up
# Eight layers, (14, 14, 1024) and (7, 7, 2048): with four, one slow run on a busy machine moved a median by 15%.
RESNET_LAYERS = ("conv4_block2_out", "conv4_block3_out", "conv4_block4_out", "conv4_block5_out", "conv4_block6_out",
                 "conv5_block1_out", "conv5_block2_out", "conv5_block3_out")
EFFB7_LAYERS = (  # 600x600 input: four at 300x300 first, then down the network to the top
    "stem_activation", "block1a_activation", "block1d_add", "block2a_expand_activation",
    "block3a_expand_activation", "block3d_activation", "block4e_activation", "block5f_activation",
    "block6h_activation", "top_activation")
CACHED_SWITCHES = 6
GRID_REPETITIONS = 5
GRID_SHAPE = (7, 7, 2048)  # ResNet50's conv5_block3_out
TARGETS = {"activation_ratio": 1.15, "cached_switch_s": 0.05, "grid_2048_channels_draw_s": 0.3,
           "effb7_10_layers_peak_gb": 2.5}
FEATURE_IMAGES = 1000  # 224x224 JPEGs, made once in the cache folder
FEATURES_LAYER = "conv4_block6_out"  # (14, 14, 1024) float32: 800 KB per image, 800 MB for the folder
FEATURES_BATCH = 32
FEATURES_ROUNDS = 3  # each round: the CLI, then the plain loop (both ways in the first round)
FEATURES_TIMEOUT_S = 1800.0
PLAIN_WAYS = ("predict_on_batch", "call")
ENGINE_POOL = "avg"  # the engines' Parquet runs: one 1,024-vector per image (4 MB of Parquet, not 800 MB)
RAY_WORKERS = 1  # one extractor on a 2-core machine: TensorFlow already uses both cores
# Worker counts to try once, in the first round, next to RAY_WORKERS (features_ray_workers{N}_images_per_s).
# Empty: the step must stay near 12 minutes. Measured on this 2-CPU machine with two calls per actor, alternating:
# --workers 2 24.5 and 23.2 images/s, --workers 1 26.2 and 25.4, and 5.7 GB peak instead of 4.0; with two actors
# holding both CPUs no write task gets one until they finish, so every block waits in the object store.
RAY_WORKERS_TRIED: tuple[int, ...] = ()
TARGET_RAY_VS_LOCAL = 0.8  # at least
MEMORY_MODEL = HERE.parent / "resources" / "demo_model.keras"  # small and fast: 10,000 images in seconds
MEMORY_LAYER = "global_pool"  # (128,)
MEMORY_COUNTS = (1000, 10000)  # 64x64 PNGs (feature_images.py, small=64), made once in the cache folder
SMALL_IMAGE_SIDE = 64
TARGET_MEMORY_GROWTH = 1.2  # peak at 10k over peak at 1k, at most
LEFT_RUNNING: list[str] = []  # processes of the engines' runs still alive after their CLI exited (then killed)
STEPS = ("window", "gui", "activations", "summary", "plot_model", "features", "attribution")
GRADCAM_TARGET = 2.5  # Grad-CAM on ResNet50 over its plain forward pass, at most
ONE_PASS_TARGET_GB = 2.5  # every layer's statistics of EfficientNetB7 at 600x600 in one pass: peak, at most
LIVE_TIMEOUT_S = 300.0  # starting the worker (TensorFlow import) and loading EfficientNetB7 on a busy machine


def log(message: str) -> None:
    print(message, flush=True)


def load_average() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


class OtherLoad:
    """How busy other processes kept the CPUs during a section: the machine may be shared, numbers get noisy."""

    def __enter__(self) -> OtherLoad:
        self.start = (time.perf_counter(), _busy_cpu_s(), _own_cpu_s())
        return self

    def __exit__(self, *_exc: object) -> None:
        wall, busy, own = (end - start for end, start in zip(
            (time.perf_counter(), _busy_cpu_s(), _own_cpu_s()), self.start, strict=True))
        if busy >= 0:
            share = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))
            log(f"  other processes kept {share:.0%} of the CPUs busy meanwhile"
                + ("  (noisy: rerun on a quiet machine)" if share > 0.15 else ""))


def _busy_cpu_s() -> float:
    """CPU seconds spent by the whole machine (all CPUs, not idle or waiting), or -1 without /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return -1.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the finished subprocesses
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def verdict(value: float | None, target: float | None, unit: str = " s") -> str:
    if target is None:
        return ""
    if value is None:
        return f"  (target <= {target}{unit}: not measured)"
    return f"  (target <= {target}{unit}: {'met' if value <= target else 'MISSED'})"


def report(label: str, times: list[float], target: float | None = None) -> float:
    value = median(times)
    runs = ", ".join(f"{t:.3f}" for t in times)
    log(f"  {label}: median {value:.3f} s  [{runs}]{verdict(value, target)}")
    return value


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 900.0) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


# --------------------------------------------------------------------------- attribution and one pass


def measure_attribution(paths: dict[str, Path]) -> dict:
    """Grad-CAM against a plain forward pass (ResNet50), and EfficientNetB7's every-layer statistics in one pass
    against a plain forward pass's peak memory; each in a process of its own (attribution_time.py)."""
    script = str(HERE / "attribution_time.py")
    log("attribution: Grad-CAM on ResNet50's last spatial layer vs model(x) (attribution_time.py, medians of 5)")
    gradcam = last_json(run([PYTHON, script, "gradcam", str(paths["resnet50"])]).stdout)
    ratio = round(gradcam["gradcam_s"] / gradcam["forward_s"], 3)
    log(f"  forward {gradcam['forward_s']:.3f} s, Grad-CAM on {gradcam['layer']} {gradcam['gradcam_s']:.3f} s "
        f"(first, building the cut: {gradcam['gradcam_first_s']:.3f} s); gradcam_ratio {ratio:.2f}"
        f"{verdict(ratio, GRADCAM_TARGET, '')}")
    log("one pass: every layer's statistics of EfficientNetB7 at 600x600 vs one plain forward pass, peak memory")
    one_pass = last_json(run([PYTHON, script, "one_pass", str(paths["efficientnetb7"])]).stdout)
    forward = last_json(run([PYTHON, script, "forward", str(paths["efficientnetb7"])]).stdout)
    peak, plain = round(one_pass["peak_mb"] / 1024, 3), round(forward["peak_mb"] / 1024, 3)
    log(f"  {one_pass['layers']} layer outputs in {one_pass['one_pass_s']:.1f} s, peak {peak:.2f} GB "
        f"(model loaded: {one_pass['loaded_mb'] / 1024:.2f} GB){verdict(peak, ONE_PASS_TARGET_GB, ' GB')}; "
        f"the plain forward pass peaks at {plain:.2f} GB ({forward['forward_s']:.1f} s)")
    return {"gradcam_s": round(gradcam["gradcam_s"], 4), "gradcam_forward_s": round(gradcam["forward_s"], 4),
            "gradcam_ratio": ratio, "gradcam_first_s": round(gradcam["gradcam_first_s"], 4),
            "one_pass_effb7_s": round(one_pass["one_pass_s"], 2), "one_pass_effb7_peak_gb": peak,
            "forward_effb7_peak_gb": plain}


# --------------------------------------------------------------------------- models


def build_models() -> dict[str, Path]:
    from build_models import model_path  # benchmarks/ is on sys.path: bench.py runs as a script

    paths = {name: model_path(CACHE, name) for name in MODELS}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        log(f"building {', '.join(missing)} into {CACHE} (subprocess, once; reused afterwards)")
        result = run([PYTHON, str(HERE / "build_models.py"), str(CACHE), *missing])
        for line in result.stdout.splitlines():
            log(f"  {line}")
    else:
        log(f"reusing models in {CACHE}")
    return paths


# --------------------------------------------------------------------------- subprocess measurements


def measure_window_shown(model: Path, config_home: Path) -> dict:
    log(f"window shown: {WINDOW_REPETITIONS} fresh processes each, alternating the app (first_window.py "
        f"{model.name}) and the baseline, a bare QMainWindow around a QGraphicsView (first_window.py --bare)")
    # No saved geometry or recent files of the user, and the app's log kept out of the user's log folder. Python
    # keeps its compiled bytecode (in a folder of the bench's own), as for an installed app: a first, uncounted
    # launch of each writes it.
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home), KERAS_EXPLORER_LOG_DIR=str(config_home / "log"),
               PYTHONPYCACHEPREFIX=str(config_home / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times, bare, tensorflow = [], [], False
    for repetition in range(WINDOW_REPETITIONS + 1):
        for argument, into in ((str(model), times if repetition else []), ("--bare", bare if repetition else [])):
            launch = time.time()
            process = subprocess.Popen([PYTHON, str(HERE / "first_window.py"), repr(launch), argument], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"first_window.py exited with {process.returncode}:\n{err[-3000:]}")
            data = last_json(out)
            into.append(data["window_shown_s"])
            tensorflow = tensorflow or data["tensorflow_imported"]
    value = report("window_shown_s", times, TARGETS_S["window_shown_s"])
    baseline = report("bare_window_shown_s", bare)
    ratio = round(value / baseline, 2)
    log(f"  window_shown_ratio: {ratio:.2f}{verdict(ratio, TARGET_RATIOS['window_shown_ratio'], '')}")
    log(f"  tensorflow imported when the window was shown: {tensorflow}")
    return {"window_shown_s": value, "bare_window_shown_s": baseline, "window_shown_ratio": ratio,
            "tensorflow_imported_at_window": tensorflow}


def measure_summary(paths: dict[str, Path]) -> dict[str, float]:
    log(f"summary: 'python -m explorer summary MODEL --json', whole process, {REPETITIONS} runs each")
    medians = {}
    for name, path in paths.items():
        times = []
        for _ in range(REPETITIONS):
            start = time.perf_counter()
            code = subprocess.call([PYTHON, "-m", "explorer", "summary", str(path), "--json"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
            if code != 0:
                raise RuntimeError(f"'explorer summary {path}' exited with {code}")
        medians[name] = report(name, times)
    return medians


def measure_plot_model(model: Path, out_dir: Path) -> tuple[float | None, str | None]:
    log(f"keras.utils.plot_model(show_shapes=True) on {model.stem}: {REPETITIONS} calls after loading (subprocess)")
    data = last_json(run([PYTHON, str(HERE / "plot_model_time.py"), str(model), str(out_dir),
                          str(REPETITIONS)]).stdout)
    if "error" in data:
        log(f"  plot_model not measured: {data['error']}")
        return None, data["error"]
    return report(f"plot_model_{model.stem}_s", data["times_s"]), None


# --------------------------------------------------------------------------- in-process GUI measurement


def measure_open_to_graph(paths: dict[str, Path], settings_file: Path) -> dict:
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from explorer.layout.graphviz import dot_source, run_dot
    from explorer.layout.view_graph import build_view
    from explorer.ui.canvas.scene import box_sizes
    from explorer.ui.main_window import MainWindow

    class PaintCounter(QObject):
        count = 0

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Keras Explorer")
    window = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat))
    window.show()
    wait(app, 0.3)  # let the empty window be exposed and painted before timing anything
    viewport = window.graph_view.viewport()
    painted = PaintCounter()
    viewport.installEventFilter(painted)

    def wait_for_idle_worker() -> None:
        """A running app: the user opens a file while the live tier is idle, not while it still imports
        TensorFlow or loads the previous model (that competes for the 2 cores and is not what is measured)."""
        deadline = time.perf_counter() + 180
        wait(app, 0.2)
        while window.live.state != WorkerState.READY and time.perf_counter() < deadline:
            wait(app, 0.1)

    def open_once(path: Path) -> tuple[float, float]:
        wait_for_idle_worker()
        loop = QEventLoop()
        failure: list[str] = []
        done: list[bool] = []

        def drawn() -> None:
            done.append(True)
            loop.quit()

        def failed(message: str) -> None:
            failure.append(message)
            loop.quit()

        window.graph_drawn.connect(drawn)
        window.session.failed.connect(failed)
        QTimer.singleShot(int(OPEN_TIMEOUT_S * 1000), loop.quit)
        start = time.perf_counter()
        window.open_model(path)
        if not done and not failure:
            loop.exec()
        signalled = time.perf_counter()
        before = painted.count
        viewport.repaint()  # synchronous: the graph is fully drawn when this returns
        end = time.perf_counter()
        window.graph_drawn.disconnect(drawn)
        window.session.failed.disconnect(failed)
        if failure or not done:
            raise RuntimeError(f"opening {path} failed: {failure[0] if failure else 'timed out'}")
        if painted.count == before:
            raise RuntimeError("the graph viewport was not repainted")
        return end - start, end - signalled

    log(f"open to graph drawn: MainWindow.open_model -> graph_drawn -> viewport repaint, {REPETITIONS} runs each")
    medians = {}
    peak_rss_mb = 0.0
    dot_medians = {}
    for name, path in paths.items():
        runs = [open_once(path) for _ in range(REPETITIONS)]
        totals = [total for total, _ in runs]
        medians[name] = report(name, totals, TARGETS_S.get(name))
        view = build_view(window.session.graph, window.session.expanded)
        source = dot_source(view, box_sizes(view))
        dot_runs = []
        for _ in range(REPETITIONS):
            start = time.perf_counter()
            run_dot(source)
            dot_runs.append(time.perf_counter() - start)
        dot_medians[name] = report(f"{name} dot alone (baseline: the same graph through dot -Tjson0)", dot_runs)
        floor = round(medians[name] / dot_medians[name], 2)
        log(f"    layout_floor_ratio: {floor:.2f}{verdict(floor, TARGET_RATIOS.get(name), '')}")
        items = len(window.graph_view.scene().items())
        log(f"    {items} scene items; viewport repaint alone: median {median([p for _, p in runs]):.3f} s")
        if name == "efficientnetb7":
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            log(f"  peak RSS of this GUI process after drawing efficientnetb7: {peak_rss_mb:.0f} MB")
    keras2 = round(medians["resnet50_keras2"] / medians["resnet50"], 2)
    log(f"  keras2_vs_keras3 (resnet50: Keras 2 .h5 over Keras 3 .keras): {keras2:.2f}"
        f"{verdict(keras2, TARGET_RATIOS['keras2_vs_keras3'], '')}")
    log(f"  tensorflow imported in the GUI process: {'tensorflow' in sys.modules}")
    viewport.removeEventFilter(painted)
    window.close()
    wait(app, 0.1)
    return {"open_to_graph_s": medians, "dot_alone_s": dot_medians,
            "layout_floor_ratio": {name: round(medians[name] / dot_medians[name], 2) for name in medians},
            "keras2_vs_keras3": keras2, "memory_rss_mb_after_efficientnetb7": round(peak_rss_mb, 1)}


def wait(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


# --------------------------------------------------------------------------- live activations (window + worker)


class LiveProbe:
    """Timestamps of one window's live-tier traffic, to split a first activation into its parts.

    Wraps (on this instance only) ``LiveClient.compute`` (when the request left the GUI thread) and the tier's
    event callback (when the answer was unpickled on the reader thread; ``Activation.seconds`` is the worker's
    own time for building the extractor and running it).
    """

    def __init__(self, window) -> None:
        from explorer.live.protocol import Activation

        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.worker_s: dict[int, float] = {}
        self.lost: list[str] = []
        client, tier = window.live, window.live.tier
        compute, on_event = client.compute, tier.on_event

        def timed_compute(layer: str, call_site: tuple[int, ...], inputs: dict) -> int:
            start = time.perf_counter()
            request = compute(layer, call_site, inputs)
            self.sent[request] = start
            return request

        def timed_event(event: object) -> None:
            if isinstance(event, Activation):
                self.received[event.request] = time.perf_counter()
                self.worker_s[event.request] = event.seconds
            on_event(event)

        client.compute = timed_compute
        tier.on_event = timed_event
        client.worker_lost.connect(self.lost.append)

    def last_request(self) -> int | None:
        return max(self.sent) if self.sent else None

    def parts(self, total: float, signalled: float) -> dict[str, float]:
        """The last click split up: worker (build + run), IPC (pickling, pipes and unpickling both ways, the
        worker's status messages), GUI (``session.select`` before the request left, then the queued signal reaching
        the GUI thread and ``show_output``), paint (``grab``)."""
        request = self.last_request()
        sent, received, worker = self.sent[request], self.received[request], self.worker_s[request]
        return {"total": total, "worker": worker, "ipc": received - sent - worker,
                "gui": signalled - (received - sent), "paint": total - signalled}


PARTS_HEADER = f"{'total':>7} {'worker':>7} {'IPC':>7} {'GUI':>7} {'paint':>7}"


def parts_text(parts: dict[str, float]) -> str:
    return " ".join(f"{parts[key]:7.3f}" for key in ("total", "worker", "ipc", "gui", "paint"))


def wait_until(app, condition: Callable[[], bool], timeout: float, what: str,
               failure: Callable[[], str | None] = lambda: None) -> None:
    end = time.perf_counter() + timeout
    while not condition():
        problem = failure()
        if problem:
            raise RuntimeError(f"{what}: {problem}")
        if time.perf_counter() > end:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.005)


def live_window(app, model: Path, settings_file: Path):
    """A shown MainWindow with its live tier started, ``model`` drawn and loaded in the worker, the image set."""
    from PySide6.QtCore import QSettings

    from explorer.ui.main_window import MainWindow

    window = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat), start_live=True)
    probe = LiveProbe(window)
    window.show()
    drawn, failed, loaded = [], [], []
    window.graph_drawn.connect(lambda: drawn.append(True))
    window.session.failed.connect(failed.append)
    window.live.model_loaded.connect(loaded.append)

    def problem() -> str | None:
        if failed:
            return failed[0]
        if window.live.state == WorkerState.FAILED or probe.lost:
            return f"live tier failed ({window.activations.status.toolTip() or probe.lost})"
        return None

    start = time.perf_counter()
    window.open_model(model)
    wait_until(app, lambda: bool(drawn), OPEN_TIMEOUT_S, f"drawing {model.name}", problem)
    wait_until(app, lambda: bool(loaded) and window.live.state == WorkerState.READY, LIVE_TIMEOUT_S,
               f"loading {model.name} in the worker", problem)
    log(f"  {model.stem}: worker started and model loaded {time.perf_counter() - start:.1f} s after open_model "
        f"(worker pid {window.live.tier.pid})")
    window.open_image(IMAGE)
    if window.session.image is None or not window.session.inputs:
        raise RuntimeError(f"the image {IMAGE} was not set as the input")
    wait(app, 0.3)  # let the window settle (input preview, status) before timing anything
    return window, probe


def click_layer(app, window, path: str, timeout: float = LIVE_TIMEOUT_S) -> tuple[float, float]:
    """``session.select(path)`` until the activations panel shows it, then ``grab()`` of its view.

    Returns (until painted, until the ``shown`` signal)."""
    from PySide6.QtCore import QEventLoop, QTimer

    panel = window.activations
    loop = QEventLoop()
    shown: list[float] = []
    failures: list[str] = []

    def on_shown(layer: str) -> None:
        if layer == path:
            shown.append(time.perf_counter())
            loop.quit()

    def on_failed(message: str) -> None:
        failures.append(message)
        loop.quit()

    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    panel.shown.connect(on_shown)
    panel.failed.connect(on_failed)
    window.live.worker_lost.connect(on_failed)
    start = time.perf_counter()
    window.session.select(path)
    if not shown and not failures:
        timer.start(int(timeout * 1000))
        loop.exec()
        timer.stop()
    panel.view.grab()  # forced repaint of the activations view
    end = time.perf_counter()
    panel.shown.disconnect(on_shown)
    panel.failed.disconnect(on_failed)
    window.live.worker_lost.disconnect(on_failed)
    if failures or not shown:
        raise RuntimeError(f"layer {path}: {failures[0] if failures else 'not shown in time'}")
    return end - start, shown[0] - start


def close_window(app, window) -> None:
    window.close()  # stops the worker
    wait(app, 0.1)
    window.deleteLater()
    wait(app, 0.1)


class PlainKeras:
    """The plain-Keras baseline process (``forward_time.py``): the model loaded, one layer cut and called on
    request, so each measurement sits right beside the window's for the same layer."""

    def __init__(self, model: Path, fed: Path, tf_keras: bool, stderr: Path) -> None:
        self._stderr = stderr.open("w")
        self.process = subprocess.Popen(
            [PYTHON, str(HERE / "forward_time.py"), str(model), str(fed), *(["--tf-keras"] if tf_keras else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.load_s = self._answer()["load_s"]

    def first_activation(self, layer: str) -> dict:
        self.process.stdin.write(layer + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise RuntimeError(f"forward_time.py exited with {self.process.returncode}:\n"
                               f"{Path(self._stderr.name).read_text()[-3000:]}")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self._stderr.close()


def measure_first_activations(app, model: Path, scratch: Path, keras2: bool = False) -> dict:
    """The window's first activations against plain Keras cutting the same layers (tf-keras for a Keras 2
    file), layer by layer: each window click is followed at once by the baseline's cut of that layer."""
    import numpy as np

    suffix = "_keras2" if keras2 else ""
    plain_name = "tf-keras" if keras2 else "Keras"
    log(f"first activations: {model.name} in a window with the live tier, session.select -> shown -> grab, "
        f"one new layer each time ({', '.join(RESNET_LAYERS)}), after {RESNET_WARMUP_LAYER}; after each click, "
        f"plain {plain_name} in its own process (forward_time.py) builds the extractor for the same layer and "
        "calls it once on the array the window fed the worker")
    started = time.perf_counter()
    window, probe = live_window(app, model, scratch / f"live{suffix}-settings.ini")
    load_s = round(time.perf_counter() - started, 3)
    plain = None
    try:
        fed = scratch / f"{model.stem}_input.npy"
        np.save(fed, next(iter(window.session.inputs.values())).array)
        plain = PlainKeras(model, fed, keras2, scratch / f"forward_time{suffix}.err")
        cold, _ = click_layer(app, window, RESNET_WARMUP_LAYER)
        cold_worker = probe.worker_s[probe.last_request()]
        cold_plain = plain.first_activation(RESNET_WARMUP_LAYER)["total_s"]
        log(f"  {RESNET_WARMUP_LAYER} (first layer since the model loaded; not in the median): {cold:.3f} s, "
            f"worker {cold_worker:.3f} s; plain {plain_name} {cold_plain:.3f} s")
        log(f"    {'layer':18} {PARTS_HEADER} | {'plain':>7} {'build':>7} {'call':>7} {'2nd call':>8} | ratio"
            "   (worker: build extractor + run; IPC: pickling, pipes both ways; GUI: session.select, queued "
            "signal, show_output; paint: grab)")
        rows, plains = [], []
        for layer in RESNET_LAYERS:
            rows.append(probe.parts(*click_layer(app, window, layer)))
            plains.append(plain.first_activation(layer))
            row, base = rows[-1], plains[-1]
            log(f"    {layer:18} {parts_text(row)} | {base['total_s']:7.3f} {base['build_s']:7.3f} "
                f"{base['call_s']:7.3f} {base['second_call_s']:8.3f} | {row['total'] / base['total_s']:.2f}")
        first = report(f"first_activation{suffix}_s", [row["total"] for row in rows])
        forward = report(f"forward{suffix}_s", [base["total_s"] for base in plains])

        computed = [RESNET_WARMUP_LAYER, *RESNET_LAYERS]  # the last one is selected now: start elsewhere
        requests = len(probe.sent)
        switches = [click_layer(app, window, computed[i % len(computed)], timeout=10.0)[0]
                    for i in range(CACHED_SWITCHES)]
        if len(probe.sent) != requests:
            raise RuntimeError("switching back to computed layers sent requests to the worker: not cached")
        cached = report(f"cached_switch{suffix}_s", switches, TARGETS["cached_switch_s"])
    finally:
        if plain is not None:
            plain.close()
        close_window(app, window)

    ratios = [row["total"] / base["total_s"] for row, base in zip(rows, plains, strict=True)]
    ratio = round(statistics.median(ratios), 3)
    log(f"  activation_ratio{suffix} (median of the per-layer ratios): {ratio:.2f}"
        f"{verdict(ratio, TARGETS['activation_ratio'], '')}; the ratio of the two medians: {first / forward:.2f}")
    log(f"  open to model loaded in the worker: {load_s:.2f} s; plain load in the baseline process: "
        f"{plain.load_s:.2f} s")
    return {f"first_activation{suffix}_s": first, f"forward{suffix}_s": forward, f"activation_ratio{suffix}": ratio,
            f"cached_switch{suffix}_s": cached, f"first_activation_cold{suffix}_s": round(cold, 4),
            f"first_activation_worker{suffix}_s": median([row["worker"] for row in rows]),
            f"open_to_loaded{suffix}_s": load_s}


def measure_conversion(model: Path, scratch: Path) -> dict:
    log(f"one-time conversion of {model.name} to Keras 3 (conversion_time.py, subprocess; the worker does it on "
        "the first export, Save as Keras 3, attribution or per-layer numbers, never for activations)")
    data = last_json(run([PYTHON, str(HERE / "conversion_time.py"), str(model), str(scratch)]).stdout)
    rebuild, save, plain = data["rebuild_check_s"], data["save_verify_s"], data["plain_load_s"]
    log(f"  load with tf-keras {data['load_s']:.2f} s; Keras 3 rebuild + check {rebuild:.2f} s; Save as Keras 3 "
        f"(write + reload in a fresh process + compare) {save:.2f} s; baseline, a plain tf-keras load of the file: "
        f"{plain:.2f} s, so the rebuild costs {rebuild / plain:.2f} plain loads")
    return {"keras3_rebuild_check_keras2_s": round(rebuild, 3), "save_as_keras3_keras2_s": round(save, 3),
            "plain_load_keras2_s": round(plain, 3), "rebuild_vs_load_keras2": round(rebuild / plain, 3)}


def measure_grid_draw(app) -> float:
    import numpy as np

    from explorer.ui.activations.feature_view import FeatureView

    log(f"channel grid: FeatureView.show_output of a {GRID_SHAPE} float32 array + grab(), {GRID_REPETITIONS} runs")
    view = FeatureView()
    view.resize(620, 640)  # about the activations dock
    view.show()
    wait(app, 0.2)
    rng = np.random.default_rng(0)
    times = []
    for index in range(GRID_REPETITIONS):
        array = np.maximum(rng.standard_normal(GRID_SHAPE, dtype=np.float32), 0)  # ReLU-like, some dead pixels
        start = time.perf_counter()
        view.show_output(f"conv5_block3_out #{index}", array)
        view.grab()
        times.append(time.perf_counter() - start)
        wait(app, 0.05)
    if view.tile_count != GRID_SHAPE[-1]:
        raise RuntimeError(f"the grid shows {view.tile_count} tiles, not {GRID_SHAPE[-1]}")
    view.close()
    view.deleteLater()
    return report("grid_2048_channels_draw_s", times, TARGETS["grid_2048_channels_draw_s"])


def peak_rss_bytes(pid: int | None) -> int:
    """High-water mark of a process's resident memory (Linux)."""
    from explorer.live.client import proc_status_bytes

    return proc_status_bytes(pid, "VmHWM:")


def measure_effb7_memory(app, model: Path, scratch: Path) -> float:
    log(f"worker memory: {len(EFFB7_LAYERS)} layers of {model.stem} one after another in a fresh window")
    window, probe = live_window(app, model, scratch / "effb7-settings.ini")
    try:
        pid = window.live.tier.pid
        log(f"  worker peak RSS with the model loaded: {peak_rss_bytes(pid) / 2**30:.2f} GB")
        log(f"    {'layer':26} {'output':16} {PARTS_HEADER} {'peak GB':>8}")
        for layer in EFFB7_LAYERS:
            parts = probe.parts(*click_layer(app, window, layer))
            shape = tuple(window.activations.outputs[0].shape)
            log(f"    {layer:26} {shape!s:16} {parts_text(parts)} {peak_rss_bytes(pid) / 2**30:8.2f}")
        if window.live.tier.pid != pid or probe.lost:
            raise RuntimeError(f"the worker was restarted ({probe.lost}): its peak memory is lost")
        peak = round(peak_rss_bytes(pid) / 2**30, 3)
    finally:
        close_window(app, window)
    log(f"  effb7_10_layers_peak_gb: {peak:.2f} GB{verdict(peak, TARGETS['effb7_10_layers_peak_gb'], ' GB')}")
    return peak


def measure_activations(paths: dict[str, Path], scratch: Path) -> dict:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Keras Explorer")
    results = measure_first_activations(app, paths["resnet50"], scratch)
    results.update(measure_first_activations(app, paths["resnet50_keras2"], scratch, keras2=True))
    results.update(measure_conversion(paths["resnet50_keras2"], scratch))
    results["grid_2048_channels_draw_s"] = measure_grid_draw(app)
    results["effb7_10_layers_peak_gb"] = measure_effb7_memory(app, paths["efficientnetb7"], scratch)
    log(f"  tensorflow imported in the GUI process: {'tensorflow' in sys.modules}")
    return results


# --------------------------------------------------------------------------- features (CLI vs a plain Keras loop)


def feature_images() -> Path:
    from feature_images import make_images  # benchmarks/ is on sys.path: bench.py runs as a script

    folder = CACHE / f"features-images-{FEATURE_IMAGES}"
    made, seconds = make_images(folder, FEATURE_IMAGES)
    log(f"  {'made' if made else 'reusing'} {FEATURE_IMAGES} JPEGs (224x224, quality 90) in {folder}"
        + (f" ({seconds:.1f} s)" if made else ""))
    return folder


def npz_array_header(path: Path, name: str) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of one array of an uncompressed .npz, read from its header only (not 800 MB)."""
    import numpy as np

    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(member)
    return tuple(shape), str(dtype)


def features_line(stdout: str, count: int) -> tuple[str, float]:
    """(feature shape, images/s) from the last line 'explorer features' prints; fails unless it kept all."""
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    found = re.search(r": (\d+) images, features \(([\d, ]+)\), ([\d.]+) images/s, (\d+) skipped$", last)
    if not found:
        raise RuntimeError(f"unexpected last line from 'explorer features': {last!r}")
    images, shape, rate, skipped = found.groups()
    if int(images) != count or int(skipped):
        raise RuntimeError(f"'explorer features' kept {images} of {count} images and skipped {skipped}: {last!r}")
    return shape, float(rate)


def run_features_cli(model: Path, folder: Path, out: Path) -> tuple[float, float]:
    """One ``python -m explorer features`` process: (images/s it prints, whole-process wall seconds)."""
    args = [PYTHON, "-m", "explorer", "features", str(model), "--layer", FEATURES_LAYER, "--images", str(folder),
            "--preprocess", "caffe", "--batch-size", str(FEATURES_BATCH), "-o", str(out)]
    start = time.perf_counter()
    result = run(args, timeout=FEATURES_TIMEOUT_S)
    wall = time.perf_counter() - start
    shape, rate = features_line(result.stdout, FEATURE_IMAGES)
    written = npz_array_header(out, "features")
    if written[0][0] != FEATURE_IMAGES or written[1] != "float32" or str(written[0][1:]) != f"({shape})":
        raise RuntimeError(f"{out.name} holds features {written}, the CLI printed ({shape}) per image")
    size_mb = out.stat().st_size / 1e6
    out.unlink()  # 800 MB
    log(f"    CLI     {float(rate):6.2f} images/s   whole process {wall:6.1f} s   ({written[0]} {written[1]}, "
        f"{size_mb:.0f} MB .npz)")
    return float(rate), wall


def run_plain_features(model: Path, folder: Path, way: str) -> float:
    data = last_json(run([PYTHON, str(HERE / "plain_features.py"), str(model), FEATURES_LAYER, str(folder),
                          "--batch-size", str(FEATURES_BATCH), "--way", way], timeout=FEATURES_TIMEOUT_S).stdout)
    if data["images"] != FEATURE_IMAGES:
        raise RuntimeError(f"plain_features.py ran {data['images']} images, not {FEATURE_IMAGES}")
    parts = ", ".join(f"{key} {value:.1f}" for key, value in data["parts_s"].items())
    log(f"    plain   {data['images_per_s']:6.2f} images/s   loop {data['loop_s']:6.1f} s   ({way}; {parts} s; "
        f"first batch {data['first_batch_s']:.1f} s)")
    return data["images_per_s"]


@dataclass
class EngineRun:
    """One ``explorer features --engine ENGINE -o OUT/`` process, its output read back with pyarrow."""

    engine: str
    rate: float  # the images/s it printed
    wall_s: float  # the whole process
    peak_mb: float  # summed VmRSS of its process tree at the peak
    pss_mb: float
    parts_s: dict[str, float | None]  # where its time went (see ray_parts, local_parts)
    steady: float | None  # images/s of the extraction: Ray's (see ray_parts), local's after its first batch
    paths: list[str]  # the rows' paths, sorted
    features: object  # numpy (rows, size) float32, in the order of paths
    note: str  # the parts and the memory, for the log


def engine_run(model: Path, layer: str, folder: Path, count: int, out: Path, engine: str, *, pool: str,
               preprocess: str | None = None, workers: int | None = None) -> EngineRun:
    """Run the CLI into the folder ``out`` (removed afterwards), watching its process tree; fails loudly
    unless it printed and wrote ``count`` rows, one per image of ``folder``."""
    from process_tree import run_watched

    args = [PYTHON, "-m", "explorer", "features", str(model), "--layer", layer, "--images", str(folder),
            "--batch-size", str(FEATURES_BATCH), "--pool", pool, "-o", f"{out}{os.sep}", "--engine", engine]
    args += ["--preprocess", preprocess] if preprocess else []
    args += ["--workers", str(workers)] if workers else []
    watched = run_watched(args, FEATURES_TIMEOUT_S)
    if watched.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {watched.returncode}:\n{watched.stderr_tail()}")
    _, rate = features_line(watched.stdout, count)
    paths, features = read_feature_folder(out)
    shutil.rmtree(out)
    expected = sorted(str(path.resolve()) for path in folder.iterdir() if path.is_file())
    if paths != expected:
        missing, extra = len(set(expected) - set(paths)), len(paths) - len(set(paths))
        raise RuntimeError(f"{engine}: {out} holds {len(paths)} rows for the {len(expected)} images of {folder} "
                           f"({missing} images missing, {extra} duplicate rows)")
    parts, steady, text = ray_parts(watched, count) if engine == "ray" else local_parts(watched)
    memory = f"peak {watched.peak_rss_bytes / 2**20:.0f} MB RSS ({watched.peak_pss_bytes / 2**20:.0f} MB PSS"
    tops = sorted(watched.peak_parts.items(), key=lambda item: -item[1])
    memory += f"; {watched.processes} processes at most: " + ", ".join(
        f"{name} {size / 2**20:.0f}" for name, size in tops[:4]) + (", ..." if len(tops) > 4 else "") + ")"
    cpu = sorted(watched.cpu_s.items(), key=lambda item: -item[1])
    memory += f"; CPU {sum(watched.cpu_s.values()):.0f} s: " + ", ".join(
        f"{name} {seconds:.1f}" for name, seconds in cpu[:5]) + (", ..." if len(cpu) > 5 else "")
    if watched.left_running:
        memory += f"; LEFT RUNNING after exit: {', '.join(watched.left_running)}"
        LEFT_RUNNING.extend(f"{engine}: {process}" for process in watched.left_running)
    return EngineRun(engine, rate, watched.wall_s, round(watched.peak_rss_bytes / 2**20, 1),
                     round(watched.peak_pss_bytes / 2**20, 1), parts, steady, paths, features, f"{text}; {memory}")


def read_feature_folder(out: Path) -> tuple[list[str], object]:
    """(paths sorted, their features as a (rows, size) float32 array) of a Parquet dataset folder."""
    import numpy as np
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet").to_table(columns=["path", "features"])  # "_skipped/" is ignored
    paths = table.column("path").to_pylist()
    column = table.column("features").combine_chunks()
    features = column.flatten().to_numpy().reshape(len(paths), column.type.list_size)
    order = np.argsort(np.array(paths, dtype=object), kind="stable")
    return [paths[i] for i in order], features[order]


def compare_outputs(local: EngineRun, ray: EngineRun) -> str:
    import numpy as np

    if local.paths != ray.paths:
        raise RuntimeError(f"the engines wrote different paths ({len(set(local.paths) ^ set(ray.paths))} differ)")
    difference = float(np.max(np.abs(local.features - ray.features))) if local.paths else 0.0
    scale = float(np.max(np.abs(local.features))) if local.paths else 0.0
    return (f"both folders: {len(local.paths)} rows, the same paths; features max abs difference "
            f"{difference:.2g} (largest value {scale:.3g})")


def ray_data_times(watched) -> tuple[list[float], list[float]]:
    """Seconds since the process started at which Ray Data handed each block to the extractor actor and each
    extracted block to a write task (from its log, ``<session>/logs/ray-data/ray-data.log``)."""
    from datetime import datetime

    line = watched.first(r"Full logs are in ")
    if line is None:
        return [], []
    log_file = Path(re.search(r"Full logs are in (\S+)", line[1]).group(1)) / "ray-data.log"
    maps, writes = [], []
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return [], []
    for found in re.finditer(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\s.*Executing map task of operator "
                             r"(MapBatches|Write)", text, re.MULTILINE):
        seconds = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - watched.started_at
        (maps if found.group(2) == "MapBatches" else writes).append(seconds)
    return sorted(maps), sorted(writes)


def ray_parts(watched, count: int) -> tuple[dict[str, float | None], float | None, str]:
    """The Ray process's wall time in parts: up to the extractor exported (start-up, model load, export and
    check), Ray's start (ray.init, the extractor into the object store, the dataset planned), the actors'
    start (worker processes, their TensorFlow import, the extractor loaded and its predict function built),
    the extraction (the first block handed to an actor until the dataset finished: decoding, inference and
    writing, the actor running two blocks at once), and Ray's shutdown and the process exit. Also the
    extraction's images/s."""
    exported = watched.first(r"^extractor for the workers:")
    executing = watched.first(r"Starting execution of Dataset")
    finished = watched.last(r"execution finished in")
    maps, writes = ray_data_times(watched)
    marks = [0.0, exported and exported[0], executing and executing[0], maps[0] if maps else None,
             finished and finished[0], watched.wall_s]
    names = ("before_ray", "ray_start", "actor_start", "extraction", "shutdown_exit")
    parts = {name: (round(end - start, 3) if start is not None and end is not None else None)
             for name, start, end in zip(names, marks, marks[1:], strict=False)}
    text = ", ".join(f"{name.replace('_', ' ')} {'?' if value is None else f'{value:.1f}'}"
                     for name, value in parts.items()) + " s"
    rate = count / parts["extraction"] if parts["extraction"] else None
    if rate is not None:
        text += f"; extraction {rate:.1f} images/s"
    if maps and writes:
        text += (f", its {len(writes)} blocks written {writes[0] - maps[0]:.1f} to {writes[-1] - maps[0]:.1f} s "
                 "after the first was handed out")
    return parts, rate, text


def local_parts(watched) -> tuple[dict[str, float | None], float | None, str]:
    """The local process's wall time in parts: up to the first batch shown by the progress bar (start-up,
    model load, the extractor built, the first batch and its trace), the other batches, and the exit."""
    progress = [(t, int(m.group(1))) for t, line in watched.lines
                if (m := re.search(r"\] (\d+)/\d+ images, ", line))]
    if not progress:
        return {"to_first_batch": None, "other_batches": None, "exit": None}, None, "no progress lines"
    (first, first_done), (last, last_done) = progress[0], progress[-1]
    parts = {"to_first_batch": round(first, 3), "other_batches": round(last - first, 3),
             "exit": round(watched.wall_s - last, 3)}
    steady = (last_done - first_done) / max(last - first, 1e-9)
    return parts, steady, (f"to the first batch {first:.1f}, other batches {last - first:.1f}, exit "
                   f"{watched.wall_s - last:.1f} s; {steady:.1f} images/s after the first batch")


def engines_round(model: Path, folder: Path, scratch: Path, first_round: bool) -> dict[str, EngineRun]:
    """The local engine, then Ray (and, in the first round, Ray with RAY_WORKERS_TRIED), into Parquet folders."""
    common = {"pool": ENGINE_POOL, "preprocess": "caffe"}
    runs = {"local": engine_run(model, FEATURES_LAYER, folder, FEATURE_IMAGES, scratch / "engine-local", "local",
                                **common)}
    for workers in (RAY_WORKERS, *(RAY_WORKERS_TRIED if first_round else ())):
        runs[f"ray{workers}"] = engine_run(model, FEATURES_LAYER, folder, FEATURE_IMAGES, scratch / "engine-ray",
                                           "ray", workers=workers, **common)
    for name, result in runs.items():
        label = "local" if name == "local" else f"ray -w{name[3:]}"
        log(f"    {label:8}{result.rate:6.2f} images/s   whole process {result.wall_s:6.1f} s   ({result.note})")
    log(f"    {compare_outputs(runs['local'], runs[f'ray{RAY_WORKERS}'])}")
    return runs


def series(runs: list[EngineRun], key: str) -> str:
    return ", ".join(f"{getattr(run, key):.2f}" for run in runs)


def median_parts(runs: list[EngineRun]) -> dict[str, float | None]:
    parts = {}
    for name in runs[0].parts_s:
        values = [run.parts_s[name] for run in runs if run.parts_s[name] is not None]
        parts[name] = median(values) if values else None
    return parts


def parts_line(parts: dict[str, float | None]) -> str:
    return ", ".join(f"{name} {'?' if value is None else f'{value:.1f}'}" for name, value in parts.items()) + " s"


def measure_engines(rounds: list[dict[str, EngineRun]], npz_rate: float) -> dict:
    local = [r["local"] for r in rounds]
    ray = [r[f"ray{RAY_WORKERS}"] for r in rounds]
    ours, theirs = (round(statistics.median(x.rate for x in runs), 3) for runs in (ray, local))
    ratio = round(ours / theirs, 3)
    log(f"  features_local_parquet_images_per_s: median {theirs:.2f}  [{series(local, 'rate')}]  (the baseline; "
        f"the .npz run, --pool none: {npz_rate:.2f})")
    log(f"  features_ray_images_per_s: median {ours:.2f}  [{series(ray, 'rate')}]  (--workers {RAY_WORKERS})")
    log(f"  ray_vs_local: {ratio:.2f}  (target >= {TARGET_RAY_VS_LOCAL}: "
        f"{'met' if ratio >= TARGET_RAY_VS_LOCAL else 'MISSED'})")
    results = {"features_local_parquet_images_per_s": theirs, "features_ray_images_per_s": ours,
               "ray_vs_local": ratio,
               "features_local_parquet_process_s": median([x.wall_s for x in local]),
               "features_ray_process_s": median([x.wall_s for x in ray])}
    log(f"  features_local_parquet_process_s: median {results['features_local_parquet_process_s']:.1f} s  "
        f"[{series(local, 'wall_s')}];  features_ray_process_s: median {results['features_ray_process_s']:.1f} s"
        f"  [{series(ray, 'wall_s')}]")
    log(f"  ray/local per round: {', '.join(f'{r.rate / x.rate:.2f}' for r, x in zip(ray, local, strict=True))}")
    ray_steady, local_steady = ([x.steady for x in runs if x.steady is not None] for runs in (ray, local))
    if ray_steady and local_steady:
        value = round(statistics.median(ray_steady) / statistics.median(local_steady), 3)
        results["ray_vs_local_extraction"] = value
        log(f"  ray_vs_local_extraction: {value:.2f}  (once started: Ray {statistics.median(ray_steady):.2f} "
            f"images/s from the first block handed to its actor to the dataset finished "
            f"[{', '.join(f'{v:.2f}' for v in ray_steady)}], local {statistics.median(local_steady):.2f} from its "
            f"first batch to its last [{', '.join(f'{v:.2f}' for v in local_steady)}])")
    results["features_ray_parts_s"] = median_parts(ray)
    log(f"  features_ray_parts_s (median): {parts_line(results['features_ray_parts_s'])}")
    log(f"  the local engine's parts (median): {parts_line(median_parts(local))}")
    for workers in RAY_WORKERS_TRIED:
        tried = rounds[0][f"ray{workers}"]
        results[f"features_ray_workers{workers}_images_per_s"] = round(tried.rate, 3)
        log(f"  features_ray_workers{workers}_images_per_s: {tried.rate:.2f} (once; --workers {RAY_WORKERS} in "
            f"that round: {rounds[0][f'ray{RAY_WORKERS}'].rate:.2f})")
    return results


def small_image_folder(count: int) -> Path:
    from feature_images import make_images  # benchmarks/ is on sys.path: bench.py runs as a script

    folder = CACHE / f"features-png{SMALL_IMAGE_SIDE}-{count}"
    made, seconds = make_images(folder, count, small=SMALL_IMAGE_SIDE)
    log(f"  {'made' if made else 'reusing'} {count} PNGs ({SMALL_IMAGE_SIDE}x{SMALL_IMAGE_SIDE}) in {folder}"
        + (f" ({seconds:.1f} s)" if made else ""))
    return folder


def measure_engine_memory(scratch: Path) -> dict:
    log(f"features memory: peak RSS of the whole process tree, 'explorer features {MEMORY_MODEL.name} --layer "
        f"{MEMORY_LAYER} --batch-size {FEATURES_BATCH} -o OUT/', local and --engine ray --workers {RAY_WORKERS}, "
        f"over {' and '.join(f'{count:,}' for count in MEMORY_COUNTS)} PNGs")
    peaks: dict[str, dict[int, float]] = {"local": {}, "ray": {}}
    for count in MEMORY_COUNTS:
        folder = small_image_folder(count)
        runs = {}
        for engine in peaks:
            runs[engine] = engine_run(MEMORY_MODEL, MEMORY_LAYER, folder, count, scratch / f"memory-{engine}",
                                      engine, pool="none", workers=RAY_WORKERS if engine == "ray" else None)
            peaks[engine][count] = runs[engine].peak_mb
            log(f"    {engine:6} {count:6} images: {runs[engine].rate:7.1f} images/s   whole process "
                f"{runs[engine].wall_s:5.1f} s   ({runs[engine].note})")
        log(f"    {compare_outputs(runs['local'], runs['ray'])}")
    results: dict = {}
    small, large = MEMORY_COUNTS
    for engine, peak in peaks.items():
        for count in MEMORY_COUNTS:
            results[f"features_{engine}_peak_mb_{count // 1000}k"] = peak[count]
        growth = round(peak[large] / peak[small], 3)
        results[f"features_{engine}_peak_growth"] = growth
        log(f"  features_{engine}_peak_mb_{small // 1000}k: {peak[small]:.0f} MB, "
            f"features_{engine}_peak_mb_{large // 1000}k: {peak[large]:.0f} MB; features_{engine}_peak_growth "
            f"{growth:.2f}{verdict(growth, TARGET_MEMORY_GROWTH, '')}")
    return results


def measure_features(model: Path, scratch: Path) -> dict:
    log(f"features: 'python -m explorer features {model.name} --layer {FEATURES_LAYER} --preprocess caffe "
        f"--batch-size {FEATURES_BATCH}' vs a plain Keras loop (plain_features.py), {FEATURES_ROUNDS} rounds")
    folder = feature_images()
    cli_rates, process_times = [], []
    plain: dict[str, list[float]] = {way: [] for way in PLAIN_WAYS}
    faster = None
    engine_rounds = []
    for round_index in range(FEATURES_ROUNDS):
        log(f"  round {round_index + 1} ({load_average()})")
        rate, wall = run_features_cli(model, folder, scratch / "features.npz")
        cli_rates.append(rate)
        process_times.append(wall)
        for way in PLAIN_WAYS if faster is None else (faster,):
            plain[way].append(run_plain_features(model, folder, way))
        if faster is None:
            faster = max(PLAIN_WAYS, key=lambda way: plain[way][0])
            log(f"    plain way for the next rounds: {faster} (the faster one here)")
        engine_rounds.append(engines_round(model, folder, scratch, round_index == 0))
    ours = round(statistics.median(cli_rates), 3)
    theirs = round(statistics.median(plain[faster]), 3)
    log(f"  features_images_per_s: median {ours:.2f}  [{', '.join(f'{r:.2f}' for r in cli_rates)}]")
    log(f"  features_process_s: median {median(process_times):.1f} s  "
        f"[{', '.join(f'{t:.1f}' for t in process_times)}]")
    for way, rates in plain.items():
        log(f"  plain Keras, {way}: median {statistics.median(rates):.2f} images/s  "
            f"[{', '.join(f'{r:.2f}' for r in rates)}]")
    ratio = round(ours / theirs, 3)
    log(f"  plain_keras_images_per_s: {theirs:.2f} ({faster})  (target features_images_per_s >= "
        f"plain_keras_images_per_s: {'met' if ours >= theirs else 'MISSED'}, ratio {ratio:.2f})")
    results = {"features_images_per_s": ours, "features_process_s": median(process_times),
               "plain_keras_images_per_s": theirs, "plain_keras_way": faster, "features_vs_plain": ratio,
               "plain_keras_ways_images_per_s": {way: round(statistics.median(rates), 3)
                                                 for way, rates in plain.items()}}
    log(f"features engines: the local engine and --engine ray into Parquet folders (-o OUT/, --pool {ENGINE_POOL}, "
        f"--batch-size {FEATURES_BATCH}), the same {FEATURE_IMAGES} JPEGs, in the rounds above")
    results.update(measure_engines(engine_rounds, ours))
    results.update(measure_engine_memory(scratch))
    results["features_processes_left_running"] = len(LEFT_RUNNING)
    log(f"  features_processes_left_running: {len(LEFT_RUNNING)}"
        + (f" ({', '.join(LEFT_RUNNING)})  (expected 0: MISSED)" if LEFT_RUNNING else "  (expected 0: met)"))
    return results


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description="Keras Explorer benchmarks; the last line printed is JSON.")
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run these steps only")
    chosen = parser.parse_args().only or STEPS
    log(f"Keras Explorer benchmarks ({PYTHON}, QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}, {load_average()})")
    paths = build_models()
    with tempfile.TemporaryDirectory(prefix="keras-explorer-bench-") as scratch:
        scratch_dir = Path(scratch)
        results: dict = {}

        def window() -> None:
            results.update(measure_window_shown(paths["resnet50"], scratch_dir / "config"))

        def gui() -> None:
            results.update(measure_open_to_graph(paths, scratch_dir / "settings.ini"))

        def summary() -> None:
            results["summary_s"] = measure_summary(paths)

        def plot_model() -> None:
            value, error = measure_plot_model(paths["resnet50"], scratch_dir / "plots")
            results["plot_model_resnet50_s"] = value
            if error:
                results["plot_model_error"] = error

        def activations() -> None:
            results.update(measure_activations(paths, scratch_dir))

        def features() -> None:
            results.update(measure_features(paths["resnet50"], scratch_dir))

        def attribution() -> None:
            results.update(measure_attribution(paths))

        steps: dict[str, Callable[[], None]] = {"window": window, "gui": gui, "activations": activations,
                                                "summary": summary, "plot_model": plot_model,
                                                "features": features, "attribution": attribution}
        for name in chosen:
            with OtherLoad():
                steps[name]()
    log(f"done ({load_average()}: other work on the machine makes the numbers noisy)")
    order = ("window_shown_s", "bare_window_shown_s", "window_shown_ratio", "tensorflow_imported_at_window",
             "open_to_graph_s", "dot_alone_s", "layout_floor_ratio", "keras2_vs_keras3", "summary_s",
             "plot_model_resnet50_s", "plot_model_error", "memory_rss_mb_after_efficientnetb7",
             "first_activation_s", "forward_s", "activation_ratio", "cached_switch_s", "grid_2048_channels_draw_s",
             "effb7_10_layers_peak_gb", "first_activation_cold_s", "first_activation_worker_s", "open_to_loaded_s",
             "first_activation_keras2_s", "forward_keras2_s", "activation_ratio_keras2", "cached_switch_keras2_s",
             "first_activation_cold_keras2_s", "first_activation_worker_keras2_s", "open_to_loaded_keras2_s",
             "keras3_rebuild_check_keras2_s", "save_as_keras3_keras2_s", "plain_load_keras2_s",
             "rebuild_vs_load_keras2",
             "features_images_per_s", "features_process_s", "plain_keras_images_per_s", "plain_keras_way",
             "features_vs_plain", "plain_keras_ways_images_per_s", "features_local_parquet_images_per_s",
             "features_ray_images_per_s", "ray_vs_local", "ray_vs_local_extraction", "features_local_parquet_process_s",
             "features_ray_process_s", "features_ray_parts_s",
             *(f"features_ray_workers{n}_images_per_s" for n in RAY_WORKERS_TRIED),
             "features_local_peak_mb_1k", "features_local_peak_mb_10k", "features_local_peak_growth",
             "features_ray_peak_mb_1k", "features_ray_peak_mb_10k", "features_ray_peak_growth",
             "features_processes_left_running", "gradcam_s", "gradcam_forward_s", "gradcam_ratio", "gradcam_first_s",
             "one_pass_effb7_s", "one_pass_effb7_peak_gb", "forward_effb7_peak_gb")
    print(json.dumps({key: results[key] for key in order if key in results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
