"""The command line's dispatch table, and how it words the core's structured errors.

The core's errors (explorer.runtime.errors) say what is wrong in neutral words, the window shows them as they
are; the command line words them with the flags that fix them (explorer.cli.common.describe). Every error here
comes from a real model built with Keras and saved to a real file.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.cli import COMMANDS, command_module, main
from explorer.cli.common import CommandError, describe, resolve_targets
from explorer.logs import LOG_DIR_VARIABLE, LOG_FILE_NAME
from explorer.model.files import load_graph
from explorer.model.graph import LayerGraph
from explorer.runtime.errors import (
    CallSiteOutOfRange,
    CustomObjectsNeedTrust,
    RuntimeFailure,
    UnknownLayer,
    UntrustedFile,
)
from explorer.runtime.extraction import build_extractor
from explorer.runtime.loading import load_model, open_model
from tests.support.models import build_sequential_dense, build_shared_layers

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60


class Saved:
    """The models of this module, built and saved once."""

    def __init__(self, keras: Any, folder: Path) -> None:
        self.folder = folder
        self.shared_model = build_shared_layers()  # shared_dense runs 3 times, twice 2 times
        self.shared = folder / "shared.keras"
        self.shared_model.save(self.shared)
        self.clean = folder / "clean.keras"  # no findings: loading it needs no trust
        build_sequential_dense().save(self.clean)
        inputs = keras.Input((4,), name="x")
        doubled = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
        self.lambda_file = folder / "lambda.keras"  # Python code in the file: a finding
        keras.Model(inputs, keras.layers.Dense(3, name="dense")(doubled)).save(self.lambda_file)
        self.marker = folder / "custom_objects_ran"
        self.defs = folder / "defs.py"  # were it run, it would leave the marker
        self.defs.write_text(f"from pathlib import Path\nPath({str(self.marker)!r}).touch()\n")
        self.features_npy = folder / "features.npy"
        np.save(self.features_npy, np.zeros(16, np.float32))

    def graph(self) -> LayerGraph:
        return load_graph(self.shared)


@pytest.fixture(scope="module")
def saved(keras_module, tmp_path_factory: pytest.TempPathFactory) -> Saved:
    return Saved(keras_module, tmp_path_factory.mktemp("cli_errors"))


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run main in this process; its exit code and the lines it wrote to stderr."""
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.strip().splitlines()


def _neutral(error: BaseException) -> None:
    """What the window shows: no command-line flag, no command name."""
    text = str(error)
    assert text and "--" not in text and "keras-explorer" not in text, text


# --------------------------------------------------------------------------- the dispatch table


def test_dispatch_table_covers_every_subcommand_in_the_help_and_the_readme(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["-h"])
    assert done.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps the description
    listed = re.search(r"Headless subcommands: (.+?) \(see", help_text)
    assert listed, help_text
    assert listed.group(1).split(", ") == list(COMMANDS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = {m.group(1) for m in re.finditer(r"^\| `keras-explorer ([a-z]+) ", readme, re.MULTILINE)}
    assert documented == set(COMMANDS)
    for name in COMMANDS:
        assert name == command_module(name).NAME and callable(command_module(name).run), name
        with pytest.raises(SystemExit) as done:
            main([name, "-h"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: keras-explorer {name} "), name


# --------------------------------------------------------------------------- each structured error, worded


def test_unknown_layer(saved: Saved, capsys) -> None:
    with pytest.raises(UnknownLayer) as resolved:
        resolve_targets(saved.graph(), ["nope"], None)
    with pytest.raises(UnknownLayer) as extracted:
        build_extractor(saved.shared_model, "nope")
    for error in (resolved.value, extracted.value):
        assert (error.layer, error.model_name) == ("nope", "shared")
        _neutral(error)
        assert describe(error) == "no layer 'nope' in shared (see 'keras-explorer summary')"
    code, lines = _cli(["export", saved.shared, "--layer", "nope", "-o", saved.folder / "x.keras"], capsys)
    assert code == 1
    assert lines == ["keras-explorer: no layer 'nope' in shared (see 'keras-explorer summary')"]


def test_call_site_out_of_range(saved: Saved, capsys) -> None:
    with pytest.raises(CallSiteOutOfRange) as resolved:
        resolve_targets(saved.graph(), ["shared_dense"], [3])
    with pytest.raises(CallSiteOutOfRange) as extracted:
        build_extractor(saved.shared_model, "shared_dense", (3,))
    for error in (resolved.value, extracted.value):
        assert (error.layer, error.call, error.call_count) == ("shared_dense", 3, 3)
        _neutral(error)
        assert describe(error) == "layer 'shared_dense' runs at 3 call site(s): --call 0..2"
    images = saved.folder / "images"
    images.mkdir(exist_ok=True)
    code, lines = _cli(["features", saved.shared, "--layer", "twice", "--call", "2", "--images", images,
                        "-o", saved.folder / "f.npz"], capsys)
    assert code == 1
    assert lines == ["keras-explorer: layer 'twice' runs at 2 call site(s): --call 0..1"]
    assert not (saved.folder / "f.npz").exists()


def test_calls_pair_with_layers_once_or_one_by_one(saved: Saved, capsys) -> None:
    graph = saved.graph()
    assert [t.call_site for t in resolve_targets(graph, ["shared_dense", "twice"], [1])] == [(1,), (1,)]
    assert [t.call_site for t in resolve_targets(graph, ["shared_dense", "twice"], [2, 0])] == [(2,), (0,)]
    assert [t.call_site for t in resolve_targets(graph, ["merge"], None)] == [(0,)]
    with pytest.raises(CommandError, match=r"give --call once or once per --layer \(3 layers, 2 calls\)"):
        resolve_targets(graph, ["shared_dense", "twice", "merge"], [0, 1])
    code, lines = _cli(["export", saved.shared, "--layer", "shared_dense", "--layer", "twice", "--layer", "merge",
                        "--call", "0", "--call", "1", "-o", saved.folder / "y.keras"], capsys)
    assert code == 1
    assert lines == ["keras-explorer: give --call once or once per --layer (3 layers, 2 calls)"]


def test_untrusted_file(saved: Saved, capsys) -> None:
    findings = load_graph(saved.lambda_file).findings
    assert findings, "the safety check flags the Lambda"
    with pytest.raises(UntrustedFile) as refused:
        load_model(saved.lambda_file)
    error = refused.value
    assert (error.file, error.findings) == ("lambda.keras", tuple(findings))
    _neutral(error)
    assert str(error).startswith(f"refusing to load lambda.keras into Keras: {len(findings)} safety finding(s)")
    assert describe(error).endswith("(listed above); pass --trust to load it anyway")
    x = saved.folder / "x.npy"
    np.save(x, np.ones(4, np.float32))
    out = saved.folder / "refused.npy"
    code, lines = _cli(["activations", saved.lambda_file, "--layer", "dense", "--input", x, "--npy", out], capsys)
    assert code == 3
    assert lines == [*(f"finding: {f}" for f in findings),
                     f"keras-explorer: refusing to load {saved.lambda_file} into Keras: the safety check found "
                     f"{len(findings)} thing(s) that could run code (listed above); pass --trust to load it anyway"]
    assert not out.exists()


def test_custom_objects_need_trust(saved: Saved, capsys) -> None:
    with pytest.raises(CustomObjectsNeedTrust) as refused:
        open_model(saved.clean, trust=False, custom_objects=str(saved.defs))
    _neutral(refused.value)
    assert describe(refused.value) == "custom objects are Python code: trust the file to run them (--trust)"
    out = saved.folder / "custom.npy"
    code, lines = _cli(["activations", saved.clean, "--layer", "hidden", "--input", saved.features_npy,
                        "--npy", out, "--custom-objects", saved.defs], capsys)
    assert code == 1
    assert lines == ["keras-explorer: custom objects are Python code: trust the file to run them (--trust)"]
    assert not saved.marker.exists(), "the custom objects ran without trust"
    assert not out.exists()


def test_structured_errors_survive_a_pickle_round_trip(saved: Saved) -> None:
    """The worker sends what fails across a pipe: the fields and both wordings must arrive intact."""
    errors = [UntrustedFile("lambda.keras", load_graph(saved.lambda_file).findings), CustomObjectsNeedTrust(),
              UnknownLayer("block/nope", "shared"), CallSiteOutOfRange("shared_dense", 3, 3)]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and isinstance(copy, RuntimeFailure)
        assert copy.args == error.args and vars(copy) == vars(error)
        assert (str(copy), describe(copy)) == (str(error), describe(error))


# --------------------------------------------------------------------------- the log


def test_a_failing_command_logs_its_traceback_and_says_one_line(saved: Saved, tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = {**os.environ, LOG_DIR_VARIABLE: str(log), "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "explorer", "export", str(saved.shared), "--layer", "nope",
                           "-o", str(tmp_path / "x.keras")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["keras-explorer: no layer 'nope' in shared (see 'keras-explorer summary')"]
    text = (log / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert "explorer.cli INFO export failed: no layer 'nope' in shared" in text, text
    assert "Traceback (most recent call last)" in text and "explorer.runtime.errors.UnknownLayer" in text, text
