"""The PyInstaller build (dist/keras-explorer/, `make package`) runs on its own: headless subcommands print the
same JSON, draw with the bundled Graphviz, compute with the bundled TensorFlow, spawn the export verification;
the window starts (offscreen, and on a real X server when Xvfb is installed), spawns its live-tier worker, which
imports TensorFlow, and stays up without a traceback; on the X server (with xdotool) it shows the demo model and
Ctrl+Q ends it with exit code 0, worker included.

Skipped unless the build exists or KERAS_EXPLORER_PACKAGE_TEST=1 (then a missing build fails): `make package-test`.
The frozen app runs with an empty PATH (so the system's `dot` cannot be the one used) and a scratch HOME.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist" / "keras-explorer"
APP = DIST / "keras-explorer"
MODEL = ROOT / "resources" / "demo_model.keras"
IMAGE = ROOT / "resources" / "images" / "brick.png"
GUI_SECONDS = 15.0
WORKER_DEADLINE_S = 90.0  # the worker must have TensorFlow loaded by then

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not APP.exists() and os.environ.get("KERAS_EXPLORER_PACKAGE_TEST") != "1",
                       reason="no dist/keras-explorer (make package-test builds and runs it)"),
]


@pytest.fixture(scope="module")
def app() -> Path:
    assert APP.exists(), f"{APP} not built: run make package"
    return APP


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """What a double-click gives the app, minus anything from this checkout or venv: no PYTHONPATH, no
    VIRTUAL_ENV, a PATH without Graphviz (an empty folder), a fresh HOME."""
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
            "XDG_CACHE_HOME", "KERAS_HOME", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env.update(HOME=str(home), PATH=str(home / "bin"), QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="2")
    return env


def run(app: Path, args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(app), *args], env=env, capture_output=True, text=True, timeout=timeout,
                            cwd=env["HOME"])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_layout_of_the_build():
    assert APP.exists() and os.access(APP, os.X_OK)
    internal = DIST / "_internal"
    bundled = internal / "explorer" / "bundled"
    assert (bundled / "demo_model.keras").read_bytes() == MODEL.read_bytes()
    assert (bundled / "demo_model_classes.json").exists() and (bundled / "LICENSES.md").exists()
    assert {p.name for p in (bundled / "images").iterdir()} >= {"brick.png", "chelsea.jpg"}
    assert os.access(internal / "graphviz" / "bin" / "dot", os.X_OK)
    assert (internal / "graphviz" / "lib" / "graphviz" / "config6a").exists()
    qt_modules = {p.name.split(".")[0] for p in (internal / "PySide6").glob("Qt*.so")}
    assert qt_modules == {"QtCore", "QtGui", "QtWidgets", "QtSvg", "QtOpenGL", "QtOpenGLWidgets"}  # last: pyqtgraph
    assert not list(internal.rglob("libQt6Quick*")) and not list(internal.rglob("libQt6Qml*"))


def test_summary_json(app, env):
    from explorer.model.files import load_graph
    from explorer.model.summary import summary_dict

    result = run(app, ["summary", str(MODEL), "--json"], env)
    assert json.loads(result.stdout) == json.loads(json.dumps(summary_dict(load_graph(MODEL))))


def test_check_is_clean(app, env):
    run(app, ["check", str(MODEL)], env)


def test_graph_with_bundled_graphviz(app, env, tmp_path):
    from PIL import Image

    out = tmp_path / "graph.png"
    result = run(app, ["graph", str(MODEL), "-o", str(out), "--expand"], env)
    assert result.stdout.strip() == str(out)
    with Image.open(out) as image:
        frozen_size = image.size
    assert min(frozen_size) > 100
    svg = tmp_path / "graph.svg"
    run(app, ["graph", str(MODEL), "-o", str(svg)], env)
    assert svg.read_text().lstrip().startswith("<?xml")
    if shutil.which("dot"):  # same picture as the system's Graphviz: same layout, same font metrics (pango)
        reference = tmp_path / "reference.png"
        subprocess.run([sys.executable, "-m", "explorer", "graph", str(MODEL), "-o", str(reference), "--expand"],
                       check=True, capture_output=True, timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        with Image.open(reference) as image:
            assert image.size == frozen_size


def test_activations_with_bundled_tensorflow(app, env, tmp_path):
    out = tmp_path / "stem.npy"
    run(app, ["activations", str(MODEL), "--layer", "stem", "--image", str(IMAGE), "--npy", str(out)], env)
    frozen = np.load(out)
    assert frozen.ndim == 3 and frozen.size > 0 and np.isfinite(frozen).all()
    reference = tmp_path / "reference.npy"
    subprocess.run([sys.executable, "-m", "explorer", "activations", str(MODEL), "--layer", "stem", "--image",
                    str(IMAGE), "--npy", str(reference)], check=True, capture_output=True, timeout=300)
    np.testing.assert_allclose(frozen, np.load(reference), rtol=1e-5, atol=1e-5)


def test_export_verified_in_a_spawned_process(app, env, tmp_path):
    out = tmp_path / "stem_extractor.keras"
    result = run(app, ["export", str(MODEL), "--layer", "stem", "-o", str(out)], env)
    assert "verified" in result.stdout and out.exists()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _loads_tensorflow(pid: int) -> bool:
    try:
        return "_pywrap_tensorflow" in (Path("/proc") / str(pid) / "maps").read_text()
    except OSError:
        return False


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        display = pipe.readline().strip()
    assert display, "Xvfb did not start"
    return server, f":{display}"


@pytest.mark.parametrize("platform", ["offscreen", "xcb"])
def test_window_starts_and_stays_up(app, env, tmp_path, platform):
    server = None
    if platform == "xcb":
        if shutil.which("Xvfb") is None:
            pytest.skip("Xvfb not installed")
        server, env["DISPLAY"] = _start_xvfb()
    env["QT_QPA_PLATFORM"] = platform
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        # No argument: the bundled demo model and sample image. Own session, so the app and its worker can be
        # ended together below.
        window = subprocess.Popen([str(app)], env=env, cwd=env["HOME"], stdout=subprocess.DEVNULL, stderr=stderr,
                                  start_new_session=True)
    try:
        started = time.monotonic()
        worker = None
        while time.monotonic() - started < max(GUI_SECONDS, WORKER_DEADLINE_S):
            assert window.poll() is None, f"exited with {window.returncode}:\n{stderr_path.read_text()}"
            if worker is None or not _loads_tensorflow(worker):
                spawned = [c for c in _children(window.pid) if "--multiprocessing-fork" in _cmdline(c)]
                worker = spawned[0] if spawned else None
            if worker and _loads_tensorflow(worker) and time.monotonic() - started >= GUI_SECONDS:
                break
            time.sleep(0.5)
        log = stderr_path.read_text()
        assert window.poll() is None, f"exited with {window.returncode}:\n{log}"
        assert worker is not None, f"no live-tier worker was spawned:\n{log}"
        assert _loads_tensorflow(worker), f"the worker did not load TensorFlow in {WORKER_DEADLINE_S} s:\n{log}"
        assert "Traceback" not in log, log
        assert not re.search(r"qt\.qpa\.plugin|Could not load the Qt platform plugin", log), log
        if platform == "xcb" and shutil.which("xdotool"):  # the window shows the bundled demo model
            search = [shutil.which("xdotool"), "search", "--name", "Keras Explorer", "getwindowname", "%@"]
            titles = subprocess.run(search, env=env, capture_output=True, text=True, timeout=30).stdout
            assert "demo_model.keras — Keras Explorer" in titles.splitlines(), titles
            # File > Quit (Ctrl+Q) after a click into the window: the app and its worker end cleanly.
            xdotool = shutil.which("xdotool")
            subprocess.run([xdotool, "mousemove", "400", "300", "click", "1"], env=env, check=True, timeout=30)
            time.sleep(1)
            subprocess.run([xdotool, "key", "ctrl+q"], env=env, check=True, timeout=30)
            assert window.wait(30) == 0, stderr_path.read_text()
            deadline = time.monotonic() + 15
            while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not Path(f"/proc/{worker}").exists(), "the worker outlived the window"
            assert "Traceback" not in stderr_path.read_text()
    finally:
        window.terminate()  # no SIGTERM handler: the window process ends at once
        try:
            window.wait(10)
        except subprocess.TimeoutExpired:
            window.kill()
            window.wait()
        time.sleep(1)  # the worker ends by itself on the closed pipe; whatever is left of the session goes now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(window.pid, signal.SIGKILL)  # start_new_session: the group id is the window's pid
        if server is not None:
            server.terminate()
            server.wait(10)
