"""File > Run Features on a Folder…: the selected layer over every image of a folder, as the headless ``features``
command in a child process (explorer.ui.command_job: its progress shown, Cancel stopping it)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLabel, QWidget

from explorer.live.protocol import BuildFromCode
from explorer.runtime.feature_store import FOLDER, output_kind
from explorer.ui.command_job import CommandJob, loading_arguments
from explorer.ui.folder_dialog import FolderDialog
from explorer.ui.session import Session

LOCAL, RAY = "local", "ray"
POOL_CHOICES = (("avg", "avg: one value per channel (the usual embedding)"),
                ("max", "max: the largest value per channel"),
                ("none", "none: the full feature maps"))
OUTPUT_FILTER = "Parquet file (*.parquet);;NumPy arrays, small jobs (*.npz)"


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
                       custom_objects: str | None = None, build: BuildFromCode | None = None,
                       weights: str | None = None) -> list[str]:
    """The ``features`` command line (after ``python -m explorer``) for a layer at its ``call``-th call site."""
    args = ["features", str(model), "--layer", layer, "--call", str(call), "--images", run.images,
            "-o", run.output, "--pool", run.pool, "--batch-size", str(run.batch_size), "--engine", run.engine]
    if run.preprocess != "custom":  # custom: the command uses the suggested preset, as it says on stderr
        args += ["--preprocess", run.preprocess]
    if run.resume:
        args.append("--resume")
    return args + loading_arguments(trust, custom_objects, build, weights)


def default_output(model: Path, layer: str) -> str:
    return str(model.with_name(f"{model.stem}_{layer.replace('/', '__')}_features.parquet"))


class FolderFeaturesDialog(FolderDialog):
    """Asks for the images folder, the output and the options; the layer and preprocessing are the window's."""

    def __init__(self, session: Session, preprocess: str, parent: QWidget | None = None,
                 ray: bool | None = None) -> None:
        model, layer = session.path, session.layer or ""
        super().__init__("Run Features on a Folder", session, preprocess,
                         default_output(model, layer) if model else "", 32, [("Layer", QLabel(_layer_text(session)))],
                         parent)
        self.output.setToolTip("OUT.parquet: one file · OUT/ (ending in /): a Parquet dataset folder, written in "
                               "whole parts, that Resume can continue · OUT.npz: NumPy arrays, for small jobs")
        self.pool = QComboBox()
        for value, text in POOL_CHOICES:
            self.pool.addItem(text, value)
        self.engine = QComboBox()
        self.engine.addItem("local: this computer", LOCAL)
        if ray_installed() if ray is None else ray:
            self.engine.addItem("ray: Ray Data (a local Ray runtime)", RAY)
        else:
            self.engine.setToolTip("Ray is not installed: pip install 'keras-explorer[distributed]'")
        self.engine.setEnabled(self.engine.count() > 1)
        self.resume = QCheckBox("Resume: skip the images the output folder already holds")
        self.resume.setToolTip("For an output folder (ending in /): a single file cannot be continued")
        self.form.addRow("Pooling", self.pool)
        self.form.addRow("Batch size", self.batch_size)
        self.form.addRow("Engine", self.engine)
        self.form.addRow("", self.resume)
        self.engine.currentIndexChanged.connect(self.check)
        self.check()

    def folder_run(self) -> FolderRun:
        """The answers, paths made absolute against the model's folder (where the default output goes)."""
        images, output = self.paths()
        return FolderRun(images, output, self.preprocess, self.pool.currentData(), self.batch_size.value(),
                         self.engine.currentData(), self.resume.isEnabled() and self.resume.isChecked())

    def check(self) -> None:
        self.resume.setEnabled(self._to_folder())
        super().check()

    def problem(self) -> str:
        problem = super().problem()
        if not problem and self.engine.currentData() == RAY and not self._to_folder():
            problem = "Ray writes a Parquet dataset folder: give an output folder (ending in /)."
        return problem

    def _to_folder(self) -> bool:
        output = self.output.text().strip()
        return bool(output) and output_kind(output) == FOLDER

    def browse_output(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, "Save features as", self.output.text(), OUTPUT_FILTER)
        if path:
            suffix = ".npz" if chosen.endswith("(*.npz)") else ".parquet"
            self.output.setText(path if path.endswith((".parquet", ".npz")) else path + suffix)


def _layer_text(session: Session) -> str:
    sites = session.graph.call_sites(session.layer) if session.graph and session.layer else []
    if len(sites) > 1 and session.call_site in sites:
        return f"{session.layer} (call {sites.index(session.call_site) + 1} of {len(sites)})"
    return session.layer or ""


class FeatureJob(CommandJob):
    """One ``features`` run: the session's layer at its call site over the folder's images."""

    title = "Run Features on a Folder"
    command = "features"

    def __init__(self, session: Session, parent: QWidget) -> None:
        super().__init__(session, parent)
        self.run: FolderRun | None = None

    def start(self, run: FolderRun) -> None:
        session = self.session
        graph, layer = session.graph, session.layer
        sites = graph.call_sites(layer)
        call = sites.index(session.call_site) if session.call_site in sites else 0
        self.run = run
        args = features_arguments(session.path, layer, call, run, session.runs_code, session.custom_objects,
                                  session.build, graph.weights_file)
        self.launch(args, f"{layer} on the images in {run.images}")

    def stopped_text(self, closed: bool) -> str:
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
