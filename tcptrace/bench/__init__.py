"""`make bench`: our commands against tshark and the classic tcptrace on one large
synthetic capture (synth.py), with our accuracy against the generator's ground truth,
plus two odd inputs that must stay cheap; in one run, so every figure comes from the same
machine in the same state (issue 9, item 6).

Each command runs in a child process, measured with wait4(): wall time, CPU time (user +
system) and peak resident memory. Linux carries a process's peak RSS across exec(), so a
command started straight from this process would be charged this process's own peak
(the ground truth it holds): commands are started by a small launcher (LAUNCHER) that
reports the command's wait4() figures. Standard input is fed by a `cat` beside the
launcher, not under it, so only our process is measured. The capture is read once
beforehand so every command starts with it in the page cache. A benchmark, not a test:
it reports; it fails only when our verdicts or output are wrong or a run fails.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from tcptrace.bench.synth import VERDICT_FIELDS, Expected

# Issue 9's goals.
SUMMARY_VS_TSHARK = 0.10        # summary's wall time against tshark's, at most
SUMMARY_RSS_MIB = 100
REPLAY_VS_SUMMARY = 2.0         # the table's wall time against summary's, at most
REPLAY_RSS_MIB = 300            # the table and --json alike
DIAGNOSE_VS_SUMMARY = 1.5       # issue 13: diagnose's wall time against summary's, at most
ODD_WALL_S = 5.0                # each odd input: "done in seconds"
STRETCH_PPS = 5_000_000         # summary's packets per second
ZEROS_SIZE = 1 << 30            # odd input: a header then zeros
ONE_SYN = 60_000                # odd input: connections of a single SYN
REPEAT_UNDER_S = 5.0            # runs shorter than this are repeated (--repeat)


@dataclass
class Job:
    """One command to measure."""

    key: str                    # how the report refers to it
    label: str                  # the table's first column
    argv: list[str]
    out: str                    # its standard output goes here
    feed: str | None = None     # a file piped to its standard input (through cat)
    ok: tuple[int, ...] = (0,)  # exit statuses that are not a failure
    packets: int | None = None  # segments in its input; None: the synthetic capture's
    peer: bool = False          # not ours: its failure is reported, not ours to fail on


@dataclass
class Run:
    job: Job
    wall: float             # s
    cpu: float              # s, user + system
    rss_mib: float          # peak resident set
    status: int
    stderr: str             # its tail
    out_mib: float          # what it wrote to standard output

    @property
    def failed(self) -> bool:
        # A traceback or an internal error is a failure whatever the exit status says.
        return (self.status not in self.job.ok or "Traceback" in self.stderr
                or "internal error" in self.stderr)


# Runs argv[2:] and writes its wait4() figures to the file argv[1]: status, CPU seconds,
# peak RSS in KiB. Small, so the command starts without this process's peak.
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


def measure(job: Job, stderr: str) -> Run:
    report = stderr + ".wait4"
    if os.path.exists(report):
        os.remove(report)
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, report]
    feeder = (subprocess.Popen(["cat", job.feed], stdout=subprocess.PIPE)
              if job.feed else None)
    with open(job.out, "wb") as out, open(stderr, "wb+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(launcher + job.argv, stdout=out, stderr=err,
                                stdin=feeder.stdout if feeder else subprocess.DEVNULL)
        if feeder:
            assert feeder.stdout is not None    # stdout=PIPE
            feeder.stdout.close()       # the child's alone now: it sees the end of input
        proc.wait()
        wall = time.perf_counter() - start
        if feeder:
            feeder.wait()
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    try:
        with open(report) as f:
            status, cpu, maxrss = f.read().split()
    except (FileNotFoundError, ValueError):
        status, cpu, maxrss = "-1", "0", "0"    # the launcher itself failed
    return Run(job, wall, float(cpu), int(maxrss) / 1024, int(status), tail,
               os.path.getsize(job.out) / 2**20)


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
    wrong: list[tuple[Expected, dict]] = []
    for e in truth:
        got = ours.pop((e.client, e.server, e.start_us), None)
        if got is None:
            missing += 1
        elif all(got[k] == getattr(e, k) for k in VERDICT_FIELDS):
            right += 1
        elif len(wrong) < sample:
            wrong.append((e, got))
    return Accuracy(len(truth), right, missing, len(ours), wrong), segments


def first_difference(a: str, b: str) -> int | None:
    """The first line (from 1) where two files differ, None when they are the same
    bytes; a file that is a prefix of the other differs at the line after its end."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        n = 0
        while True:
            n += 1
            la, lb = fa.readline(), fb.readline()
            if la != lb:
                return n
            if not la:
                return None


def ours(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcptrace", *args]


def jobs(capture: str, zeros: str, syns: str, out: str) -> list[Job]:
    """Every command to measure, in the table's order: ours on the synthetic capture
    (summary first: its output is the reference the others are compared with), the
    peers that are installed, then ours on the odd inputs."""
    at = functools.partial(os.path.join, out)
    found = [
        Job("summary", "summary --json FILE", ours("summary", "--json", capture),
            at("summary.jsonl")),
        Job("stdin", "cat FILE | summary --json -", ours("summary", "--json", "-"),
            at("summary-stdin.jsonl"), feed=capture),
        Job("replay", "replay FILE (table)", ours("replay", capture), at("replay.txt")),
        Job("replay-json", "replay --json FILE", ours("replay", "--json", capture),
            at("replay.json")),
        Job("diagnose", "diagnose FILE", ours("diagnose", capture), at("diagnose.txt")),
    ]
    if shutil.which("tshark"):
        found.append(Job("tshark", "tshark -q -z conv,tcp",
                         ["tshark", "-q", "-z", "conv,tcp", "-r", capture], at("tshark.out"),
                         peer=True))
    classic = classic_tcptrace()
    if classic:
        found.append(Job("classic", "classic tcptrace -n", [classic, "-n", capture],
                         at("classic.out"), peer=True))
    return found + [
        # Nothing but zeros: no connection, a warning, exit status 2.
        Job("zeros", f"summary: {ZEROS_SIZE >> 30} GiB of zeros", ours("summary", zeros),
            at("zeros.out"), ok=(2,), packets=0),
        Job("syns", f"replay: {ONE_SYN:,} SYNs", ours("replay", syns), at("syns.txt"),
            packets=ONE_SYN),
    ]
