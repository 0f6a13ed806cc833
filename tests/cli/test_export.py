"""``python -m explorer export`` and ``features``: real subprocesses on the bundled demo model.

Every command that reaches TensorFlow costs seconds, so they are all started together once per module and the
tests read the results.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from explorer.resources import demo_model, resources_dir
from explorer.runtime.export import SAVEDMODEL_METADATA
from tests.support.exports import read_export_metadata
from tests.support.processes import Run, assert_ok, image_folder

DEMO = demo_model().resolve()
IMAGES = resources_dir() / "images"
NESTED = "res_stage1/res_stage1_block_a/res_stage1_block_a_conv"
CLI_TIMEOUT_S = 240

pytestmark = pytest.mark.skipif(not DEMO.exists() or not (IMAGES / "brick.png").exists(),
                                reason="the bundled demo is missing")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export_cli")
    image_folder(folder)
    return folder


def _commands(work: Path) -> dict[str, list[str]]:
    demo = str(DEMO)
    return {
        "keras": ["export", demo, "--layer", "stem", "--layer", NESTED, "--layer", "shared_mixer",
                  "--call", "0", "--call", "0", "--call", "1", "-o", str(work / "demo_features.keras")],
        "savedmodel": ["export", demo, "--layer", "res_stage2/res_stage2_relu", "--layer", "merge_branches",
                       "--format", "savedmodel", "-o", str(work / "demo_savedmodel")],
        "features": ["features", demo, "--layer", "global_pool", "--images", str(work / "images"),
                     "--batch-size", "2", "-o", str(work / "feats.npz")],
        "bad_layer": ["export", demo, "--layer", "stem", "--layer", "no_such_layer", "-o", str(work / "bad.keras")],
        "bad_call": ["export", demo, "--layer", "shared_mixer", "--call", "2", "-o", str(work / "bad_call.keras")],
    }


@pytest.fixture(scope="module")
def runs(work: Path) -> dict[str, Run]:
    """Every command, run concurrently, with HOME and the settings folder inside the test's folder."""
    home = work / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="3", HOME=str(home),
               XDG_CONFIG_HOME=str(work / "config"))

    def run(item: tuple[str, list[str]]) -> tuple[str, Run]:
        name, args = item
        done = subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=env,
                              cwd=work, timeout=CLI_TIMEOUT_S)
        return name, Run(args, done.returncode, done.stdout, done.stderr)

    commands = _commands(work)
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return dict(pool.map(run, commands.items()))


def test_cli_export_keras_with_several_layers(runs: dict[str, Run], work: Path) -> None:
    run = runs["keras"]
    assert_ok(run)
    out = work / "demo_features.keras"
    assert out.is_file()
    assert str(out) in run.stdout and "verified" in run.stdout, run.stdout
    info = read_export_metadata(out)
    assert info is not None and info["source"] == str(DEMO)
    assert [(e["layer"], tuple(e["call_site"]), e["output"]) for e in info["layers"]] == [
        ("stem", (0,), "stem"),
        (NESTED, (0, 0, 0), NESTED.replace("/", "__")),
        ("shared_mixer", (1,), "shared_mixer__call1"),
    ]


def test_cli_export_savedmodel(runs: dict[str, Run], work: Path) -> None:
    run = runs["savedmodel"]
    assert_ok(run)
    out = work / "demo_savedmodel"
    assert out.is_dir() and (out / "saved_model.pb").is_file() and (out / SAVEDMODEL_METADATA).is_file()
    assert "verified" in run.stdout, run.stdout
    info = read_export_metadata(out)
    assert info is not None
    assert [e["layer"] for e in info["layers"]] == ["res_stage2/res_stage2_relu", "merge_branches"]


@pytest.mark.parametrize(("name", "message"), [("bad_layer", "no layer 'no_such_layer'"),
                                               ("bad_call", r"runs at 2 call site(s)")])
def test_cli_export_refuses_a_bad_target_in_one_line(runs: dict[str, Run], work: Path, name: str,
                                                     message: str) -> None:
    run = runs[name]
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("keras-explorer: ") and message in lines[0], lines[0]
    assert not (work / f"{name}.keras").exists()


def test_cli_features_skip_a_broken_image(runs: dict[str, Run], work: Path) -> None:
    run = runs["features"]
    assert_ok(run)
    with np.load(work / "feats.npz") as saved:
        features, files = saved["features"], [str(f) for f in saved["files"]]
    assert [Path(f).name for f in files] == ["brick.png", "grass.png"]
    assert features.shape == (2, 128) and features.dtype == np.float32
    assert np.all(np.isfinite(features)) and not np.allclose(features[0], features[1])
    skipped = [line for line in run.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and "broken.png" in skipped[0], run.stderr
    assert "2 images" in run.stdout and "1 skipped" in run.stdout, run.stdout
