"""``python -m explorer activations``: real subprocesses on the bundled demo model; every array written is
compared with a reference computed directly with Keras in the test process.

Each command that reaches TensorFlow costs seconds (the import), so all of them are started together once per
module and the tests only read their results.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from explorer.inputs import feature_maps as fm
from explorer.resources import demo_model, resources_dir

DEMO = demo_model()
BRICK = (resources_dir() / "images" / "brick.png").resolve()
CLI_TIMEOUT_S = 180
ATOL, RTOL = 1e-4, 1e-4
NESTED = "res_stage1/res_stage1_block_a/res_stage1_block_a_conv"

pytestmark = pytest.mark.skipif(not DEMO.exists() or not BRICK.exists(), reason="the bundled demo is missing")


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    target: Path | None  # the file the command was asked to write


def _fitted(side: int) -> np.ndarray:
    """brick.png as the demo model gets it: RGB stretched to side x side (bilinear), 0..255 (the model rescales
    inside, so the suggested preset is "none")."""
    with Image.open(BRICK) as image:
        return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), np.float32)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("activations")


@pytest.fixture(scope="module")
def arrays(work: Path) -> dict[str, Path]:
    """Input files: a (1, 64, 64, 3) array with the batch axis, a (64, 64, 3) one without, a wrong shape."""
    rng = np.random.default_rng(7)
    files = {"batched": work / "batched.npy", "plain": work / "plain.npy", "wrong": work / "wrong.npy"}
    np.save(files["batched"], rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32))
    np.save(files["plain"], rng.uniform(0, 255, (64, 64, 3)).astype(np.float32))
    np.save(files["wrong"], np.zeros((5, 5, 3), np.float32))
    return files


def _commands(work: Path, arrays: dict[str, Path]) -> dict[str, tuple[list[str], Path | None]]:
    image = str(BRICK)

    def npy(name: str) -> Path:
        return work / f"out_{name}.npy"

    return {
        "top": (["--layer", "stem", "--image", image, "--npy", str(npy("top"))], npy("top")),
        "nested": (["--layer", NESTED, "--image", image, "--npy", str(npy("nested"))], npy("nested")),
        "shared": (["--layer", "shared_mixer", "--call", "1", "--image", image, "--npy", str(npy("shared"))],
                   npy("shared")),
        "png": (["--layer", "merge_branches", "--image", image, "-o", str(work / "grid.png")], work / "grid.png"),
        "batched": (["--layer", "global_pool", "--input", str(arrays["batched"]), "--npy", str(npy("batched"))],
                    npy("batched")),
        "plain": (["--layer", "predictions", "--input", f"image={arrays['plain']}", "--npy", str(npy("plain"))],
                  npy("plain")),
        "unknown_layer": (["--layer", "no_such_layer", "--image", image, "--npy", str(npy("e1"))], npy("e1")),
        "call_range": (["--layer", "shared_mixer", "--call", "2", "--image", image, "--npy", str(npy("e2"))],
                       npy("e2")),
        "missing_image": (["--layer", "stem", "--image", str(work / "missing.png"), "--npy", str(npy("e3"))],
                          npy("e3")),
        "wrong_shape": (["--layer", "stem", "--input", str(arrays["wrong"]), "--npy", str(npy("e4"))], npy("e4")),
    }


@pytest.fixture(scope="module")
def runs(work: Path, arrays: dict[str, Path]) -> dict[str, Run]:
    """Every command, run concurrently (each imports TensorFlow: seconds of CPU) with a clean environment."""
    home = work / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="3", HOME=str(home),
               XDG_CONFIG_HOME=str(work / "config"))

    def run(item: tuple[str, tuple[list[str], Path | None]]) -> tuple[str, Run]:
        name, (args, target) = item
        full = [sys.executable, "-m", "explorer", "activations", str(DEMO), *args]
        done = subprocess.run(full, capture_output=True, text=True, env=env, cwd=work, timeout=CLI_TIMEOUT_S)
        return name, Run(args, done.returncode, done.stdout, done.stderr, target)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, _commands(work, arrays).items()))


class Reference:
    """Demo-model layer outputs computed with Keras in the test process."""

    def __init__(self) -> None:
        import keras

        self.keras = keras
        self.model = keras.saving.load_model(DEMO, compile=False)

    def top(self, name: str, x: np.ndarray) -> np.ndarray:
        sub = self.keras.Model(self.model.input, self.model.get_layer(name).output)
        return np.asarray(sub(x[None], training=False))[0]

    def apply(self, layer: Any, feed: np.ndarray) -> np.ndarray:
        return np.asarray(layer(feed[None], training=False))[0]


@pytest.fixture(scope="module")
def ref() -> Reference:
    return Reference()


def _ok(run: Run) -> np.ndarray | Path:
    assert run.returncode == 0, f"{run.args}: exit {run.returncode}\n{run.stderr[-2000:]}"
    assert "Traceback" not in run.stderr
    assert run.stdout.strip() == str(run.target), run.stdout
    assert run.target is not None and run.target.is_file()
    return np.load(run.target) if run.target.suffix == ".npy" else run.target


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != Keras {expected.shape}"
    assert actual.dtype == np.float32
    worst = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    assert np.allclose(actual, expected, atol=ATOL, rtol=RTOL), f"{what}: max abs diff {worst:.3g} from Keras"


def test_top_level_layer_npy_equals_keras(runs, ref):
    out = _ok(runs["top"])
    _assert_close(out, ref.top("stem", _fitted(64)), "stem")
    assert out.shape == (64, 64, 16)  # no batch axis
    assert "preprocessing: none" in runs["top"].stderr  # the suggestion is said, since none was given


def test_nested_layer_npy_equals_keras(runs, ref):
    out = _ok(runs["nested"])
    # Two stages: what feeds res_stage1 in the top-level graph, then the conv inside its block_a.
    feed = ref.top("stem", _fitted(64))
    conv = ref.model.get_layer("res_stage1").get_layer("res_stage1_block_a").get_layer("res_stage1_block_a_conv")
    _assert_close(out, ref.apply(conv, feed), NESTED)
    assert out.shape == (32, 32, 32)


def test_shared_layer_second_call_npy_equals_keras(runs, ref):
    out = _ok(runs["shared"])
    mixer = ref.model.get_layer("shared_mixer")
    second = ref.apply(mixer, ref.top("branch_avgpool", _fitted(64)))  # call 1 runs on the average-pool branch
    first = ref.apply(mixer, ref.top("branch_maxpool", _fitted(64)))
    _assert_close(out, second, "shared_mixer --call 1")
    assert not np.allclose(out, first, atol=1e-3), "--call 1 wrote the first call's values"


def test_png_grid_has_one_enlarged_tile_per_channel(runs, ref):
    from explorer.ui.activations.feature_export import MIN_TILE_SIDE, output_image

    path = _ok(runs["png"])
    expected = ref.top("merge_branches", _fitted(64))  # (8, 8, 128)
    tiles = fm.mosaic(expected)
    scale = -(-MIN_TILE_SIDE // 8)  # 8x8 maps are enlarged to at least 48 px per tile
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert picture.size == (tiles.columns * 9 * scale, tiles.rows * 9 * scale)  # 9 = tile + 1 px gap
        assert tiles.columns * tiles.rows >= 128
        written = np.asarray(picture, dtype=np.int16)
    # The same colours as the Keras output drawn the same way (a level of rounding apart at most).
    drawn = np.asarray(output_image(expected), dtype=np.int16)
    assert np.mean(np.abs(written - drawn) <= 3) > 0.999


def test_input_npy_with_batch_axis(runs, ref, arrays):
    out = _ok(runs["batched"])
    _assert_close(out, ref.top("global_pool", np.load(arrays["batched"])[0]), "global_pool on batched.npy")
    assert out.shape == (128,)


def test_named_input_npy_without_batch_axis(runs, ref, arrays):
    out = _ok(runs["plain"])
    _assert_close(out, ref.top("predictions", np.load(arrays["plain"])), "predictions on plain.npy")
    assert out.shape == (3,) and abs(float(out.sum()) - 1.0) < 1e-5


@pytest.mark.parametrize(("case", "words"), [
    ("unknown_layer", ["no layer 'no_such_layer'"]),
    ("call_range", ["shared_mixer", "2 call site(s)", "--call 0..1"]),
    ("missing_image", ["missing.png", "not found"]),
    ("wrong_shape", ["wrong.npy", "(5, 5, 3)", "(64, 64, 3)"]),
])
def test_errors_exit_non_zero_with_one_line_and_no_traceback(runs, case, words):
    run = runs[case]
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert run.target is not None and not run.target.exists()
    lines = run.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("keras-explorer: ")
    for word in words:
        assert word in lines[-1], lines[-1]
    assert len(lines) == 1, "stderr is not one line:\n" + run.stderr
