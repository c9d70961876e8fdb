import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

SHARED_CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures-real"
PROJECT_CAPTURES = Path(__file__).resolve().parents[1] / "captures"
MIN_REAL_CAPTURES = 25          # ../shared/captures-real holds 27 today


def real_captures() -> list[str]:
    """The names of the real captures in ../shared/captures-real, sorted. Used to
    parametrize tests, so a missing or emptied folder is a collection error (the run
    fails), never a test that passes with no parameters."""
    names = sorted(p.name for p in SHARED_CAPTURES.glob("*.pcap*"))
    assert len(names) >= MIN_REAL_CAPTURES, (
        f"{SHARED_CAPTURES} holds {len(names)} captures, expected at least "
        f"{MIN_REAL_CAPTURES}: the real-capture tests need ../shared/captures-real")
    return names


def _can_capture() -> str | None:
    """None when this process may open an AF_PACKET socket, else why not."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        return "capturing needs root or CAP_NET_RAW"
    if shutil.which("ss") is None:
        return "ss (iproute2) is not installed"
    return None


def require(reason: str | None) -> None:
    """Skip when a prerequisite is missing, except in CI where it must be there."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def live():
    require(_can_capture())


@pytest.fixture
def tshark():
    path = shutil.which("tshark")
    require(None if path else "tshark is not installed")
    return path


# -- the command line --------------------------------------------------------------------
# Every test that runs `tcptrace ...` goes through `run_tcptrace` (or the `tcptrace`,
# `replay` and `summary` fixtures, which are the same thing): the installed entry point
# (.venv/bin/tcptrace, as users run it) in a subprocess, so exit codes, one-line errors,
# stdin, encodings and the console's size at start-up are the real ones. Tests that need a
# terminal (tmux) or a long-running child (Popen, SIGINT) use TCPTRACE_COMMAND.

TCPTRACE_ENTRY = Path(sys.executable).with_name("tcptrace")      # .venv/bin/tcptrace
TCPTRACE_COMMAND = [str(TCPTRACE_ENTRY)]


class Result(NamedTuple):
    code: int
    out: str
    err: str


def run_tcptrace(*args, stdin: bytes | None = None, env: dict | None = None,
                 timeout: float = 120, python_flags: tuple[str, ...] = ()) -> Result:
    """`tcptrace ARGS` in a subprocess: (exit code, stdout, stderr), decoded as UTF-8
    (strictly: bytes that are not UTF-8 fail the test). `env` is added to this process's
    environment (without TCPTRACE_DEBUG, which turns one-line errors into tracebacks);
    `python_flags` (e.g. "-X", "importtime") runs the entry point under this Python."""
    assert os.access(TCPTRACE_ENTRY, os.X_OK), f"{TCPTRACE_ENTRY} is not installed (make setup)"
    command = ([sys.executable, *python_flags, str(TCPTRACE_ENTRY)] if python_flags
               else TCPTRACE_COMMAND)
    full_env = {k: v for k, v in os.environ.items() if k != "TCPTRACE_DEBUG"}
    full_env.update(env or {})
    done = subprocess.run([*command, *map(str, args)], input=stdin, capture_output=True,
                          env=full_env, timeout=timeout)
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def tcptrace():
    """`tcptrace ARGS` in a subprocess (see run_tcptrace)."""
    return run_tcptrace


@pytest.fixture
def replay():
    """`tcptrace replay ARGS` in a subprocess: (exit code, stdout, stderr)."""
    return lambda *args, **kw: run_tcptrace("replay", *args, **kw)


@pytest.fixture
def summary():
    """`tcptrace summary ARGS` in a subprocess: (exit code, stdout, stderr)."""
    return lambda *args, **kw: run_tcptrace("summary", *args, **kw)
