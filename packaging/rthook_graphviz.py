"""PyInstaller runtime hook: put the bundled Graphviz first on PATH, so ``shutil.which("dot")`` in
explorer.layout.graphviz finds it (the ``dot`` there is a wrapper that points the real binary at its own
libraries and plugins, see keras-explorer.spec)."""

import os
import sys


def _use_bundled_graphviz() -> None:
    folder = os.path.join(sys._MEIPASS, "graphviz", "bin")
    if os.path.isfile(os.path.join(folder, "dot")):
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", os.defpath)


_use_bundled_graphviz()
