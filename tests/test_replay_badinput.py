"""Bad input to `tcptrace replay`, through the real command in a subprocess: a one-line
error (or warning) on stderr, a non-zero exit, never a traceback. A damaged file still
shows what could be read."""

from __future__ import annotations

import gzip
import random

import pytest

from tcptrace.pcapwrite import write_capture

from conftest import SHARED_CAPTURES, Result, run_tcptrace
from frames import frame

TEARDOWN = SHARED_CAPTURES / "cs_tcp_teardown.pcapng"
TWO_STREAMS = SHARED_CAPTURES / "lw_200722_tcp_anon.pcapng"


def run(*args) -> Result:
    return run_tcptrace("replay", *args, env={"COLUMNS": "160"}, timeout=60)


def one_line_failure(result: Result) -> str:
    assert result.code != 0
    assert "Traceback" not in result.err + result.out
    assert len(result.err.splitlines()) == 1, result.err
    assert result.err.startswith("tcptrace: ")
    return result.err.strip()


def test_missing_file(tmp_path):
    err = one_line_failure(run(tmp_path / "nope.pcap"))
    assert err == f"tcptrace: no such file: {tmp_path / 'nope.pcap'}"


def test_directory(tmp_path):
    assert "is a directory" in one_line_failure(run(tmp_path))


def test_empty_file(tmp_path):
    (tmp_path / "empty.pcap").write_bytes(b"")
    assert "is empty (0 bytes)" in one_line_failure(run(tmp_path / "empty.pcap"))


def test_random_bytes(tmp_path):
    (tmp_path / "random.pcap").write_bytes(random.Random(7).randbytes(4096))
    assert "is not a capture file" in one_line_failure(run(tmp_path / "random.pcap"))


def test_gzip_compressed_capture(tmp_path):
    (tmp_path / "c.pcapng.gz").write_bytes(gzip.compress(TEARDOWN.read_bytes()))
    assert "gzip-compressed" in one_line_failure(run(tmp_path / "c.pcapng.gz"))


def test_capture_without_tcp(tmp_path):
    udp = bytearray(frame(("10.0.0.1", 53), ("10.0.0.2", 5353), 0, 0))
    udp[14 + 9] = 17                     # IP protocol: UDP
    path = tmp_path / "udp.pcap"
    write_capture(path, [(1_700_000_000.0, bytes(udp))])
    assert one_line_failure(run(path)) == f"tcptrace: no TCP connections in {path}"


def test_cut_inside_the_first_record(tmp_path):
    path = tmp_path / "cut.pcapng"
    path.write_bytes(TEARDOWN.read_bytes()[:-300])
    err = one_line_failure(run(path))
    assert err.startswith(f"tcptrace: no TCP connections in {path} (record ")
    assert "file ends in the middle of the record" in err


def test_cut_in_the_middle_shows_what_could_be_read(tmp_path):
    raw = TWO_STREAMS.read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(raw[:len(raw) // 2 + 5])
    result = run(path)
    err = one_line_failure(result)
    assert "file ends in the middle of the record" in err and "stopped there" in err
    assert err.startswith("tcptrace: warning: record ")
    assert "TCP connections" in result.out or "How it ended" in result.out


def test_damaged_record_header_resynchronises_and_shows_the_rest():
    result = run(SHARED_CAPTURES / "sv_smtp-to-comma_corrupt.pcap")
    err = one_line_failure(result)
    assert err.startswith("tcptrace: warning: record 19 at byte ")
    assert err.endswith("damaged record header; skipped 3 bytes and resynchronised")
    assert "How it ended: graceful close (FIN from both sides)" in result.out


@pytest.mark.parametrize("stream", ["2", "-1", "99"])
def test_stream_out_of_range_lists_the_valid_range(stream):
    err = one_line_failure(run(TWO_STREAMS, "--stream", stream))
    assert err == (f"tcptrace: --stream {stream} is out of range: {TWO_STREAMS} has 2 TCP "
                   "connections (valid: 0..1)")


def test_stream_out_of_range_with_one_connection():
    err = one_line_failure(run(TEARDOWN, "--stream", "1"))
    assert err.endswith("has 1 TCP connection (0 is the only one)")


def test_step_without_a_terminal():
    # subprocess.run gives the child pipes, not a TTY.
    err = one_line_failure(run(TEARDOWN, "--step"))
    assert err.startswith("tcptrace: --step needs a terminal")
