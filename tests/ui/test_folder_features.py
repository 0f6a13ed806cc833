"""File > Run Features on a Folder…: a real window on the bundled demo model runs the real ``features`` command
in a child process, shows its progress and stops it on Cancel. The only stand-in is the user's answers to the
dialog (its ``exec``)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QProcess, Qt
from PySide6.QtWidgets import QDialog, QPushButton

from explorer.live.protocol import BuildFromCode
from explorer.resources import demo_model, resources_dir
from explorer.ui.command_job import DONE, FAILED, STOPPED, progress_of
from explorer.ui.folder_features import LOCAL, RAY, FolderFeaturesDialog, FolderRun, features_arguments
from tests.support.flagged import flagged_demo

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pa_csv = pytest.importorskip("pyarrow.csv")
pa_dataset = pytest.importorskip("pyarrow.dataset")

DEMO = demo_model().resolve()
IMAGES = resources_dir() / "images"
RUN_MS = 240_000  # TensorFlow starts in the child: seconds, more on a busy machine
pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the bundled demo is missing")


# --------------------------------------------------------------------------- the command line


def test_arguments_carry_the_layer_the_options_and_trust():
    run = FolderRun("/data/photos", "/data/out/", "caffe", pool="max", batch_size=8, engine=RAY, resume=True)
    assert features_arguments("/m/net.keras", "block/conv", 1, run) == [
        "features", "/m/net.keras", "--layer", "block/conv", "--call", "1", "--images", "/data/photos",
        "-o", "/data/out/", "--pool", "max", "--batch-size", "8", "--engine", "ray", "--preprocess", "caffe",
        "--resume"]
    trusted = features_arguments("/m/net.keras", "dense", 0, FolderRun("imgs", "f.parquet", "none"), trust=True,
                                 custom_objects="/m/defs.py", build=BuildFromCode("Net(units=3)", (None, 6)))
    assert trusted[trusted.index("--pool") + 1] == "avg"  # the usual embedding, by default
    assert trusted[trusted.index("--engine") + 1] == LOCAL
    assert trusted[-7:] == ["--trust", "--custom-objects", "/m/defs.py", "--build", "Net(units=3)",
                            "--input-shape", "None,6"]
    untrusted = features_arguments("/m/net.keras", "dense", 0, FolderRun("imgs", "f.parquet", "custom"),
                                   build=BuildFromCode("Net()"))
    assert "--trust" not in untrusted and "--custom-objects" not in untrusted and "--resume" not in untrusted
    assert "--input-shape" not in untrusted and untrusted[-2:] == ["--build", "Net()"]
    assert "--preprocess" not in untrusted  # custom mean/std is no preset of the command: it uses the suggested one
    json_run = features_arguments("/m/net.json", "dense", 0, FolderRun("imgs", "f.parquet", "none"), weights="/w.h5")
    assert json_run[-2:] == ["--weights", "/w.h5"]  # an architecture JSON's weights, as the window opened it


def test_progress_is_read_from_the_local_bar_and_from_ray_data_logs():
    assert progress_of("[#########                     ] 30/100 images, 5.3/s") == (30, 100)
    assert progress_of("[##############################] 4/4 images, 29.6/s") == (4, 4)
    # As Ray Data 2.60 logs it when stderr is no terminal; "?" until it knows the total.
    assert progress_of("2026-12-01 14:49:31,282\tINFO logging_progress.py:225 -- Total Progress: 0/?") == (0, 0)
    assert progress_of("2026-12-01 14:49:41,282\tINFO logging_progress.py:225 -- Total Progress: 3/10") == (3, 10)
    assert progress_of("2026-12-01 14:49:31,282\tINFO logging_progress.py:231 -- Write: 0/1") is None
    assert progress_of("[#####                         ] 1") is None  # the bar's tail not written yet
    assert progress_of("preprocessing: none (The model starts with Rescaling)") is None


def test_the_dialog_imports_neither_ray_nor_keras(python_env):
    """Building the dialog (Ray installed or not) looks Ray up without importing it, nor Keras or TensorFlow."""
    code = (
        "import importlib.util, sys\n"
        "from PySide6.QtCore import QSettings\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from explorer.model.files import load_graph\n"
        "from explorer.resources import demo_model\n"
        "from explorer.ui.folder_features import FolderFeaturesDialog\n"
        "from explorer.ui.session import Session\n"
        "from explorer.ui.settings import Settings\n"
        "app = QApplication([])\n"
        f"session = Session(Settings(QSettings({str(python_env['HOME'] + '/s.ini')!r}, QSettings.Format.IniFormat)))\n"
        "session.set_file(demo_model(), load_graph(demo_model()))\n"
        "session.select('global_pool')\n"
        "dialog = FolderFeaturesDialog(session, 'none')\n"
        "engines = [dialog.engine.itemData(i) for i in range(dialog.engine.count())]\n"
        "assert engines == (['local', 'ray'] if importlib.util.find_spec('ray') else ['local']), engines\n"
        "loaded = sorted(m for m in ('ray', 'keras', 'tensorflow') if m in sys.modules)\n"
        "print('loaded:', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded: []" in done.stdout


# --------------------------------------------------------------------------- the window


@pytest.fixture
def demo_window(make_window, open_and_wait) -> Any:
    window = make_window()
    open_and_wait(window, DEMO)
    return window


@pytest.fixture
def answer(monkeypatch) -> Callable[..., None]:
    """``answer(images=..., output=..., batch_size=...)``: what the user fills in before pressing Run."""

    def give(accept: bool = True, **fields: Any) -> None:
        def exec_(dialog: FolderFeaturesDialog) -> int:
            for name, value in fields.items():
                if name == "batch_size":
                    dialog.batch_size.setValue(value)
                else:
                    getattr(dialog, name).setText(str(value))
            ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
            if accept and not ok.isEnabled():
                pytest.fail(f"Run is disabled: {dialog.hint.text()}")
            return QDialog.DialogCode.Accepted if accept else QDialog.DialogCode.Rejected

        monkeypatch.setattr(FolderFeaturesDialog, "exec", exec_)

    return give


@pytest.fixture
def messages(demo_window) -> Iterator[list[str]]:
    said: list[str] = []
    demo_window.session.message.connect(said.append)
    yield said


def _images(folder: Path) -> Path:
    """The bundled PNGs and one truncated PNG (its header reads, its pixels do not)."""
    folder.mkdir()
    for source in sorted(IMAGES.glob("*.png")):
        (folder / source.name).write_bytes(source.read_bytes())
    data = (IMAGES / "gravel.png").read_bytes()
    (folder / "z_broken.png").write_bytes(data[: len(data) // 3])
    return folder


def test_the_dialog_offers_what_fits_the_output(demo_window, qtbot):
    session = demo_window.session
    session.select("res_stage1/res_stage1_block_b")
    dialog = FolderFeaturesDialog(session, "none", demo_window, ray=True)
    qtbot.addWidget(dialog)
    assert dialog.output.text() == str(DEMO.with_name("demo_model_res_stage1__res_stage1_block_b_features.parquet"))
    assert (dialog.pool.currentData(), dialog.batch_size.value()) == ("avg", 32)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not dialog.resume.isEnabled()  # a single file cannot be continued
    dialog.engine.setCurrentIndex(dialog.engine.findData(RAY))
    assert not ok.isEnabled() and "folder" in dialog.hint.text()  # Ray writes a dataset folder
    dialog.output.setText("feats/")
    dialog.resume.setChecked(True)
    assert not ok.isEnabled() and "images" in dialog.hint.text()  # no image open: no folder to suggest
    dialog.images.setText("~/photos")
    assert ok.isEnabled() and dialog.resume.isEnabled() and not dialog.hint.isVisible()
    run = dialog.folder_run()  # relative to the model's folder, where the default output goes
    assert run == FolderRun(str(Path.home() / "photos"), f"{DEMO.parent / 'feats'}/", "none", "avg", 32, RAY, True)
    without_ray = FolderFeaturesDialog(session, "none", demo_window, ray=False)
    qtbot.addWidget(without_ray)
    assert [without_ray.engine.itemData(i) for i in range(without_ray.engine.count())] == [LOCAL]


def test_it_needs_a_selected_layer(demo_window, qtbot, answer):
    answer(images="/nowhere", output="/nowhere/out.parquet")
    with qtbot.waitSignal(demo_window.session.failed) as failed:
        demo_window.actions_by_name["features_on_folder"].trigger()
    assert failed.args == ["Select a layer first"]
    assert demo_window.features_job is None


def test_a_folder_run_writes_one_row_per_readable_image(demo_window, qtbot, tmp_path, answer, messages):
    folder = _images(tmp_path / "images")
    good = sorted(str(p.resolve()) for p in folder.glob("*.png") if p.name != "z_broken.png")
    out = tmp_path / "feats.parquet"
    demo_window.session.select("res_stage1/res_stage1_block_b")  # (32, 32, 32) maps, avg-pooled by default
    answer(images=folder, output=out, batch_size=2)
    demo_window.actions_by_name["features_on_folder"].trigger()
    job = demo_window.features_job
    assert job.running and job.progress.isVisible()
    with qtbot.waitSignal(job.finished, timeout=RUN_MS) as finished:
        pass
    outcome, line = finished.args
    assert outcome == DONE, line
    assert line.startswith(f"{out}: {len(good)} images, features (32,),") and "1 skipped" in line
    assert messages[-1] == line  # the status bar says the command's summary
    assert (job.done, job.total) == (len(good) + 1, len(good) + 1)  # the progress read from its bar
    assert job.progress is None and not demo_window.banner.isVisible()
    table = pq.read_table(out)
    assert sorted(table.column("path").to_pylist()) == good
    assert set(table.column("layer").to_pylist()) == {"res_stage1/res_stage1_block_b"}
    assert table.column("shape").to_pylist() == [[32]] * len(good)
    features = np.array(table.column("features").to_pylist(), np.float32)
    assert features.shape == (len(good), 32) and np.isfinite(features).all()
    skipped = pa_csv.read_csv(tmp_path / "feats.skipped.csv")
    assert [Path(p).name for p in skipped.column("path").to_pylist()] == ["z_broken.png"]


def test_cancel_stops_the_run_and_keeps_whole_parts(demo_window, qtbot, tmp_path, answer, messages):
    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(300):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(folder / f"{index:03d}.png")
    out = tmp_path / "feats"
    demo_window.session.select("global_pool")
    answer(images=folder, output=f"{out}/", batch_size=4)
    demo_window.actions_by_name["features_on_folder"].trigger()
    job = demo_window.features_job
    with qtbot.waitSignal(job.progressed, timeout=RUN_MS, check_params_cb=lambda done, _total: done > 0):
        pass
    assert job.progress.maximum() == 300
    cancel = job.progress.findChild(QPushButton)
    with qtbot.waitSignal(job.finished, timeout=RUN_MS) as finished:
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    outcome, line = finished.args
    assert outcome == STOPPED, line
    assert job.process.state() == QProcess.ProcessState.NotRunning
    assert (job.process.exitStatus(), job.process.exitCode()) == (QProcess.ExitStatus.NormalExit, 130)
    assert line.startswith(f"Features run stopped after {job.done} of 300 images") and str(out) in line
    assert messages[-1] == line and not demo_window.banner.isVisible()

    assert not list(out.glob(".*")), "a half-written part was left"
    parts = sorted(out.glob("*.parquet"))
    rows = sum(pq.read_table(part).num_rows for part in parts)  # every part is a whole, readable file
    assert job.done <= rows < 300
    assert pa_dataset.dataset(out, format="parquet").count_rows() == rows

    # The window goes on: another layer is selected, and the command is offered again.
    with qtbot.waitSignal(demo_window.session.selection_changed):
        demo_window.session.select("merge_branches")
    answer(accept=False)
    assert demo_window.run_features_on_folder() is None and not demo_window.banner.isVisible()


def test_a_flagged_file_runs_only_once_trusted(make_window, open_and_wait, qtbot, tmp_path, answer):
    window = make_window()
    open_and_wait(window, flagged_demo(tmp_path / "flagged.keras"))
    assert window.session.graph.findings
    window.session.select("global_pool")
    answer(images=_images(tmp_path / "images"), output=tmp_path / "feats.parquet")
    with qtbot.waitSignal(window.session.failed) as failed:
        window.actions_by_name["features_on_folder"].trigger()
    assert "trust it" in failed.args[0] and window.features_job is None
    window.session.trust(load=False)  # the user's yes to the trust question
    window.actions_by_name["features_on_folder"].trigger()
    job = window.features_job
    assert "--trust" in job.process.arguments()  # the command refuses the file without it
    with qtbot.waitSignal(job.finished, timeout=RUN_MS) as finished:
        pass
    assert finished.args[0] == DONE, finished.args[1]
    assert pq.read_table(tmp_path / "feats.parquet").num_rows == len(list(IMAGES.glob("*.png")))


def test_a_failing_run_shows_the_command_error(demo_window, qtbot, tmp_path, answer):
    empty = tmp_path / "empty"
    empty.mkdir()
    demo_window.session.select("global_pool")
    answer(images=empty, output=tmp_path / "feats.parquet")
    demo_window.actions_by_name["features_on_folder"].trigger()
    with qtbot.waitSignal(demo_window.features_job.finished, timeout=RUN_MS) as finished:
        pass
    outcome, line = finished.args
    assert outcome == FAILED
    assert line.startswith(f"{empty}: no images") and not line.startswith("keras-explorer")
    assert demo_window.banner.isVisible() and demo_window.banner.text() == line
