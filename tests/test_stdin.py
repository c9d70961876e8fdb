"""FILE as `-` (standard input) or as a FIFO: `tcpdump -w - | tcptrace summary -`.

The engine reads a capture once, front to back, so a pipe must give exactly what the
file gives. Through the real entry point (the installed `tcptrace` script) in a
subprocess, with the capture on a real pipe or FIFO.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import pytest
from test_replay import cut_in_a_record

from tcptrace.bench.synth import generate

from conftest import SHARED_CAPTURES, Result, run_tcptrace

ONE = SHARED_CAPTURES / "zeek_http_get-gzip.pcap"          # one connection: the ladder
MANY = SHARED_CAPTURES / "tcpreplay_test.pcap"             # seven: the table
PCAPNG = SHARED_CAPTURES / "lw_200722_tcp_anon.pcapng"
CORRUPT = SHARED_CAPTURES / "sv_smtp-to-comma_corrupt.pcap"


def tcptrace(*args, stdin: bytes | None = None) -> Result:
    return run_tcptrace(*args, stdin=stdin, env={"COLUMNS": "160"})


def piped(*args, path: Path) -> Result:
    """`cat path | tcptrace ARGS` (ARGS name the file as -)."""
    return tcptrace(*args, stdin=path.read_bytes())


@contextlib.contextmanager
def fifo_with(tmp_path: Path, data: bytes):
    """A FIFO that a writer thread fills with `data` once a reader opens it."""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    failed: list[BaseException] = []

    def write() -> None:
        try:
            with open(fifo, "wb") as out:       # blocks until the reader opens it
                out.write(data)
        except BrokenPipeError:                 # the reader stopped early: its business
            pass
        except BaseException as e:  # any failure, reported by the test below
            failed.append(e)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield fifo
    finally:
        if writer.is_alive():                   # nobody opened it: let the writer go
            with contextlib.suppress(OSError):
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                writer.join(5)
                os.close(fd)
        writer.join(5)
        assert not writer.is_alive() and not failed, failed


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A synthetic capture of 2000 interleaved connections, some reusing a 4-tuple."""
    path = tmp_path_factory.mktemp("synth") / "synth.pcap"
    generate(path, 2000, 4)
    return path


@pytest.fixture(scope="module")
def cut(synth, tmp_path_factory) -> Path:
    """The synthetic capture cut short in the middle of a record."""
    raw = synth.read_bytes()
    path = tmp_path_factory.mktemp("cut") / "cut.pcap"
    path.write_bytes(cut_in_a_record(raw, len(raw) * 2 // 3))
    return path


def same_run(a: Result, b: Result) -> None:
    assert a == b


# -- summary ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["--json", "--csv"])
@pytest.mark.parametrize("capture", ["synth", "pcapng", "corrupt", "cut"])
def test_summary_of_stdin_is_the_summary_of_the_file(request, fmt, capture):
    path = {"pcapng": PCAPNG, "corrupt": CORRUPT}.get(capture) or request.getfixturevalue(capture)
    from_file = tcptrace("summary", fmt, path)
    assert from_file.code == (0 if capture in ("synth", "pcapng") else 2)
    assert from_file.out.count("\n") >= (1 if capture == "corrupt" else 2)
    same_run(piped("summary", fmt, "-", path=path), from_file)


def same_but_the_name(from_pipe: str, from_file: str, path: Path, name: str = "-") -> None:
    """The same output, line for line, except that where the file's output names the
    file the pipe's says `name` (padding aside: the name may sit in a box)."""
    pipe_lines, file_lines = from_pipe.splitlines(), from_file.splitlines()
    assert len(pipe_lines) == len(file_lines)
    named = 0
    for mine, theirs in zip(pipe_lines, file_lines, strict=True):
        if str(path) in theirs:
            named += 1
            assert mine.split() == theirs.replace(str(path), name).split()
        else:
            assert mine == theirs
    assert named


@pytest.mark.parametrize("capture", ["synth", "corrupt"])
def test_summary_tables_of_stdin_are_the_tables_of_the_file(request, capture):
    path = CORRUPT if capture == "corrupt" else request.getfixturevalue(capture)
    from_file = tcptrace("summary", path)
    from_pipe = piped("summary", "-", path=path)
    assert (from_pipe.code, from_pipe.err) == (from_file.code, from_file.err)
    assert "How the connections ended" in from_file.out
    assert from_pipe.out.startswith("standard input: ")
    same_but_the_name(from_pipe.out, from_file.out, path, "standard input")


def test_summary_of_a_fifo(tmp_path, synth):
    from_file = tcptrace("summary", "--json", synth)
    with fifo_with(tmp_path, synth.read_bytes()) as fifo:
        from_fifo = tcptrace("summary", "--json", fifo)
    same_run(from_fifo, from_file)
    assert len(from_fifo.out.splitlines()) == 2000


def test_damaged_file_through_stdin_gives_the_same_warnings(cut):
    for args in (["summary", "--json"], ["replay", "--json"], ["replay"]):
        from_file = tcptrace(*args, cut)
        from_pipe = piped(*args, "-", path=cut)
        assert from_file.code == from_pipe.code == 2
        assert from_pipe.err == from_file.err
        assert from_pipe.err.startswith("tcptrace: warning: record ")
        assert "file ends in the middle of the record" in from_pipe.err


def test_stdin_that_is_not_a_capture_is_one_line():
    for data, text in [(b"", "empty"), (b"hello, world\n" * 10, "not a capture file")]:
        for command in ("summary", "replay"):
            result = tcptrace(command, "-", stdin=data)
            assert result.code == 2 and result.out == ""
            assert result.err.count("\n") == 1 and text in result.err
            assert "standard input" in result.err and "Traceback" not in result.err


# -- replay ----------------------------------------------------------------------------------

def test_replay_of_stdin_shows_the_ladder_of_one_connection():
    from_file = tcptrace("replay", ONE)
    from_pipe = piped("replay", "-", path=ONE)
    assert (from_pipe.code, from_pipe.err) == (0, "")
    out = from_pipe.out
    assert "client 141.142.228.5:50153  →  server 54.243.118.187:80" in out
    assert "FINs crossed: simultaneous close" in out
    assert "How it ended: graceful close" in out
    same_but_the_name(from_pipe.out, from_file.out, ONE)


def test_replay_of_stdin_shows_the_table_of_many_connections():
    from_file = tcptrace("replay", MANY)
    from_pipe = piped("replay", "-", path=MANY)
    assert (from_pipe.code, from_pipe.err) == (0, "")
    out = from_pipe.out
    assert "7 TCP connections" in out
    assert "tcptrace replay - --stream N  (N = 0..6)" in out
    same_but_the_name(from_pipe.out, from_file.out, MANY)


@pytest.mark.parametrize("capture, expect", [(ONE, "How it ended: graceful close"),
                                             (MANY, "7 TCP connections")])
def test_replay_of_a_fifo(tmp_path, capture, expect):
    with fifo_with(tmp_path, capture.read_bytes()) as fifo:
        result = tcptrace("replay", fifo)
    assert (result.code, result.err) == (0, "")
    assert expect in result.out


def test_replay_stream_of_stdin_picks_one_connection():
    from_file = tcptrace("replay", "--json", "--stream", 3, MANY)
    from_pipe = piped("replay", "--json", "--stream", 3, "-", path=MANY)
    assert from_pipe.code == 0
    doc = json.loads(from_pipe.out)
    assert doc["file"] == "-"
    assert doc["connections"] == json.loads(from_file.out)["connections"]
    assert [c["stream"] for c in doc["connections"]] == [3]


@pytest.mark.parametrize("capture", ["synth", "corrupt", "cut"])
def test_replay_json_of_stdin_has_every_connection_and_the_warnings(request, tmp_path,
                                                                    capture):
    path = CORRUPT if capture == "corrupt" else request.getfixturevalue(capture)
    from_file = json.loads(tcptrace("replay", "--json", path).out)
    result = piped("replay", "--json", "-", path=path)
    assert result.code == (0 if capture == "synth" else 2)
    doc = json.loads(result.out)
    assert (doc["schema"], doc["command"], doc["file"]) == ("tcptrace/1", "replay", "-")
    streams = [c["stream"] for c in doc["connections"]]
    assert sorted(streams) == list(range(len(streams))) and streams
    assert doc["warnings"] == from_file["warnings"]
    assert bool(doc["warnings"]) == (capture != "synth")
    assert doc["connections"] == from_file["connections"]
    if capture == "synth":
        assert len(streams) == 2000
    # The same through a FIFO.
    with fifo_with(tmp_path, path.read_bytes()) as fifo:
        through_fifo = json.loads(tcptrace("replay", "--json", fifo).out)
    assert through_fifo["connections"] == doc["connections"]
    assert through_fifo["warnings"] == doc["warnings"]
