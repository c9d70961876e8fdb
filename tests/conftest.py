import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

SHARED_CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures-real"
PROJECT_CAPTURES = Path(__file__).resolve().parents[1] / "captures"


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


def _command(monkeypatch, capsys, command: str):
    """Run `tcptrace COMMAND ARGS` in this process through the real entry point (main():
    one-line errors, exit codes); returns (exit code, stdout, stderr)."""
    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["tcptrace", command, *map(str, args)])
        from tcptrace.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def replay(monkeypatch, capsys):
    """`tcptrace replay ARGS` in this process: (exit code, stdout, stderr)."""
    return _command(monkeypatch, capsys, "replay")


@pytest.fixture
def summary(monkeypatch, capsys):
    """`tcptrace summary ARGS` in this process: (exit code, stdout, stderr)."""
    return _command(monkeypatch, capsys, "summary")
