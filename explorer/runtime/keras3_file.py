"""Save as Keras 3: the whole model of a file as a Keras 3 ``.keras`` archive that Keras loads with safe mode on,
verified in a fresh Python process that imports only Keras (not this package) against the outputs of the model
as its own Keras computes them (tf-keras for a Keras 2 file). Nothing is left at the target unless verified."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from explorer.live.protocol import KERAS3_FORMAT, ExportReport
from explorer.runtime.errors import RuntimeFailure, UntrustedFile
from explorer.runtime.guard import loading_guard
from explorer.runtime.keras2 import TOLERANCE, check_outputs, fixed_inputs, is_keras2, load_both, outputs_of
from explorer.runtime.keras_graph import input_specs
from explorer.runtime.loading import LiveModel, load_model
from explorer.text import one_line

VERIFY_TIMEOUT_S = 300.0
# The fresh process: plain Keras, safe mode on; it reports whether anything of ours was imported.
RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    model = keras.saving.load_model(sys.argv[1], compile=False, safe_mode=True)
    with np.load(sys.argv[2]) as arrays:
        inputs = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    result = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    flat = list(result.values()) if isinstance(result, dict) else list(result) if isinstance(result, (list, tuple)) \\
        else [result]
    np.savez(sys.argv[3], *[np.asarray(value) for value in flat])
    print(json.dumps({"ours_imported": any(name.split(".")[0] == "explorer" for name in sys.modules)}))
""")


def save_as_keras3(source: str | Path, graph: Any, out: str | Path, inputs: dict[str, np.ndarray] | None = None,
                   trust: bool = False, live: LiveModel | None = None) -> ExportReport:
    """Write ``source``'s model to ``out`` (a ``.keras`` path) and verify it; ``inputs`` (without batch axis): the
    current input to compare on, else a fixed one. ``live``: the file's model already loaded (else loaded here)."""
    out = Path(out)
    if out.suffix != ".keras":
        raise RuntimeFailure(f"{out.name}: a Keras 3 file must end in .keras")
    if graph.findings and not trust:
        raise UntrustedFile(Path(source).name, graph.findings)
    if live is not None and live.keras2 is not None:
        original, model = live.keras2.model, live.keras2.twin()
    elif is_keras2(graph):
        with loading_guard(allow_code=trust):
            original, model = load_both(source, graph, trust)
    else:
        original = model = live.model if live is not None else load_model(source, trust, graph)
    arrays = ([np.asarray(inputs[spec.name], spec.dtype)[None] for spec in input_specs(model)] if inputs
              else fixed_inputs(model))
    expected = outputs_of(original, arrays)
    partial = out.with_name(f".{out.stem}.partial.keras")  # renamed to ``out`` once verified
    try:
        model.save(partial)
        got, ours = _reload(partial, arrays)
        if ours:
            raise RuntimeFailure("the saved file needs Keras Explorer's own code to load")
        difference = check_outputs(expected, got, f"{out.name} reloaded by Keras")
    except RuntimeFailure as error:
        partial.unlink(missing_ok=True)
        return ExportReport(str(out), KERAS3_FORMAT, (), float("inf"), False, f"{error}; nothing was written")
    partial.replace(out)
    return ExportReport(str(out), KERAS3_FORMAT, (), difference, True,
                        f"verified: Keras 3 loads it with safe mode on, outputs within {difference:.2g} of "
                        f"{'tf-keras' if is_keras2(graph) else 'Keras'} (tolerance {TOLERANCE:g})")


def _reload(path: Path, arrays: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    with tempfile.TemporaryDirectory(prefix="keras-explorer-upgrade-") as scratch:
        np.savez(Path(scratch) / "inputs.npz", *arrays)
        done = subprocess.run([sys.executable, "-c", RELOAD, str(path), str(Path(scratch) / "inputs.npz"),
                               str(Path(scratch) / "outputs.npz")], capture_output=True, text=True,
                              timeout=VERIFY_TIMEOUT_S, cwd=scratch)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise RuntimeFailure(f"Keras could not load the saved file: {one_line(lines[-1] if lines else '?')}")
        with np.load(Path(scratch) / "outputs.npz") as outputs:
            got = [outputs[f"arr_{i}"] for i in range(len(outputs.files))]
        return got, bool(json.loads(done.stdout.strip().splitlines()[-1])["ours_imported"])
