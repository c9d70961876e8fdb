"""`make bench`: `tcptrace summary` against tshark and the classic tcptrace on one large
synthetic capture (synth.py), with our accuracy against the generator's ground truth.

Each tool runs in a child process, measured with wait4(): wall time, CPU time (user +
system) and peak resident memory. Linux carries a process's peak RSS across exec(), so a
tool started straight from this process would be charged this process's own peak (the
ground truth it holds): tools are started by a small launcher (LAUNCHER) that reports
the tool's wait4() figures. wait4() gives only the largest peak of a process tree, so
ours (which may fork workers) also logs every process's own peak (TCPTRACE_RSS_LOG) and
the benchmark counts their sum. The file is read once beforehand so every tool
starts with it in the page cache. A benchmark, not a test: it reports; it fails only
when our verdicts are wrong or a run fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from .synth import VERDICT_FIELDS, Expected

GOAL_RATIO = 0.25           # our wall time against tshark's
GOAL_RSS_MIB = 120


@dataclass
class Run:
    tool: str
    wall: float             # s
    cpu: float              # s, user + system
    rss_mib: float          # peak resident set (summed over its processes when known)
    status: int
    stderr: str


# Runs argv[2:] and writes its wait4() figures to the file argv[1]: status, CPU seconds,
# peak RSS in KiB. Small, so the tool starts without this process's peak.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, u = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {u.ru_utime + u.ru_stime} {u.ru_maxrss}")
"""


def measure(tool: str, argv: list[str], stdout: str, stderr: str) -> Run:
    rss_log, report = stderr + ".rss", stderr + ".wait4"
    for path in (rss_log, report):
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ, TCPTRACE_RSS_LOG=rss_log)
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, report]
    with open(stdout, "wb") as out, open(stderr, "wb+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(launcher + argv, stdout=out, stderr=err, env=env)
        proc.wait()
        wall = time.perf_counter() - start
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    with open(report) as f:
        status, cpu, maxrss = f.read().split()
    return Run(tool, wall, float(cpu), max(int(maxrss), logged_rss(rss_log)) / 1024,
               int(status), tail)


def logged_rss(path: str) -> int:
    """The sum of the peak RSS (KiB) each process of ours logged, 0 without a log."""
    try:
        with open(path) as f:
            return sum(int(line.split()[1]) for line in f if line.strip())
    except FileNotFoundError:
        return 0


def classic_tcptrace() -> str | None:
    """Ostermann's tcptrace on PATH, skipping ours (a Python console script that may
    come first on PATH when the venv is active)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, "tcptrace")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            with open(path, "rb") as f:
                if f.read(2) != b"#!":
                    return path
    return None


def warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


@dataclass
class Accuracy:
    total: int              # connections the generator made
    right: int
    missing: int            # not found in our output
    extra: int              # in our output, not made by the generator
    wrong: list[tuple[Expected, dict]]   # (expected, our verdict object), a sample


def accuracy(truth: list[Expected], jsonl: str, sample: int = 10) -> tuple[Accuracy, int]:
    """Compare our JSON Lines with the ground truth, connection by connection (matched
    on client, server and start time); also returns the segments we counted."""
    ours: dict[tuple, dict] = {}
    segments = 0
    with open(jsonl) as f:
        for line in f:
            doc = json.loads(line)
            segments += doc["sent"]["client"]["packets"] + doc["sent"]["server"]["packets"]
            ours[doc["client"], doc["server"], round(doc["first"] * 1e6)] = doc["verdict"]
    right = missing = 0
    wrong = []
    for e in truth:
        got = ours.pop((e.client, e.server, e.start_us), None)
        if got is None:
            missing += 1
        elif all(got[k] == getattr(e, k) for k in VERDICT_FIELDS):
            right += 1
        elif len(wrong) < sample:
            wrong.append((e, got))
    return Accuracy(len(truth), right, missing, len(ours), wrong), segments


def tools(capture: str) -> list[tuple[str, list[str]]]:
    """The commands to compare, those installed: ours first."""
    found = [("tcptrace summary", [sys.executable, "-m", "tcptrace", "summary", "--json",
                                   capture])]
    if shutil.which("tshark"):
        found.append(("tshark -z conv,tcp", ["tshark", "-q", "-z", "conv,tcp", "-r", capture]))
    classic = classic_tcptrace()
    if classic:
        found.append(("classic tcptrace -n", [classic, "-n", capture]))
    return found
