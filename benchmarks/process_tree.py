"""Run a command and watch its whole process tree: peak resident memory, and when each line of its stderr came.

``run_watched(args)`` (used by ``bench.py``'s ``features`` step) starts the command in a session of its own and
samples ``/proc`` every ``SAMPLE_S``: the command and every descendant (Ray's GCS server, raylet, workers and
actors are the driver's children and grandchildren; one that is reparented still counts until it exits). Each
sample sums ``VmRSS`` from ``/proc/PID/status`` (shared pages, e.g. Ray's object store, count in every process
that maps them) and ``Pss`` from ``/proc/PID/smaps_rollup`` (shared pages divided among their users); the peaks
of both sums are kept, with the processes (by name) at the RSS peak, and the CPU seconds each process had used
when last sampled (so a process's last 0.2 s may be missing). A descendant still alive ``LINGER_S`` after
the command exited is listed and killed (by its pid). stderr is read unbuffered and split on
``\\r`` as well as ``\\n`` (progress bars), each line with the seconds since the start when its first byte
came. Linux only; no psutil.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

SAMPLE_S = 0.2
LINGER_S = 5.0  # a descendant still alive this long after the command exited is reported as left running
KB = 1024
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Watched:
    args: list[str]
    returncode: int
    stdout: str
    lines: list[tuple[float, str]]  # stderr, (seconds since the start, line)
    wall_s: float
    started_at: float  # time.time() at the start, to place other clocks' timestamps (e.g. Ray's logs)
    peak_rss_bytes: int
    peak_pss_bytes: int
    peak_parts: dict[str, int]  # process name -> RSS bytes at the RSS peak
    processes: int  # the most processes in the tree at once
    samples: int
    cpu_s: dict[str, float]  # process name -> CPU seconds (user + system), as last sampled
    left_running: list[str] = field(default_factory=list)  # descendants alive LINGER_S after it exited: killed

    def first(self, pattern: str) -> tuple[float, str] | None:
        """The first stderr line matching the regular expression, with its time."""
        regex = re.compile(pattern)
        return next(((t, line) for t, line in self.lines if regex.search(line)), None)

    def last(self, pattern: str) -> tuple[float, str] | None:
        regex = re.compile(pattern)
        return next(((t, line) for t, line in reversed(self.lines) if regex.search(line)), None)

    def stderr_tail(self, count: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-count:])


def _stat(pid: str) -> tuple[int, str, float] | None:
    """(parent pid, name, CPU seconds so far) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    close = text.rindex(")")
    fields = text[close + 2:].split()  # state, ppid, ...; utime and stime are the 14th and 15th of stat
    return int(fields[1]), text[text.index("(") + 1:close], (int(fields[11]) + int(fields[12])) / TICKS


def _field_kb(path: str, key: str) -> int:
    try:
        with open(path) as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Sampler(threading.Thread):
    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.known: dict[int, str] = {}  # every process seen in the tree -> its name
        self.cpu: dict[int, float] = {}  # every process seen in the tree -> its CPU seconds when last seen
        self.seen_cpu: dict[int, float] = {}  # every process of the last scan of /proc -> its CPU seconds
        self.done = threading.Event()
        self.peak_rss = self.peak_pss = self.processes = self.samples = 0
        self.peak_parts: dict[str, int] = {}

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_S)

    def alive(self) -> dict[int, str]:
        """The tree now: the known processes still alive plus every descendant of any of them."""
        children: dict[int, list[int]] = defaultdict(list)
        names: dict[int, str] = {}
        self.seen_cpu: dict[int, float] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and (found := _stat(entry.name)) is not None:
                pid = int(entry.name)
                children[found[0]].append(pid)
                names[pid] = found[1]
                self.seen_cpu[pid] = found[2]
        tree = {pid for pid in (self.known.keys() | {self.root}) if pid in names}
        frontier = list(tree)
        while frontier:
            for child in children.get(frontier.pop(), ()):
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        return {pid: names[pid] for pid in tree}

    def sample(self) -> None:
        tree = self.alive()
        self.known.update(tree)
        self.cpu.update({pid: self.seen_cpu[pid] for pid in tree})
        rss = pss = 0
        parts: dict[str, int] = defaultdict(int)
        for pid, name in tree.items():
            resident = _field_kb(f"/proc/{pid}/status", "VmRSS:") * KB
            rss += resident
            pss += _field_kb(f"/proc/{pid}/smaps_rollup", "Pss:") * KB
            parts["driver" if pid == self.root else name] += resident
        self.samples += 1
        self.processes = max(self.processes, len(tree))
        self.peak_pss = max(self.peak_pss, pss)
        if rss > self.peak_rss:
            self.peak_rss, self.peak_parts = rss, dict(parts)


def run_watched(args: list[str], timeout: float, env: dict[str, str] | None = None) -> Watched:
    started_at, start = time.time(), time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               start_new_session=True)
    sampler = _Sampler(process.pid)
    sampler.start()
    lines: list[tuple[float, str]] = []
    stdout: list[bytes] = []

    def read_stderr() -> None:
        buffer, since = b"", 0.0
        while chunk := os.read(process.stderr.fileno(), 65536):
            now = time.perf_counter() - start
            if not buffer:
                since = now
            *done, buffer = re.split(rb"[\r\n]", buffer + chunk)
            for piece in done:
                if piece.strip():
                    lines.append((since, piece.decode(errors="replace")))
                since = now  # the next piece came in this chunk
        if buffer.strip():
            lines.append((since, buffer.decode(errors="replace")))

    readers = [threading.Thread(target=read_stderr, daemon=True),
               threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the session we started: the command and what it started
        process.wait()
        raise RuntimeError(f"{' '.join(args)} did not finish in {timeout:.0f} s") from None
    finally:
        wall = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
    deadline = time.perf_counter() + LINGER_S  # Ray's processes may take a moment to exit after the driver
    while (lingering := {pid: name for pid, name in sampler.alive().items() if pid != process.pid}) \
            and time.perf_counter() < deadline:
        time.sleep(0.25)
    for pid in lingering:  # e.g. a Ray actor hung in its exit handlers (seen with Ray 2.60): it would stay for good
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = [f"{name} ({pid}, killed)" for pid, name in lingering.items()]
    for reader in readers:  # after the kill: a descendant left running may hold the pipes open
        reader.join(10)
    cpu: dict[str, float] = defaultdict(float)
    for pid, seconds in sampler.cpu.items():
        cpu["driver" if pid == process.pid else sampler.known[pid]] += seconds
    return Watched(args, returncode, b"".join(stdout).decode(errors="replace"), lines, wall, started_at,
                   sampler.peak_rss, sampler.peak_pss, sampler.peak_parts, sampler.processes, sampler.samples,
                   dict(cpu), left)
