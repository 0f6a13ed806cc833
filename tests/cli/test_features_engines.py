"""``features`` to Parquet with the local engine and with ``--engine ray`` on a real local Ray runtime: the
schema, both engines' numbers on the same folder, the skipped list, ``--resume``, a worker killed mid-run, and a
cluster of two Ray nodes on this machine. Every run is a real ``python -m explorer`` process on the demo model.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from explorer.resources import demo_model, resources_dir
from explorer.runtime.feature_store import METADATA_KEY
from tests.support.processes import Run, assert_ok

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("ray")

DEMO = demo_model().resolve()
IMAGES = resources_dir() / "images"
LAYER = "res_stage1/res_stage1_block_b"  # inside a nested model: (32, 32, 32) maps
SHAPE = (32, 32, 32)
CLI_TIMEOUT_S = 300
TOLERANCE = 1e-6
COUNT_TO_KILL = 480

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="the bundled demo is missing")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``images/``: 12 pictures (the bundled ones, flipped, rotated and cropped), a truncated PNG and a text file
    named like an image."""
    folder = tmp_path_factory.mktemp("features_engines")
    images = folder / "images"
    images.mkdir()
    sources = [Image.open(IMAGES / name).convert("RGB") for name in ("brick.png", "grass.png", "gravel.png")]
    variants = [lambda im: im, ImageOps.mirror, lambda im: im.rotate(90), lambda im: im.crop((0, 0, 40, 40))]
    for index, (source, variant) in enumerate((s, v) for s in sources for v in variants):
        variant(source).save(images / f"{'abcdefghijkl'[index]}_{index}.png")
    data = (IMAGES / "gravel.png").read_bytes()
    (images / "m_broken.png").write_bytes(data[: len(data) // 3])
    (images / "n_notes.png").write_text("not a picture\n")
    return folder


def _env(work: Path) -> dict[str, str]:
    (work / "home").mkdir(exist_ok=True)
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(work / "home"),
            "XDG_CONFIG_HOME": str(work / "config")}


def _start(args: list[str], work: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "explorer", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(work), cwd=work)


def _cli(args: list[str], work: Path) -> Run:
    process = _start(args, work)
    stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    return Run(args, process.returncode, stdout, stderr)


def _features(work: Path, out: str, *extra: str, layer: str = LAYER, images: str = "images") -> list[str]:
    return ["features", str(DEMO), "--layer", layer, "--images", str(work / images), "-o", str(work / out), *extra]


@pytest.fixture(scope="module")
def local_runs(work: Path) -> dict[str, Run]:
    commands = {
        "file": _features(work, "feats.parquet", "--batch-size", "4"),
        "folder": _features(work, "local_folder/", "--batch-size", "5"),
        "pooled": _features(work, "pooled.parquet", "--pool", "avg"),
        "npz": _features(work, "feats.npz"),
        "resume_file": _features(work, "x.parquet", "--resume"),
    }
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(commands, pool.map(lambda args: _cli(args, work), commands.values()), strict=True))


@pytest.fixture(scope="module")
def ray_run(work: Path) -> Run:
    return _cli(_features(work, "ray_folder/", "--engine", "ray", "--batch-size", "4", "--workers", "1"), work)


def test_ray_writes_one_file_too(local_runs, work):
    """One file is written by the command itself from the blocks Ray Data streams to it."""
    run = _cli(_features(work, "ray_pooled.parquet", "--engine", "ray", "--pool", "avg"), work)
    assert_ok(run)
    rows, local_rows = _rows(work / "ray_pooled.parquet"), _rows(work / "pooled.parquet")
    assert rows.keys() == local_rows.keys()
    assert all(float(np.max(np.abs(rows[p] - local_rows[p]))) <= TOLERANCE for p in rows)
    assert _skipped(work / "ray_pooled.parquet") == _skipped(work / "pooled.parquet")


def _rows(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path) if path.is_file() else pq.ParquetDataset(path).read()
    paths = table.column("path").to_pylist()
    assert len(paths) == len(set(paths)), "an image appears twice"
    features = table.column("features").combine_chunks().flatten().to_numpy().reshape(len(paths), -1)
    return dict(zip(paths, features, strict=True))


def _skipped(path: Path) -> dict[str, str]:
    import pyarrow.csv as csv

    lists = sorted((path / "_skipped").glob("*.csv")) if path.is_dir() else \
        [path.with_name(path.name.removesuffix(".parquet") + ".skipped.csv")]
    rows = [row for listed in lists for row in csv.read_csv(listed).to_pylist()]
    assert len(rows) == len({row["path"] for row in rows}), "a skipped file is listed twice"
    return {Path(row["path"]).name: row["reason"] for row in rows}


def _good(work: Path) -> set[str]:
    return {str(p.resolve()) for p in (work / "images").glob("[a-l]_*.png")}


def test_a_parquet_file_has_one_typed_row_per_image(local_runs, work):
    assert_ok(local_runs["file"])
    table = pq.read_table(work / "feats.parquet")
    size = int(np.prod(SHAPE))
    assert table.schema.names == ["path", "layer", "call_site", "shape", "features"]
    assert table.schema.field("features").type == pa.list_(pa.float32(), size)
    assert table.schema.field("shape").type == pa.list_(pa.int32())
    assert set(table.column("path").to_pylist()) == _good(work)
    assert set(table.column("layer").to_pylist()) == {LAYER}
    assert {tuple(s) for s in table.column("call_site").to_pylist()} == {(0, 0)}
    assert {tuple(s) for s in table.column("shape").to_pylist()} == {SHAPE}
    assert pq.ParquetFile(work / "feats.parquet").metadata.num_row_groups == 3  # batches of 4 as they finished
    metadata = table.schema.metadata[METADATA_KEY].decode()
    assert str(DEMO) in metadata and LAYER in metadata
    skipped = _skipped(work / "feats.parquet")
    assert set(skipped) == {"m_broken.png", "n_notes.png"} and all(name in skipped[name] for name in skipped)
    assert "12 images, features (32, 32, 32)" in local_runs["file"].stdout and "2 skipped" in local_runs["file"].stdout


def test_every_local_output_holds_the_same_numbers(local_runs, work):
    for name in ("folder", "pooled", "npz"):
        assert_ok(local_runs[name])
    rows = _rows(work / "feats.parquet")
    folder = _rows(work / "local_folder")
    assert folder.keys() == rows.keys() and all(np.array_equal(folder[p], rows[p]) for p in rows)
    assert _skipped(work / "local_folder") == _skipped(work / "feats.parquet")
    with np.load(work / "feats.npz") as saved:
        npz = dict(zip(saved["files"], saved["features"], strict=True))
    assert npz.keys() == rows.keys() and all(np.array_equal(npz[p].reshape(-1), rows[p]) for p in rows)
    pooled = _rows(work / "pooled.parquet")
    for path, flat in rows.items():
        np.testing.assert_allclose(pooled[path], flat.reshape(SHAPE).mean(axis=(0, 1)), atol=TOLERANCE)


def test_resume_needs_a_folder_and_says_so(local_runs):
    assert local_runs["resume_file"].returncode == 1 and "-o OUT/" in local_runs["resume_file"].stderr


def test_ray_gives_the_local_engines_numbers(ray_run, local_runs, work):
    assert_ok(ray_run)
    assert "12 images, features (32, 32, 32)" in ray_run.stdout and "2 skipped" in ray_run.stdout, ray_run.stdout
    parts = sorted((work / "ray_folder").glob("*.parquet"))
    assert len(parts) >= 2, "one Parquet file per block"
    assert not list((work / "ray_folder").glob(".*"))  # no half-written part left
    ray_rows, local_rows = _rows(work / "ray_folder"), _rows(work / "feats.parquet")
    assert ray_rows.keys() == local_rows.keys() == _good(work)
    for path in local_rows:
        assert float(np.max(np.abs(ray_rows[path] - local_rows[path]))) <= TOLERANCE, path
    assert _skipped(work / "ray_folder") == _skipped(work / "feats.parquet")
    assert pq.read_schema(parts[0]).names == ["path", "layer", "call_site", "shape", "features"]


def test_a_folder_that_holds_features_needs_resume_and_the_same_layer(ray_run, work):
    assert_ok(ray_run)
    again = _cli(_features(work, "ray_folder/"), work)
    assert again.returncode == 1 and "--resume" in again.stderr
    other = _cli(_features(work, "ray_folder/", "--resume", layer="global_pool"), work)
    assert other.returncode == 1 and "holds features of" in other.stderr


def test_resume_skips_what_the_folder_holds_and_adds_the_rest_once(work):
    first = _cli(_features(work, "resumed/", images="images/[a-f]_*.png"), work)
    assert_ok(first)
    assert "6 images" in first.stdout
    second = _cli(_features(work, "resumed/", "--resume", "--engine", "ray"), work)
    assert_ok(second)
    assert "resuming: 6 of 14 images" in second.stderr and "6 images" in second.stdout, second.stderr[-2000:]
    rows = _rows(work / "resumed")
    assert rows.keys() == _good(work)
    assert set(_skipped(work / "resumed")) == {"m_broken.png", "n_notes.png"}
    third = _cli(_features(work, "resumed/", "--resume"), work)
    assert_ok(third)
    assert "0 images" in third.stdout and len(_rows(work / "resumed")) == 12


def _worker_pids(root: int) -> set[int]:
    """The Ray Data actors (MapWorker) among ``root``'s descendants: this run's, never another Ray's on the
    machine."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    done = subprocess.run(["pgrep", "-f", "MapWorker"], capture_output=True, text=True)
    found = set()
    for pid in map(int, done.stdout.split()):
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, root):
            ancestor = parents.get(ancestor)
        if ancestor == root:
            found.add(pid)
    return found


def test_a_worker_killed_mid_run_is_replaced_and_every_image_appears_once(work):
    folder = work / "many"
    folder.mkdir()
    source = Image.open(IMAGES / "brick.png").convert("RGB")
    for index in range(COUNT_TO_KILL):
        source.rotate(index * 0.75).save(folder / f"{index:03d}.png")
    # One image per call: the run lasts a few seconds after its first part is written, time to kill a worker.
    process = _start(_features(work, "killed/", "--engine", "ray", "--batch-size", "1", images="many"), work)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(process.stderr.read()), daemon=True)
    reader.start()
    killed, deadline = None, time.monotonic() + CLI_TIMEOUT_S
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        started = _worker_pids(process.pid)
        if started and list((work / "killed").glob(".*.partial")) + list((work / "killed").glob("*.parquet")):
            killed = min(started)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout = process.stdout.read()
    process.wait(CLI_TIMEOUT_S)
    reader.join(10)
    assert killed is not None, f"the run ended before a worker could be killed: {stdout}"
    assert process.returncode == 0, output[-1][-3000:] if output else ""
    assert f"{COUNT_TO_KILL} images" in stdout and "0 skipped" in stdout, stdout
    rows = _rows(work / "killed")
    assert rows.keys() == {str(p.resolve()) for p in folder.glob("*.png")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = f"import ray; ray.init(address={address!r}); print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    return int(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.split() else 0


@pytest.fixture
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Ray cluster of two nodes on this machine: a head and a worker node, each with its own CPUs. Each is a
    ``ray start --block`` process of its own, stopped with its own processes (``ray stop`` would stop every Ray
    runtime on the machine, other users' too)."""
    ray = str(Path(sys.executable).with_name("ray"))
    scratch = tempfile.mkdtemp(prefix="kx-ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    address = f"127.0.0.1:{_free_port()}"
    # Token authentication, as a real cluster has it: every process of the cluster and the job gets the token.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "2", "--disable-usage-stats", "--block"]
    nodes = [subprocess.Popen([ray, "start", "--head", "--port", address.rsplit(":", 1)[1], "--include-dashboard",
                               "false", "--temp-dir", scratch, *common], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while _alive_nodes(address, env) < 1:
            assert time.monotonic() < deadline and nodes[0].poll() is None, "the head node did not start"
            time.sleep(1)
        nodes.append(subprocess.Popen([ray, "start", "--address", address, *common], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while _alive_nodes(address, env) < 2:
            assert time.monotonic() < deadline and nodes[1].poll() is None, "the worker node did not join"
            time.sleep(1)
        yield address
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)  # --block: ray start stops the processes it started
            node.wait(120)
        shutil.rmtree(scratch, ignore_errors=True)


def test_blocks_run_on_both_nodes_of_a_cluster(two_nodes, work, local_runs):
    run = _cli(_features(work, "cluster/", "--engine", "ray", "--ray-address", two_nodes, "--workers", "2",
                         "--batch-size", "2"), work)
    assert_ok(run)
    assert "2 worker(s) on 2 node(s); blocks computed on 2 node(s)" in run.stderr, run.stderr[-3000:]
    rows, local_rows = _rows(work / "cluster"), _rows(work / "feats.parquet")
    assert rows.keys() == local_rows.keys()
    assert all(float(np.max(np.abs(rows[p] - local_rows[p]))) <= TOLERANCE for p in rows)


def test_the_window_and_the_local_commands_never_import_ray():
    code = ("import sys, explorer.cli.features, explorer.cli.export, explorer.ui.main_window, "
            "explorer.runtime.worker; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]
