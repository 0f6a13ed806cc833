"""Defence in depth while Keras loads a file: a Python audit hook refuses sockets, new processes and (unless
the user trusted the file) ``marshal`` loads, and the loading process gets its own HOME and temp folder."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.system",
                     "os.startfile", "pty.", "ctypes.dlopen", "urllib.Request", "webbrowser.")


class _State(threading.local):
    active = False
    allow_code = False


_state = _State()
_installed = False
_install_lock = threading.Lock()


def _hook(event: str, _args: tuple) -> None:
    if not _state.active:
        return
    if event.startswith(_BLOCKED_PREFIXES):
        raise PermissionError(f"refused while loading a model file: {event}")
    if event in ("marshal.loads", "marshal.load") and not _state.allow_code and not _importing():
        raise PermissionError(f"refused while loading a model file: {event} (Python bytecode)")


def _importing() -> bool:
    """The import system reading an installed module's cached bytecode (tf-keras imports lazily while it
    loads): not bytecode from the model file, which Keras unmarshals itself."""
    caller = sys._getframe(2).f_code  # 0: this function, 1: the hook, 2: whoever called marshal
    return caller.co_filename == "<frozen importlib._bootstrap_external>" and caller.co_name == "_compile_bytecode"


@contextlib.contextmanager
def loading_guard(allow_code: bool = False) -> Iterator[None]:
    """While active (in this thread), the refused events raise PermissionError inside Keras' loader."""
    global _installed
    with _install_lock:
        if not _installed:  # audit hooks cannot be removed: install once, switch with a flag
            sys.addaudithook(_hook)
            _installed = True
    _state.active, _state.allow_code = True, allow_code
    try:
        yield
    finally:
        _state.active, _state.allow_code = False, False


def private_home() -> str:
    """Point HOME, the temp folder and Keras' cache at a fresh folder of this process's own."""
    home = tempfile.mkdtemp(prefix="keras-explorer-worker-")
    temporary = os.path.join(home, "tmp")
    os.makedirs(temporary)
    os.environ.update({"HOME": home, "TMPDIR": temporary, "KERAS_HOME": os.path.join(home, ".keras")})
    tempfile.tempdir = temporary
    return home

