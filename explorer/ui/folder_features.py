"""File > Run Features on a Folder…: the selected layer over every image of a folder, as the headless ``features``
command in a child process (TensorFlow, and Ray for ``--engine ray``, stay out of the window), with its progress
shown and Cancel stopping it. A stopped run closes its output first, so what it wrote stays readable."""

from __future__ import annotations

import codecs
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.live.protocol import BuildFromCode
from explorer.runtime.feature_store import FOLDER, output_kind
from explorer.text import shape_text
from explorer.ui.session import Session

LOCAL, RAY = "local", "ray"
POOL_CHOICES = (("avg", "avg: one value per channel (the usual embedding)"),
                ("max", "max: the largest value per channel"),
                ("none", "none: the full feature maps"))
OUTPUT_FILTER = "Parquet file (*.parquet);;NumPy arrays, small jobs (*.npz)"
ERROR_PREFIX = "keras-explorer: "  # the command's one line on bad input (explorer.cli.common.PREFIX)
INTERRUPTED = 130  # the command's exit code after a stop request (explorer.cli.INTERRUPTED)
MAX_FIELD_WIDTH = 760  # px: longer paths scroll in their field
KILL_AFTER_MS = 5000  # a run that ignores the stop request (stuck in native code) is killed after this
LOCAL_BAR = re.compile(r"(\d+)/(\d+) images")  # the local engine's "\r[####   ] 10/100 images, 5.3/s"
RAY_PROGRESS = re.compile(r"Total Progress: (\d+)/(\d+|\?)")  # Ray Data's log line; "?" while it counts
DONE, FAILED, STOPPED = "done", "failed", "stopped"


def ray_installed() -> bool:
    """Whether ``--engine ray`` can run: looked up, never imported (Ray takes seconds and much memory)."""
    return importlib.util.find_spec("ray") is not None


@dataclass(frozen=True)
class FolderRun:
    """What the dialog asks: the images, where their features go, and how they are computed."""

    images: str  # a folder, or a pattern such as photos/**/*.jpg
    output: str  # OUT.parquet, OUT/ (a Parquet dataset folder) or OUT.npz
    preprocess: str  # the Activations panel's preset; "custom" (mean/std) is not a command option
    pool: str = "avg"
    batch_size: int = 32
    engine: str = LOCAL
    resume: bool = False


def features_arguments(model: str | Path, layer: str, call: int, run: FolderRun, trust: bool = False,
                       custom_objects: str | None = None, build: BuildFromCode | None = None) -> list[str]:
    """The ``features`` command line (after ``python -m explorer``) for a layer at its ``call``-th call site."""
    args = ["features", str(model), "--layer", layer, "--call", str(call), "--images", run.images,
            "-o", run.output, "--pool", run.pool, "--batch-size", str(run.batch_size), "--engine", run.engine]
    if run.preprocess != "custom":  # custom: the command uses the suggested preset, as it says on stderr
        args += ["--preprocess", run.preprocess]
    if run.resume:
        args.append("--resume")
    if trust:
        args.append("--trust")
    if custom_objects:
        args += ["--custom-objects", custom_objects]
    if build is not None:
        args += ["--build", build.call]
        if build.input_shape:
            args += ["--input-shape", shape_text(build.input_shape)]
    return args


def progress_of(line: str) -> tuple[int, int] | None:
    """(images done, in total; 0 while Ray counts) from a line of the command's stderr, if it reports progress."""
    match = LOCAL_BAR.search(line) or RAY_PROGRESS.search(line)
    if match is None:
        return None
    total = match.group(2)
    return int(match.group(1)), int(total) if total.isdigit() else 0


def command_prefix() -> list[str]:
    """What runs the command line: a frozen app's binary takes the console script's arguments itself."""
    return [] if getattr(sys, "frozen", False) else ["-m", "explorer"]


def default_output(model: Path, layer: str) -> str:
    return str(model.with_name(f"{model.stem}_{layer.replace('/', '__')}_features.parquet"))


class FolderFeaturesDialog(QDialog):
    """Asks for the images folder, the output and the options; the layer and preprocessing are the window's."""

    def __init__(self, session: Session, preprocess: str, parent: QWidget | None = None,
                 ray: bool | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run Features on a Folder")
        self.session, self.preprocess = session, preprocess
        model, layer = session.path, session.layer or ""
        self.images = QLineEdit(str(session.image_path.parent) if session.image_path else "")
        self.images.setPlaceholderText("a folder, or a pattern such as photos/**/*.jpg")
        self.output = QLineEdit(default_output(model, layer) if model else "")
        self.output.setToolTip("OUT.parquet: one file · OUT/ (ending in /): a Parquet dataset folder, written in "
                               "whole parts, that Resume can continue · OUT.npz: NumPy arrays, for small jobs")
        self.pool = QComboBox()
        for value, text in POOL_CHOICES:
            self.pool.addItem(text, value)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(32)
        self.engine = QComboBox()
        self.engine.addItem("local: this computer", LOCAL)
        if ray_installed() if ray is None else ray:
            self.engine.addItem("ray: Ray Data (a local Ray runtime)", RAY)
        else:
            self.engine.setToolTip("Ray is not installed: pip install 'keras-explorer[distributed]'")
        self.engine.setEnabled(self.engine.count() > 1)
        self.resume = QCheckBox("Resume: skip the images the output folder already holds")
        self.resume.setToolTip("For an output folder (ending in /): a single file cannot be continued")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("Layer", QLabel(_layer_text(session)))
        form.addRow("Preprocessing", QLabel(
            f"{preprocess}, as in the Activations panel" if preprocess != "custom" else
            "the suggested preset (the Activations panel's custom mean/std is not passed on)"))
        form.addRow("Images", _with_browse(self.images, self._browse_images))
        form.addRow("Output", _with_browse(self.output, self._browse_output))
        form.addRow("Pooling", self.pool)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Engine", self.engine)
        form.addRow("", self.resume)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addWidget(self.hint)
        column.addWidget(self.buttons)
        for edit in (self.images, self.output):
            edit.textChanged.connect(self._check)
        self.engine.currentIndexChanged.connect(self._check)
        self._check()
        # Wide enough to show the default output whole (its file name is at the end), within reason.
        wanted = self.output.fontMetrics().horizontalAdvance(self.output.text()) + 24
        self.output.setMinimumWidth(min(max(wanted, 420), MAX_FIELD_WIDTH))

    def folder_run(self) -> FolderRun:
        """The answers, paths made absolute against the model's folder (where the default output goes)."""
        base = self.session.path.parent if self.session.path else Path.cwd()
        output = self.output.text().strip()
        return FolderRun(_absolute(self.images.text().strip(), base), _absolute(output, base), self.preprocess,
                         self.pool.currentData(), self.batch_size.value(), self.engine.currentData(),
                         self.resume.isEnabled() and self.resume.isChecked())

    def _check(self) -> None:
        """Run only with an answer the command takes; say what is missing."""
        output = self.output.text().strip()
        folder = bool(output) and output_kind(output) == FOLDER
        self.resume.setEnabled(folder)
        problem = ""
        if not self.images.text().strip():
            problem = "Choose the folder of images."
        elif not output:
            problem = "Choose where the features go."
        elif self.engine.currentData() == RAY and not folder:
            problem = "Ray writes a Parquet dataset folder: give an output folder (ending in /)."
        self.hint.setText(problem)
        self.hint.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def _browse_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images", self.images.text())
        if folder:
            self.images.setText(folder)

    def _browse_output(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, "Save features as", self.output.text(), OUTPUT_FILTER)
        if path:
            suffix = ".npz" if chosen.endswith("(*.npz)") else ".parquet"
            self.output.setText(path if path.endswith((".parquet", ".npz")) else path + suffix)


def _layer_text(session: Session) -> str:
    sites = session.graph.call_sites(session.layer) if session.graph and session.layer else []
    if len(sites) > 1 and session.call_site in sites:
        return f"{session.layer} (call {sites.index(session.call_site) + 1} of {len(sites)})"
    return session.layer or ""


def _with_browse(edit: QLineEdit, browse: Callable[[], None]) -> QWidget:
    row = QWidget()
    line = QHBoxLayout(row)
    line.setContentsMargins(0, 0, 0, 0)
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    line.addWidget(edit, 1)
    line.addWidget(button)
    return row


def _absolute(text: str, base: Path) -> str:
    """``text`` against ``base`` when relative; a trailing "/" is kept (it asks for a dataset folder)."""
    if not text:
        return text
    path = Path(text).expanduser()
    absolute = str(path if path.is_absolute() else base / path)
    return f"{absolute}/" if text.endswith("/") else absolute


class FeatureJob(QObject):
    """One ``features`` run in a child process: progress from its stderr, Cancel stops it, the outcome is said
    through the session (its summary line, its error line, or what a stopped run kept)."""

    progressed = Signal(int, int)  # images done, images in total (0: not known yet)
    finished = Signal(str, str)  # DONE, FAILED or STOPPED; the line said to the user

    def __init__(self, session: Session, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.run: FolderRun | None = None
        self._heading = ""  # what runs, atop the progress dialog
        self.done = self.total = 0
        self.cancelled = False
        self._stderr = ""  # the part of the last line not ended yet
        self._stdout = ""
        # A read can end inside a character (a non-ASCII path): decoders that keep its first bytes for the next.
        self._decode_stderr = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._decode_stdout = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._error = ""  # the last "keras-explorer: " line
        self.process = QProcess(self)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error_occurred)
        self.progress: QProgressDialog | None = None

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, run: FolderRun) -> None:
        session = self.session
        graph, layer = session.graph, session.layer
        sites = graph.call_sites(layer)
        call = sites.index(session.call_site) if session.call_site in sites else 0
        self.run = run
        args = features_arguments(session.path, layer, call, run, session.runs_code, session.custom_objects,
                                  session.build)
        self._heading = f"{layer} on the images in {run.images}"
        self._show_progress(f"{self._heading}\nLoading the model…")
        session.message.emit(f"Computing {self._heading}…")
        self.process.start(sys.executable, command_prefix() + args)

    def cancel(self) -> None:
        """Ask the run to stop (it closes its output and exits); kill it if it has not within KILL_AFTER_MS."""
        if not self.running or self.cancelled:
            return
        self.cancelled = True
        if self.progress is not None:
            self.progress.setLabelText(f"{self._heading}\nStopping: closing the output…")
        self.process.terminate()
        QTimer.singleShot(KILL_AFTER_MS, self, self._kill)

    def shutdown(self) -> None:
        """The window closes: stop the run and wait for it (QProcess would kill it, leaving a broken file)."""
        self.cancel()
        if self.running and not self.process.waitForFinished(KILL_AFTER_MS):
            self.process.kill()
            self.process.waitForFinished(KILL_AFTER_MS)

    def _kill(self) -> None:
        if self.running:
            self.process.kill()

    def _show_progress(self, text: str) -> None:
        progress = QProgressDialog(text, "Cancel", 0, 0, self.parent())
        progress.setWindowTitle("Run Features on a Folder")
        progress.setWindowModality(Qt.WindowModality.NonModal)  # the window stays usable meanwhile
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.setMinimumDuration(0)
        progress.setMinimumWidth(480)
        progress.canceled.connect(self.cancel)
        progress.show()
        self.progress = progress

    # -- the child's output
    def _read_stderr(self) -> None:
        text = self._stderr + self._decode_stderr(bytes(self.process.readAllStandardError()))
        *lines, self._stderr = re.split(r"[\r\n]", text)
        for line in lines:
            if line.startswith(ERROR_PREFIX):
                self._error = line.removeprefix(ERROR_PREFIX)
        # The local bar ends its line only at the end of the run: the unfinished tail is its latest state.
        for line in (*lines, self._stderr):
            progress = progress_of(line)
            if progress is not None:
                self._progressed(*progress)

    def _read_stdout(self) -> None:
        self._stdout += self._decode_stdout(bytes(self.process.readAllStandardOutput()))

    def _progressed(self, done: int, total: int) -> None:
        if (done, total) == (self.done, self.total):
            return
        self.done, self.total = done, total
        if self.progress is not None and not self.cancelled:
            self.progress.setMaximum(total)
            self.progress.setValue(min(done, total) if total else 0)
            self.progress.setLabelText(f"{self._heading}\n{done} of {total or '?'} images")
        self.progressed.emit(done, total)

    # -- the end
    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_stderr()
        self._read_stdout()
        lines = [line for line in self._stdout.splitlines() if line.strip()]
        if code == 0 and status == QProcess.ExitStatus.NormalExit and lines:
            outcome, text = DONE, lines[-1]
            self.session.message.emit(text)
        elif self.cancelled:
            outcome, text = STOPPED, self._kept(code == INTERRUPTED and status == QProcess.ExitStatus.NormalExit)
            self.session.message.emit(text)
        else:
            outcome = FAILED
            ended = f"exit code {code}" if status == QProcess.ExitStatus.NormalExit else "it crashed"
            text = self._error or f"The features run ended unexpectedly ({ended}); see the log"
            self.session.fail(text)
        self._end(outcome, text)

    def _error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:  # no finished signal follows
            text = f"Cannot start {sys.executable}: {self.process.errorString()}"
            self.session.fail(text)
            self._end(FAILED, text)

    def _kept(self, closed: bool) -> str:
        """What a stopped run leaves: ``closed`` when it closed its output (the stop request), not killed."""
        out = self.run.output
        if not self.done:
            return f"Features run stopped before any image was done; nothing new was written to {out}"
        folder = output_kind(out) == FOLDER
        if closed:
            kept = f"{out} keeps their features" + (" (Resume continues the run)" if folder else "")
        elif folder:
            kept = f"{out} keeps the parts it completed (Resume continues the run)"
        else:
            kept = f"{out} may be incomplete"
        return f"Features run stopped after {self.done} of {self.total or '?'} images: {kept}"

    def _end(self, outcome: str, text: str) -> None:
        if self.progress is not None:
            self.progress.canceled.disconnect(self.cancel)
            self.progress.hide()
            self.progress.deleteLater()
            self.progress = None
        self.finished.emit(outcome, text)
