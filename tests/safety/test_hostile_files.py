"""Hostile and broken model files (tests/safety/make_corpus.py) through every way the explorer reads a file.

For each corpus file: the payload marker never appears (load_graph, the window, and the CLI commands `check`,
`summary`, `graph`, `activations`/`export`/`features` without --trust); `check` says the right thing (exit 1
and a finding for hostile files, exit 2 and a one-line reason for unreadable ones); nothing hangs, prints a
traceback or allocates what the file merely declares. The CLI runs are real subprocesses, run two at a time
once per session; the tests then look at their results.

The folder stands apart from tests/model, tests/ui and tests/cli on purpose: one corpus goes through every path
that opens a file (the model stage, the window, the headless commands, the Keras-loading ones), so it belongs
to none of them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.safety.make_corpus import BROKEN, CORPUS, GOOD, HOSTILE, REFUSED, Entry, rearm

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD = 60  # seconds: a subprocess still running by then is a hang
COMMAND_SECONDS = 10.0  # a headless command that does not load Keras finishes within this (two run at a time)
LOAD_SECONDS = 2.0  # load_graph, in process
MAX_RSS_GROWTH_MB = 200  # peak resident memory a load_graph may add
KERAS_COMMANDS = ("activations", "export", "features")  # refuse files with findings unless --trust
ALL_COMMANDS = ("check", "summary", "graph", *KERAS_COMMANDS)

HOSTILE_ENTRIES = [e for e in CORPUS if e.kind == HOSTILE]
BROKEN_ENTRIES = [e for e in CORPUS if e.kind == BROKEN]
GOOD_ENTRIES = [e for e in CORPUS if e.kind == GOOD]
REFUSED_ENTRIES = [e for e in CORPUS if e.kind == REFUSED]
BLOCKING_ENTRIES = [e for e in REFUSED_ENTRIES if e.blocking]
BAD_ENTRIES = [e for e in CORPUS if e.kind != GOOD]
HUGE_ENTRIES = [e for e in CORPUS if e.huge]


def _ids(entries: list[Entry]) -> list[str]:
    return [e.name for e in entries]


@dataclass(frozen=True)
class Corpus:
    folder: Path
    marker: Path  # every payload creates this file, and nothing else
    work: Path  # inputs and outputs of the CLI runs

    def path(self, entry: Entry) -> Path:
        return self.folder / entry.name


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    home = work / "home"
    runtime = work / "xdg-runtime"
    for folder in (home, runtime):
        folder.mkdir(mode=0o700, exist_ok=True)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow",
               HOME=str(home), XDG_CONFIG_HOME=str(work / "config"), XDG_RUNTIME_DIR=str(runtime),
               KERAS_HOME=str(home / ".keras"), PYTHONPATH=str(ROOT), PYTHONFAULTHANDLER="1")
    return env


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("hostile")
    folder, marker, work = root / "corpus", root / "marker" / "PWNED", root / "work"
    marker.parent.mkdir()
    work.mkdir()
    built = subprocess.run([sys.executable, "-m", "tests.safety.make_corpus", str(folder), str(marker)],
                           cwd=ROOT, env=_env(work), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    assert not marker.exists()
    np.save(work / "x.npy", np.zeros(4, dtype="float32"))
    (work / "images").mkdir()
    return Corpus(folder, marker, work)


@pytest.fixture(autouse=True)
def _marker_never_appears(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "corpus" in request.fixturenames:
        marker = request.getfixturevalue("corpus").marker
        assert not marker.exists(), f"a payload ran: {marker} was created"


# --------------------------------------------------------------------------- the CLI, run once per session


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str  # without the -X importtime lines
    seconds: float
    imported: frozenset[str]  # top-level packages imported (KERAS_COMMANDS only, from -X importtime)
    marker: bool  # the marker existed right after this run (two run at a time: or after its neighbour)
    output: Path | None

    def describe(self) -> str:
        return (f"keras-explorer {' '.join(self.args)}\nexit {self.returncode} after {self.seconds:.1f} s\n"
                f"--- stdout\n{self.stdout[-2000:]}\n--- stderr\n{self.stderr[-2000:]}")


def _command(corpus: Corpus, command: str, entry: Entry) -> tuple[list[str], Path | None]:
    model = str(corpus.path(entry))
    stem = f"{command}-{entry.name.replace('.', '_')}"
    out = corpus.work / "out"
    if command in ("check", "summary"):
        return [command, model], None
    if command == "graph":
        return [command, model, "-o", str(out / f"{stem}.svg")], out / f"{stem}.svg"
    if command == "activations":
        return [command, model, "--layer", entry.layer, "--input", str(corpus.work / "x.npy"),
                "--npy", str(out / f"{stem}.npy")], out / f"{stem}.npy"
    if command == "export":
        return [command, model, "--layer", entry.layer, "-o", str(out / f"{stem}.keras")], out / f"{stem}.keras"
    return [command, model, "--layer", entry.layer, "--images", str(corpus.work / "images"),
            "-o", str(out / f"{stem}.npz")], out / f"{stem}.npz"


def _run(corpus: Corpus, command: str, entry: Entry) -> Run:
    args, output = _command(corpus, command, entry)
    python = [sys.executable, "-X", "importtime"] if command in KERAS_COMMANDS else [sys.executable]
    started = time.perf_counter()
    try:
        done = subprocess.run([*python, "-m", "explorer", *args], cwd=corpus.work, env=_env(corpus.work),
                              capture_output=True, text=True, timeout=HANG_GUARD)
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as hang:
        returncode, stdout, stderr = -999, str(hang.stdout or ""), f"HUNG for {HANG_GUARD} s\n{hang.stderr or ''}"
    seconds = time.perf_counter() - started
    lines = stderr.splitlines()
    imported = frozenset(line.rpartition("|")[2].strip().split(".")[0] for line in lines
                         if line.startswith("import time:"))
    stderr = "".join(f"{line}\n" for line in lines if not line.startswith("import time:"))
    return Run(tuple(args), returncode, stdout, stderr, seconds, imported, corpus.marker.exists(), output)


BROKEN_GRAPH_SAMPLE = ("empty.keras", "truncated.h5", "zip_bomb_config.keras", "graph_cycle.keras")


def _planned(entry: Entry) -> tuple[str, ...]:
    """Good files would really load into Keras in the Keras commands: they are only controls for `check` and
    `summary`. Unreadable files fail in the same load_graph call whatever the command comes next: `graph`
    (which starts Qt) runs on a sample of them, `features` on none."""
    if entry.kind == GOOD:
        return ("check", "summary")
    if entry.kind == HOSTILE:
        return ALL_COMMANDS
    if entry.kind == REFUSED:  # Keras loads nothing of a blocking one; the others need the user's code
        return ("check", "summary", "graph", *(("activations", "export") if entry.blocking else ()))
    graph = ("graph",) if entry.name in BROKEN_GRAPH_SAMPLE else ()
    return ("check", "summary", *graph, "activations", "export")


PLANNED = [(command, entry) for entry in CORPUS for command in _planned(entry)]


@pytest.fixture(scope="session")
def cli(corpus: Corpus) -> dict[tuple[str, str], Run]:
    (corpus.work / "out").mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda job: _run(corpus, *job), PLANNED))
    return {(command, entry.name): run for (command, entry), run in zip(PLANNED, runs, strict=True)}


def _clean(run: Run) -> None:
    """No hang, no traceback, in a few seconds, and the payload did not run."""
    assert run.returncode != -999, run.describe()
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run.describe()
    assert run.seconds < COMMAND_SECONDS, run.describe()
    assert not run.marker, f"the marker appeared during this run (or the one beside it):\n{run.describe()}"


def _one_line_error(run: Run, entry: Entry) -> str:
    assert run.returncode != 0, run.describe()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.describe()
    for fragment in entry.expect:
        assert fragment in lines[0], f"{fragment!r} not in the message\n{run.describe()}"
    return lines[0]


@pytest.mark.parametrize(("command", "entry"), PLANNED, ids=[f"{c}-{e.name}" for c, e in PLANNED])
def test_command_is_clean(cli, command: str, entry: Entry) -> None:
    _clean(cli[(command, entry.name)])


@pytest.mark.parametrize("entry", HOSTILE_ENTRIES, ids=_ids(HOSTILE_ENTRIES))
def test_check_reports_hostile_files(cli, entry: Entry) -> None:
    run = cli[("check", entry.name)]
    assert run.returncode == 1, run.describe()
    findings = run.stdout.strip().splitlines()
    assert findings, run.describe()
    for fragment in entry.expect:
        assert any(fragment in line for line in findings), f"no finding mentions {fragment!r}\n{run.describe()}"


@pytest.mark.parametrize("entry", HOSTILE_ENTRIES, ids=_ids(HOSTILE_ENTRIES))
def test_check_lists_each_finding_once(cli, entry: Entry) -> None:
    findings = cli[("check", entry.name)].stdout.strip().splitlines()
    repeated = sorted({line for line in findings if findings.count(line) > 1})
    assert not repeated, f"reported more than once: {repeated}"


@pytest.mark.parametrize("entry", BROKEN_ENTRIES, ids=_ids(BROKEN_ENTRIES))
def test_check_explains_unreadable_files(cli, entry: Entry) -> None:
    run = cli[("check", entry.name)]
    assert run.returncode == 2, run.describe()
    _one_line_error(run, entry)
    assert not run.stdout.strip(), run.describe()


@pytest.mark.parametrize("entry", GOOD_ENTRIES, ids=_ids(GOOD_ENTRIES))
def test_check_passes_good_files(cli, entry: Entry) -> None:
    run = cli[("check", entry.name)]
    assert run.returncode == 0, run.describe()
    assert not run.stderr.strip(), run.describe()


@pytest.mark.parametrize("command", ["summary", "graph"])
@pytest.mark.parametrize("entry", HOSTILE_ENTRIES, ids=_ids(HOSTILE_ENTRIES))
def test_summary_and_graph_work_and_list_findings(cli, command: str, entry: Entry) -> None:
    run = cli[(command, entry.name)]
    assert run.returncode == 0, run.describe()
    findings = [line for line in run.stderr.splitlines() if line.startswith("finding: ")]
    assert findings, run.describe()
    for fragment in entry.expect:
        assert any(fragment in line for line in findings), f"no finding mentions {fragment!r}\n{run.describe()}"
    if command == "summary":
        assert run.stdout.strip(), run.describe()
    else:
        assert run.output is not None and run.output.stat().st_size > 0, run.describe()


BROKEN_SUMMARY_GRAPH = [(c, e) for c, e in PLANNED if e.kind == BROKEN and c in ("summary", "graph")]


@pytest.mark.parametrize("entry", REFUSED_ENTRIES, ids=_ids(REFUSED_ENTRIES))
def test_check_says_what_keras_would_refuse(cli, entry: Entry) -> None:
    run = cli[("check", entry.name)]
    assert run.returncode == 1, run.describe()
    lines = [line for line in run.stdout.splitlines() if line.startswith("Keras would refuse: ")]
    assert len(lines) == 1 and all(fragment in lines[0] for fragment in entry.expect), run.describe()


@pytest.mark.parametrize("command", ["summary", "graph"])
@pytest.mark.parametrize("entry", REFUSED_ENTRIES, ids=_ids(REFUSED_ENTRIES))
def test_summary_and_graph_draw_what_keras_would_refuse(cli, command: str, entry: Entry) -> None:
    run = cli[(command, entry.name)]
    assert run.returncode == 0, run.describe()
    assert any(line.startswith("problem: ") and all(f in line for f in entry.expect)
               for line in run.stderr.splitlines()), run.describe()
    assert run.output is None or run.output.stat().st_size > 0, run.describe()


@pytest.mark.parametrize("command", ["activations", "export"])
@pytest.mark.parametrize("entry", BLOCKING_ENTRIES, ids=_ids(BLOCKING_ENTRIES))
def test_keras_commands_load_nothing_keras_would_refuse(cli, command: str, entry: Entry) -> None:
    run = cli[(command, entry.name)]
    assert run.returncode == 1 and "Keras would refuse this file" in run.stderr.splitlines()[-1], run.describe()
    assert not run.imported & {"tensorflow", "keras"}, f"imported Keras for a refused file\n{run.describe()}"
    assert run.output is not None and not run.output.exists(), run.describe()


@pytest.mark.parametrize(("command", "entry"), BROKEN_SUMMARY_GRAPH,
                         ids=[f"{c}-{e.name}" for c, e in BROKEN_SUMMARY_GRAPH])
def test_summary_and_graph_fail_cleanly(cli, command: str, entry: Entry) -> None:
    run = cli[(command, entry.name)]
    _one_line_error(run, entry)
    assert run.output is None or not run.output.exists(), run.describe()


@pytest.mark.parametrize("command", KERAS_COMMANDS)
@pytest.mark.parametrize("entry", HOSTILE_ENTRIES, ids=_ids(HOSTILE_ENTRIES))
def test_keras_commands_refuse_without_trust(cli, command: str, entry: Entry) -> None:
    run = cli[(command, entry.name)]
    assert run.returncode != 0, run.describe()
    assert "refus" in run.stderr and "--trust" in run.stderr, run.describe()
    assert not run.imported & {"tensorflow", "keras"}, f"refused only after importing Keras\n{run.describe()}"
    assert run.output is not None and not run.output.exists(), run.describe()


@pytest.mark.parametrize("command", ["activations", "export"])
@pytest.mark.parametrize("entry", BROKEN_ENTRIES, ids=_ids(BROKEN_ENTRIES))
def test_keras_commands_fail_cleanly_on_unreadable_files(cli, command: str, entry: Entry) -> None:
    run = cli[(command, entry.name)]
    _one_line_error(run, entry)
    assert not run.imported & {"tensorflow", "keras"}, f"imported Keras for an unreadable file\n{run.describe()}"
    assert run.output is not None and not run.output.exists(), run.describe()


# --------------------------------------------------------------------------- in process


@pytest.mark.parametrize("entry", CORPUS, ids=_ids(CORPUS))
def test_load_graph(corpus: Corpus, entry: Entry) -> None:
    from explorer.model.files import ModelFileError, load_graph

    started = time.perf_counter()
    try:
        graph, error = load_graph(corpus.path(entry)), None
    except ModelFileError as raised:
        graph, error = None, raised
    seconds = time.perf_counter() - started
    assert not corpus.marker.exists()
    assert seconds < LOAD_SECONDS, f"load_graph took {seconds:.2f} s"
    if entry.kind == BROKEN:
        assert error is not None, "an unreadable file was read"
        assert "\n" not in error.reason
        for fragment in entry.expect:
            assert fragment in error.reason
        return
    assert error is None, error
    findings = [str(f) for f in graph.findings]
    if entry.kind == REFUSED:
        assert findings == [] and len(graph.problems) == 1, (findings, graph.problems)
        assert all(fragment in str(graph.problems[0]) for fragment in entry.expect), graph.problems
        assert graph.problems[0].blocking == entry.blocking
        return
    if entry.kind == GOOD:
        assert findings == [] and graph.problems == ()
    for fragment in entry.expect:
        assert any(fragment in f for f in findings), f"no finding mentions {fragment!r}: {findings}"


_MEASURE = textwrap.dedent("""
    import re, sys
    from explorer.model.files import ModelFileError, load_graph

    def peak_mb():  # this process's own peak (ru_maxrss would include the parent's, inherited across exec)
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) // 1024

    before = peak_mb()
    try:
        findings = len(load_graph(sys.argv[1]).findings)
    except ModelFileError as error:
        findings = -1
    print(peak_mb() - before, findings)
""")


@pytest.mark.parametrize("entry", HUGE_ENTRIES, ids=_ids(HUGE_ENTRIES))
def test_declared_sizes_are_not_allocated(corpus: Corpus, entry: Entry) -> None:
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(corpus.path(entry))], cwd=ROOT,
                          env=_env(corpus.work), capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 0, done.stderr
    growth_mb, findings = (int(v) for v in done.stdout.split())
    assert findings > 0
    assert growth_mb < MAX_RSS_GROWTH_MB, f"load_graph grew the process by {growth_mb} MB"


_LOAD_UNSAFE = textwrap.dedent("""
    import pathlib, sys
    import keras
    control = pathlib.Path(sys.argv[1])
    for path in sys.argv[2:]:
        control.unlink(missing_ok=True)
        keras.saving.load_model(path, compile=False, safe_mode=False)
        print(pathlib.Path(path).name, control.exists())
""")


def test_positive_control_the_lambda_payloads_are_live(corpus: Corpus, tmp_path: Path) -> None:
    """The same bytecode, pointed at another marker, does run when Keras loads with safe mode off: the corpus
    is not inert, so the marker staying away above means something."""
    control = tmp_path / "CONTROL"
    names = ("lambda_top.keras", "lambda_nested.keras", "lambda_legacy.h5")
    for name in names:
        assert rearm(corpus.folder / name, tmp_path / name, control) == 1
    done = subprocess.run([sys.executable, "-c", _LOAD_UNSAFE, str(control), *(str(tmp_path / n) for n in names)],
                          cwd=tmp_path, env=_env(corpus.work), capture_output=True, text=True,
                          timeout=HANG_GUARD * 2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [word for name in names for word in (name, "True")], done.stdout


_LOAD_KERAS2 = textwrap.dedent("""
    import os, pathlib, sys
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import tf_keras
    from tf_keras.src.saving.serialization_lib import SafeModeScope
    control = pathlib.Path(sys.argv[1])
    for name in sys.argv[2:]:
        path = pathlib.Path(name)
        control.unlink(missing_ok=True)
        if path.suffix == ".json":  # model_from_json has no safe_mode argument, only this scope
            with SafeModeScope(False):
                tf_keras.models.model_from_json(path.read_text()).load_weights(str(path.with_suffix(".h5")))
        elif path.suffix == ".keras":
            tf_keras.models.load_model(path, compile=False, safe_mode=False)
        else:  # legacy .h5 and SavedModel folders: tf-keras has no safe mode for them
            tf_keras.models.load_model(str(path), compile=False)
        print(path.name, control.exists())
""")
KERAS2_LAMBDAS = {"keras2_lambda.keras": 1, "keras2_lambda_nested.h5": 1, "keras2_lambda.json": 1,
                  "keras2_lambda_savedmodel": 3, "keras2_hidden_lambda_savedmodel": 1}  # name: payloads in it


def test_positive_control_the_keras2_lambda_payloads_are_live(corpus: Corpus, tmp_path: Path) -> None:
    """tf-keras runs the Keras 2 payloads: legacy .h5 and SavedModel folders have no safe mode at all (the
    hidden SavedModel's Lambda too: tf-keras revives the layer from its own metadata), the .keras archive with
    safe_mode=False, the architecture JSON outside safe mode."""
    control = tmp_path / "CONTROL"
    for name, payloads in KERAS2_LAMBDAS.items():
        assert rearm(corpus.folder / name, tmp_path / name, control) == payloads, name
    paths = [str(tmp_path / name) for name in KERAS2_LAMBDAS]
    done = subprocess.run([sys.executable, "-c", _LOAD_KERAS2, str(control), *paths], cwd=tmp_path,
                          env=_env(corpus.work), capture_output=True, text=True, timeout=HANG_GUARD * 2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [word for name in KERAS2_LAMBDAS for word in (name, "True")], done.stdout


def test_a_savedmodel_lambda_is_reported_once_not_per_metadata_copy(cli) -> None:
    """tf-keras writes a Lambda three times into keras_metadata.pb (the root's config and model_config, the
    layer's own metadata): `check` reports it as it does for the same model's .keras archive."""
    archive = cli[("check", "keras2_lambda.keras")]
    saved_model = cli[("check", "keras2_lambda_savedmodel")]
    assert saved_model.stdout == archive.stdout, f"{archive.describe()}\n{saved_model.describe()}"


# --------------------------------------------------------------------------- the window


def test_window_opens_every_file_and_stays_usable(qtbot, corpus: Corpus, tmp_path: Path) -> None:
    from PySide6.QtCore import QSettings

    from explorer.ui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings" / "explorer.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, start_live=False)  # the structure view only: no TensorFlow
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    events: list[tuple[str, str]] = []
    window.graph_drawn.connect(lambda: events.append(("drawn", "")))
    window.session.failed.connect(lambda message: events.append(("failed", message)))

    def open_file(path: Path) -> tuple[str, str]:
        events.clear()
        started = time.perf_counter()
        window.open_model(path)
        qtbot.waitUntil(lambda: bool(events), timeout=HANG_GUARD * 1000)
        assert time.perf_counter() - started < COMMAND_SECONDS, f"{path.name}: opening took too long"
        assert not corpus.marker.exists(), f"{path.name}: a payload ran in the window"
        return events[0]

    good = corpus.folder / "good.keras"
    problems = []
    for entry in BAD_ENTRIES:
        outcome, message = open_file(corpus.path(entry))
        if entry.kind == HOSTILE:
            if outcome != "drawn" or window.session.path != corpus.path(entry).resolve():
                problems.append(f"{entry.name}: not shown ({outcome} {message!r})")
            elif not window.session.graph.findings:
                problems.append(f"{entry.name}: shown without findings")
        elif entry.kind == REFUSED:
            marked = [item.path for item in window.graph_view.items_by_path.values() if item.problem]
            layer = window.session.graph.problems[0].layer if window.session.graph else None
            if outcome != "drawn" or window.session.path != corpus.path(entry).resolve():
                problems.append(f"{entry.name}: not drawn ({outcome} {message!r})")
            elif not (window.notice.isVisible() and "Keras would refuse" in window.notice.text.text()):
                problems.append(f"{entry.name}: no notice of what Keras would refuse")
            elif marked != ([layer] if layer else []):
                problems.append(f"{entry.name}: marked {marked}, the problem is on {layer}")
        else:
            if outcome != "failed":
                problems.append(f"{entry.name}: {outcome}, expected the error banner")
            elif not (window.banner.isVisible() and message == window.banner.text()
                      and message.startswith(f"Cannot open {entry.name}: ") and "\n" not in message
                      and "Traceback" not in message and all(f in message for f in entry.expect)):
                problems.append(f"{entry.name}: banner {message!r}")
        outcome, message = open_file(good)
        if outcome != "drawn" or window.session.path != good.resolve() or window.session.graph.findings \
                or window.banner.isVisible():
            problems.append(f"good.keras after {entry.name}: {outcome} {message!r}")
    assert not problems, "\n".join(problems)
