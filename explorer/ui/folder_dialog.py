"""The dialog that starts a command over a folder of images (explorer.ui.command_job): the images, the output,
the batch size and the Activations panel's preprocessing; each command adds its own rows and checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.ui.session import Session

MAX_FIELD_WIDTH = 760  # px: longer paths scroll in their field


class FolderDialog(QDialog):
    """``rows`` come first (what the command computes); ``problem`` says what keeps Run disabled."""

    def __init__(self, title: str, session: Session, preprocess: str, output: str, batch_size: int,
                 rows: list[tuple[str, QWidget]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.session, self.preprocess = session, preprocess
        self.images = QLineEdit(str(session.image_path.parent) if session.image_path else "")
        self.images.setPlaceholderText("a folder, or a pattern such as photos/**/*.jpg")
        self.output = QLineEdit(output)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(batch_size)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.form = QFormLayout()
        for label, widget in rows:
            self.form.addRow(label, widget)
        self.form.addRow("Preprocessing", QLabel(
            f"{preprocess}, as in the Activations panel" if preprocess != "custom" else
            "the suggested preset (the Activations panel's custom mean/std is not passed on)"))
        self.form.addRow("Images", _with_browse(self.images, self._browse_images))
        self.form.addRow("Output", _with_browse(self.output, self.browse_output))
        column = QVBoxLayout(self)
        column.addLayout(self.form)
        column.addWidget(self.hint)
        column.addWidget(self.buttons)
        for edit in (self.images, self.output):
            edit.textChanged.connect(self.check)
        # Wide enough to show the default output whole (its file name is at the end), within reason.
        wanted = self.output.fontMetrics().horizontalAdvance(self.output.text()) + 24
        self.output.setMinimumWidth(min(max(wanted, 420), MAX_FIELD_WIDTH))

    def problem(self) -> str:
        """What keeps the command from running ("" when nothing does)."""
        if not self.images.text().strip():
            return "Choose the folder of images."
        if not self.output.text().strip():
            return "Choose where the output goes."
        return ""

    def browse_output(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Run only with an answer the command takes; say what is missing."""
        problem = self.problem()
        self.hint.setText(problem)
        self.hint.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def paths(self) -> tuple[str, str]:
        """(images, output), made absolute against the model's folder (where the default output goes)."""
        base = self.session.path.parent if self.session.path else Path.cwd()
        return _absolute(self.images.text().strip(), base), _absolute(self.output.text().strip(), base)

    def _browse_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images", self.images.text())
        if folder:
            self.images.setText(folder)


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
