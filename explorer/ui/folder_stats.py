"""File > Layer Statistics over a Folder…: the headless ``stats`` command over a folder of images in a child
process (explorer.ui.command_job), then its Parquet file read in the background into per-layer numbers that the
graph is offered to be coloured by."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QLabel, QMessageBox, QWidget

from explorer.live.protocol import BuildFromCode
from explorer.ui.command_job import DONE, CommandJob, loading_arguments, refusal_to_run
from explorer.ui.folder_dialog import FolderDialog
from explorer.ui.layer_numbers import PerLayerNumbers
from explorer.ui.layer_values import LayerKey
from explorer.ui.session import Session, reason_of

FOLDER_MEAN, FOLDER_DEAD = "folder: activation mean", "folder: dead channels"


@dataclass(frozen=True)
class StatsRun:
    images: str  # a folder, or a pattern such as photos/**/*.jpg
    output: str  # STATS.parquet
    preprocess: str  # the Activations panel's preset; "custom" (mean/std) is not a command option
    batch_size: int = 16


def stats_arguments(model: str | Path, run: StatsRun, trust: bool = False, custom_objects: str | None = None,
                    build: BuildFromCode | None = None, weights: str | None = None) -> list[str]:
    """The ``stats`` command line (after ``python -m explorer``)."""
    args = ["stats", str(model), "--images", run.images, "-o", run.output, "--batch-size", str(run.batch_size)]
    if run.preprocess != "custom":  # custom: the command uses the suggested preset
        args += ["--preprocess", run.preprocess]
    return args + loading_arguments(trust, custom_objects, build, weights)


def folder_numbers(path: str | Path) -> tuple[int, dict[str, dict[LayerKey, float]]]:
    """(images, {measure: per layer and call site}) from a ``stats`` file: the mean over a layer's channels of
    their folder means (the layer's mean activation over the folder), and of the fraction of images where each
    channel is dead (the expected fraction of dead channels on an image of the folder)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["layer", "call_site", "mean", "dead_fraction", "images"])
    sums: dict[LayerKey, list[float]] = {}
    for layer, site, mean, dead in zip(*(table.column(name).to_pylist()
                                         for name in ("layer", "call_site", "mean", "dead_fraction")), strict=True):
        entry = sums.setdefault((layer, tuple(site)), [0.0, 0.0, 0])
        entry[0] += mean
        entry[1] += dead
        entry[2] += 1
    images = table.column("images")[0].as_py() if table.num_rows else 0
    return images, {FOLDER_MEAN: {key: total / count for key, (total, _dead, count) in sums.items()},
                    FOLDER_DEAD: {key: dead / count for key, (_total, dead, count) in sums.items()}}


def choose_folder_measure(parent: QWidget, text: str) -> str | None:
    """Ask which of the folder's numbers to colour the graph by (None: not now)."""
    box = QMessageBox(QMessageBox.Icon.Question, "Layer Statistics over a Folder",
                      f"{text}\n\nColour the graph by the folder's numbers?", parent=parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # the command's line quotes paths
    choices = {box.addButton("Mean activation", QMessageBox.ButtonRole.AcceptRole): FOLDER_MEAN,
               box.addButton("Dead channels", QMessageBox.ButtonRole.AcceptRole): FOLDER_DEAD}
    box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    return choices.get(box.clickedButton())


class FolderStatsDialog(FolderDialog):
    """Asks for the images and the output; the preprocessing is the Activations panel's."""

    def __init__(self, session: Session, preprocess: str, parent: QWidget | None = None) -> None:
        model = session.path
        super().__init__("Layer Statistics over a Folder", session, preprocess,
                         str(model.with_name(f"{model.stem}_stats.parquet")) if model else "", 16,
                         [("Layers", QLabel("every layer, each call of a shared one"))], parent)
        self.output.setToolTip("One row per layer and channel: mean, max, and the fraction of images where the "
                               "channel is dead")
        self.form.addRow("Batch size", self.batch_size)
        self.check()

    def stats_run(self) -> StatsRun:
        images, output = self.paths()
        return StatsRun(images, output, self.preprocess, self.batch_size.value())

    def browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save statistics as", self.output.text(), "Parquet (*.parquet)")
        if path:
            self.output.setText(path if path.endswith(".parquet") else f"{path}.parquet")


class StatsJob(CommandJob):
    title = "Layer Statistics over a Folder"
    command = "stats"

    def __init__(self, session: Session, parent: QWidget) -> None:
        super().__init__(session, parent)
        self.run: StatsRun | None = None

    def start(self, run: StatsRun) -> None:
        session = self.session
        self.run = run
        self.launch(stats_arguments(session.path, run, session.runs_code, session.custom_objects, session.build,
                                    session.graph.weights_file if session.graph else None),
                    f"layer statistics over the images in {run.images}")

    def stopped_text(self, closed: bool) -> str:
        # The command writes its file once, at the end: a stopped run leaves none.
        return (f"Layer statistics stopped after {self.done} of {self.total or '?'} images; "
                f"{self.run.output} was not written")


class FolderStats(QObject):
    """The action: asks, runs the command, reads what it wrote, offers to colour the graph by it."""

    def __init__(self, session: Session, numbers: PerLayerNumbers, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.numbers = session, numbers
        self.job: StatsJob | None = None

    def run(self, preprocess: str) -> StatsJob | None:
        session = self.session
        refusal = refusal_to_run(session)
        if refusal:
            session.fail(refusal)
            return None
        if self.job is not None and self.job.running:
            session.fail("Layer statistics are being computed: cancel them first")
            return None
        dialog = FolderStatsDialog(session, preprocess, self.parent())
        accepted, run = dialog.exec() == QDialog.DialogCode.Accepted, dialog.stats_run()
        dialog.deleteLater()
        if not accepted:
            return None
        if self.job is not None:
            self.job.deleteLater()
        self.job = StatsJob(session, self.parent())
        self.job.finished.connect(lambda outcome, line: self._finished(outcome, line, run.output))
        self.job.start(run)
        return self.job

    def _finished(self, outcome: str, line: str, output: str) -> None:
        if outcome != DONE:
            return  # the job has said why
        path = self.session.path

        def work(_cancelled: threading.Event) -> tuple[int, dict[str, dict[LayerKey, float]]]:
            return folder_numbers(output)

        self.session.tasks.submit("folder_stats", work, lambda result: self._read(path, line, *result),
                                  lambda error: self.session.fail(f"Cannot read {output}: {reason_of(error)}", error))

    def _read(self, model: Path | None, line: str, images: int, measures: dict[str, dict[LayerKey, float]]) -> None:
        if model != self.session.path:
            return  # another model was opened meanwhile: these are not its layers
        self.numbers.add_folder(measures, images)
        choice = choose_folder_measure(self.parent(), line)
        if choice is not None:
            self.session.set_colour_by(choice)

    def shutdown(self) -> None:
        if self.job is not None:
            self.job.shutdown()
