"""A headless command (``features``, ``stats``) run from the window in a child process, so TensorFlow (and Ray)
stay out of it: its progress read from its stderr and shown, Cancel stopping it, its outcome said through the
session. A stopped command closes its output first, so what it wrote stays readable."""

from __future__ import annotations

import codecs
import re
import sys

from PySide6.QtCore import QObject, QProcess, Qt, QTimer, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from explorer.live.protocol import BuildFromCode
from explorer.text import shape_text
from explorer.ui.session import Session

ERROR_PREFIX = "keras-explorer: "  # the command's one line on bad input (explorer.cli.common.PREFIX)
INTERRUPTED = 130  # the command's exit code after a stop request (explorer.cli.INTERRUPTED)
KILL_AFTER_MS = 5000  # a run that ignores the stop request (stuck in native code) is killed after this
LOCAL_BAR = re.compile(r"(\d+)/(\d+) images")  # the local engine's "\r[####   ] 10/100 images, 5.3/s"
RAY_PROGRESS = re.compile(r"Total Progress: (\d+)/(\d+|\?)")  # Ray Data's log line; "?" while it counts
DONE, FAILED, STOPPED = "done", "failed", "stopped"


def loading_arguments(trust: bool = False, custom_objects: str | None = None,
                      build: BuildFromCode | None = None, weights: str | None = None) -> list[str]:
    """The options by which a command loads the model as the window does (explorer.cli.common.add_trust_options);
    ``weights``: an architecture JSON's save_weights file."""
    args = ["--trust"] if trust else []
    if custom_objects:
        args += ["--custom-objects", custom_objects]
    if build is not None:
        args += ["--build", build.call]
        if build.input_shape:
            args += ["--input-shape", shape_text(build.input_shape)]
    if weights:
        args += ["--weights", weights]
    return args


def refusal_to_run(session: Session) -> str | None:
    """Why the open file may not be run by a command (None: it may)."""
    if session.path is None:
        return "Open a model first"
    if session.refusal:
        return session.refusal
    if session.refused:
        return "The safety check found code in this file: trust it before running it on a folder"
    return None


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


class CommandJob(QObject):
    """One command run; subclasses say what it is (``title``, ``command``) and what a stopped run leaves
    (``stopped_text``)."""

    progressed = Signal(int, int)  # images done, images in total (0: not known yet)
    finished = Signal(str, str)  # DONE, FAILED or STOPPED; the line said to the user
    title = "Command"  # of the progress dialog
    command = "command"  # its name, in messages

    def __init__(self, session: Session, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
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

    def launch(self, args: list[str], heading: str) -> None:
        """Run ``keras-explorer ARGS``; ``heading`` says what it computes."""
        self._heading = heading
        self._show_progress(f"{heading}\nLoading the model…")
        self.session.message.emit(f"Computing {heading}…")
        self.process.start(sys.executable, command_prefix() + args)

    def stopped_text(self, closed: bool) -> str:
        """What a stopped run leaves: ``closed`` when it closed its output (the stop request), not killed."""
        raise NotImplementedError

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
        progress.setWindowTitle(self.title)
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
            outcome = STOPPED
            text = self.stopped_text(code == INTERRUPTED and status == QProcess.ExitStatus.NormalExit)
            self.session.message.emit(text)
        else:
            outcome = FAILED
            ended = f"exit code {code}" if status == QProcess.ExitStatus.NormalExit else "it crashed"
            text = self._error or f"The {self.command} run ended unexpectedly ({ended}); see the log"
            self.session.fail(text)
        self._end(outcome, text)

    def _error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:  # no finished signal follows
            text = f"Cannot start {sys.executable}: {self.process.errorString()}"
            self.session.fail(text)
            self._end(FAILED, text)

    def _end(self, outcome: str, text: str) -> None:
        if self.progress is not None:
            self.progress.canceled.disconnect(self.cancel)
            self.progress.hide()
            self.progress.deleteLater()
            self.progress = None
        self.finished.emit(outcome, text)
