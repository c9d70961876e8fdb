"""`make bench`: `tcptrace summary` against tshark and the classic tcptrace on one large
synthetic capture (synth.py), with our accuracy against the generator's ground truth.

Each tool runs in a child process, measured with wait4(): wall time, CPU time (user +
system) and peak resident memory. The file is read once beforehand so every tool
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
    rss_mib: float          # peak resident set
    status: int
    stderr: str


def measure(tool: str, argv: list[str], stdout: str, stderr: str) -> Run:
    with open(stdout, "wb") as out, open(stderr, "wb+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    return Run(tool, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
               proc.returncode, tail)


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
