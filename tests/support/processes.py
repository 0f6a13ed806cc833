"""Child processes of the tests: the app and its commands run as a user runs them, and what they left."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from explorer.resources import resources_dir

PROCESS_TIMEOUT_S = 60
IMAGES = resources_dir() / "images"


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_python(python: str, env: dict[str, str], *args: str, cwd: Path | None = None,
               timeout: float = PROCESS_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def assert_clean(stderr: str) -> None:
    """No traceback, and none of the ways a Qt / PySide6 process can die at exit."""
    for marker in ("Traceback", "bool_dealloc", "Fatal Python error", "Aborted", "Segmentation fault"):
        assert marker not in stderr, stderr


def assert_ok(run: Run) -> None:
    assert run.returncode == 0, f"{run.args}: exit {run.returncode}\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]


def image_folder(folder: Path) -> Path:
    """``folder/images``: two bundled pictures and a truncated one (its header reads, its pixels do not)."""
    images = folder / "images"
    images.mkdir()
    for name in ("brick.png", "grass.png"):
        (images / name).write_bytes((IMAGES / name).read_bytes())
    data = (IMAGES / "gravel.png").read_bytes()
    (images / "broken.png").write_bytes(data[: len(data) // 3])
    return images
