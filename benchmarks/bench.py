"""Keras Explorer benchmarks: ``make bench`` (``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench.py``).

Prints progress lines, then as its last line one JSON object of medians:

- ``window_shown_s``: process launch to the first painted main window (``first_window.py``, a fresh process each
  time, launched the way ``python -m explorer MODEL`` starts the app), and ``tensorflow_imported_at_window``;
- ``open_to_graph_s``: ``MainWindow.open_model(path)`` until ``graph_drawn`` plus a forced repaint of the graph
  viewport, in this process with a real window (TensorFlow is never imported here: the models are built in a
  subprocess);
- ``summary_s``: wall time of the whole ``python -m explorer summary MODEL --json`` process;
- ``plot_model_resnet50_s``: ``keras.utils.plot_model(..., show_shapes=True)`` on ResNet50, the Keras baseline
  (null, with ``plot_model_error``, when it cannot run, e.g. pydot is not installed);
- ``memory_rss_mb_after_efficientnetb7``: this (GUI) process's peak RSS once EfficientNetB7 has been drawn.

Models are cached in ``$KERAS_EXPLORER_BENCH_CACHE`` (default: ``<tmp>/keras-explorer-bench``) and reused.
Targets are printed next to the results; missing one does not fail the run.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CACHE = Path(os.environ.get("KERAS_EXPLORER_BENCH_CACHE", Path(tempfile.gettempdir()) / "keras-explorer-bench"))
MODELS = ("resnet50", "densenet121", "efficientnetb7")
REPETITIONS = 3
WINDOW_REPETITIONS = 5
TARGETS_S = {"window_shown_s": 0.8, "resnet50": 0.3, "efficientnetb7": 1.0}
OPEN_TIMEOUT_S = 180.0


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


def verdict(value: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if value is None:
        return f"  (target <= {target} s: not measured)"
    return f"  (target <= {target} s: {'met' if value <= target else 'MISSED'})"


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


# --------------------------------------------------------------------------- models


def build_models() -> dict[str, Path]:
    paths = {name: CACHE / f"{name}.keras" for name in MODELS}
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


def measure_window_shown(model: Path, config_home: Path) -> tuple[float, bool]:
    log(f"window shown: {WINDOW_REPETITIONS} fresh processes (first_window.py {model.name})")
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))  # no saved geometry/recent files of the user
    times, tensorflow = [], False
    for _ in range(WINDOW_REPETITIONS):
        launch = time.time()
        process = subprocess.Popen([PYTHON, str(HERE / "first_window.py"), repr(launch), str(model)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"first_window.py exited with {process.returncode}:\n{err[-3000:]}")
        data = last_json(out)
        times.append(data["window_shown_s"])
        tensorflow = tensorflow or data["tensorflow_imported"]
    value = report("window_shown_s", times, TARGETS_S["window_shown_s"])
    log(f"  tensorflow imported when the window was shown: {tensorflow}")
    return value, tensorflow


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


def measure_open_to_graph(paths: dict[str, Path], settings_file: Path) -> tuple[dict[str, float], float]:
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

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

    def open_once(path: Path) -> tuple[float, float]:
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
        window.model_failed.connect(failed)
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
        window.model_failed.disconnect(failed)
        if failure or not done:
            raise RuntimeError(f"opening {path} failed: {failure[0] if failure else 'timed out'}")
        if painted.count == before:
            raise RuntimeError("the graph viewport was not repainted")
        return end - start, end - signalled

    log(f"open to graph drawn: MainWindow.open_model -> graph_drawn -> viewport repaint, {REPETITIONS} runs each")
    medians = {}
    peak_rss_mb = 0.0
    for name, path in paths.items():
        runs = [open_once(path) for _ in range(REPETITIONS)]
        totals = [total for total, _ in runs]
        medians[name] = report(name, totals, TARGETS_S.get(name))
        items = len(window.graph_view.scene().items())
        log(f"    {items} scene items; viewport repaint alone: median {median([p for _, p in runs]):.3f} s")
        if name == "efficientnetb7":
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            log(f"  peak RSS of this GUI process after drawing efficientnetb7: {peak_rss_mb:.0f} MB")
    log(f"  tensorflow imported in the GUI process: {'tensorflow' in sys.modules}")
    viewport.removeEventFilter(painted)
    window.close()
    wait(app, 0.1)
    return medians, round(peak_rss_mb, 1)


def wait(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


# --------------------------------------------------------------------------- main


def main() -> int:
    log(f"Keras Explorer benchmarks ({PYTHON}, QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}, {load_average()})")
    paths = build_models()
    with tempfile.TemporaryDirectory(prefix="keras-explorer-bench-") as scratch:
        scratch_dir = Path(scratch)
        results: dict = {}

        def window() -> None:
            results["window_shown_s"], results["tensorflow_imported_at_window"] = measure_window_shown(
                paths["resnet50"], scratch_dir / "config")

        def gui() -> None:
            results["open_to_graph_s"], rss = measure_open_to_graph(paths, scratch_dir / "settings.ini")
            results["memory_rss_mb_after_efficientnetb7"] = rss

        def summary() -> None:
            results["summary_s"] = measure_summary(paths)

        def plot_model() -> None:
            value, error = measure_plot_model(paths["resnet50"], scratch_dir / "plots")
            results["plot_model_resnet50_s"] = value
            if error:
                results["plot_model_error"] = error

        steps: list[Callable[[], None]] = [window, gui, summary, plot_model]
        for step in steps:
            with OtherLoad():
                step()
    log(f"done ({load_average()}: other work on the machine makes the numbers noisy)")
    order = ("window_shown_s", "tensorflow_imported_at_window", "open_to_graph_s", "summary_s",
             "plot_model_resnet50_s", "plot_model_error", "memory_rss_mb_after_efficientnetb7")
    print(json.dumps({key: results[key] for key in order if key in results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
