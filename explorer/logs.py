"""The log file a bug report can carry: a rotating file in the user's state folder, tracebacks included.

The user still sees one clean line per error; the details go here.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

import platformdirs

APP_DIR_NAME = "keras-explorer"
LOG_FILE_NAME = "keras-explorer.log"
MAX_BYTES = 2 << 20  # per file; with BACKUPS older files, a bug report stays small
BACKUPS = 3
FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
LOG_DIR_VARIABLE = "KERAS_EXPLORER_LOG_DIR"  # tests and packaged builds point the log elsewhere

log = logging.getLogger("explorer")


def log_folder() -> Path:
    override = os.environ.get(LOG_DIR_VARIABLE)
    return Path(override) if override else Path(platformdirs.user_state_dir(APP_DIR_NAME)) / "log"


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Send the ``explorer`` loggers to the rotating file (once per process); None if it cannot be written."""
    existing = next((h for h in log.handlers if isinstance(h, logging.handlers.RotatingFileHandler)), None)
    if existing is not None:  # other handlers (pytest's capture) may come first
        return Path(existing.baseFilename)
    folder = log_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(folder / LOG_FILE_NAME, maxBytes=MAX_BYTES,
                                                       backupCount=BACKUPS, encoding="utf-8")
    except OSError:
        return None  # a read-only home must not stop the app
    handler.setFormatter(logging.Formatter(FORMAT))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return folder / LOG_FILE_NAME
