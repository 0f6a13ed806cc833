"""``summary`` and ``graph`` from the command line (real subprocesses), and their one-line errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.support.processes import assert_clean, run_python


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_cli_graph_writes_the_image(python, python_env, ui_model, tmp_path, suffix):
    out = tmp_path / f"out.{suffix}"
    result = run_python(python, python_env, "-m", "explorer", "graph", str(ui_model.path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert out.exists() and out.stat().st_size > 0
    assert result.stdout.strip() == str(out)
    if suffix == "png":
        with Image.open(out) as image:
            assert image.format == "PNG" and image.width > 0 and image.height > 0
    else:
        assert "<svg" in out.read_text(encoding="utf-8")


def test_cli_graph_expand_draws_the_nested_layers(python, python_env, ui_model, tmp_path):
    collapsed, expanded = tmp_path / "collapsed.svg", tmp_path / "expanded.svg"
    for out, extra in ((collapsed, []), (expanded, ["--expand"])):
        result = run_python(python, python_env, "-m", "explorer", "graph", str(ui_model.path), "-o", str(out), *extra)
        assert result.returncode == 0, result.stderr
    assert "inner_dense" not in collapsed.read_text(encoding="utf-8")
    assert "inner_dense" in expanded.read_text(encoding="utf-8")


def test_cli_summary_json(python, python_env, ui_model):
    result = run_python(python, python_env, "-m", "explorer", "summary", str(ui_model.path), "--json")
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    data = json.loads(result.stdout)
    assert data["model"]["name"] == ui_model.name
    assert data["model"]["total_params"] == ui_model.total_params
    assert data["model"]["trainable_params"] == ui_model.trainable_params
    assert len(data["layers"]) == len(ui_model.layer_paths)
    assert [layer["name"] for layer in data["layers"]] == [p.rsplit("/", 1)[-1] for p in ui_model.layer_paths]
    shared = next(layer for layer in data["layers"] if layer["name"] == "shared_dense")
    assert shared["calls"] == 2 and shared["inbound"] == ["input_a", "input_b"]


def test_cli_summary_text(python, python_env, ui_model):
    result = run_python(python, python_env, "-m", "explorer", "summary", str(ui_model.path))
    assert result.returncode == 0, result.stderr
    assert f'Model: "{ui_model.name}"' in result.stdout
    assert f"Total params: {ui_model.total_params:,}" in result.stdout


def _bad_inputs(tmp_path, ui_model):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.keras"
    noise.write_bytes(b"\x00\x13garbage" * 100)
    return {
        "missing": (["summary", str(tmp_path / "missing.keras")], "no such file"),
        "empty": (["summary", str(empty), "--json"], "the file is empty"),
        "noise": (["graph", str(noise), "-o", str(tmp_path / "x.png")], "not a Keras model"),
        "format": (["graph", str(ui_model.path), "-o", str(tmp_path / "x.jpg")], "unsupported output"),
        "folder": (["graph", str(ui_model.path), "-o", str(tmp_path / "nowhere" / "x.png")], "could not write"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "noise", "format", "folder"])
def test_cli_errors_are_one_line_without_traceback(python, python_env, ui_model, tmp_path, case):
    args, reason = _bad_inputs(tmp_path, ui_model)[case]
    result = run_python(python, python_env, "-m", "explorer", *args)
    assert result.returncode != 0
    assert_clean(result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("keras-explorer: ")
    assert reason in lines[0]
    assert result.stdout == ""
