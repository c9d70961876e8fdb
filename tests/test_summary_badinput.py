"""`tcptrace summary` on bad input, as replay: one line and a non-zero exit when nothing
can be read; what could be read plus a warning (exit 2) for a damaged file; never a
traceback."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from tcptrace.bench.synth import generate
from tcptrace.engine import Scan
from tcptrace.errors import TcptraceError
from tcptrace.pcapwrite import write_capture

from conftest import SHARED_CAPTURES, Result, run_tcptrace
from frames import ether, ipv4


def summary(*args) -> Result:
    return run_tcptrace("summary", *args)


def one_line_error(result: Result, text: str) -> None:
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1 and text in result.err
    assert "Traceback" not in result.err


def test_not_a_capture(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    one_line_error(summary(tmp_path / "notes.txt"), "not a capture file")
    one_line_error(summary(tmp_path / "missing.pcap"), "no such file")
    one_line_error(summary(tmp_path), "is a directory")
    (tmp_path / "empty.pcap").write_bytes(b"")
    one_line_error(summary(tmp_path / "empty.pcap"), "is empty")
    (tmp_path / "c.pcap.gz").write_bytes(gzip.compress(b"\xd4\xc3\xb2\xa1" + bytes(20)))
    one_line_error(summary(tmp_path / "c.pcap.gz"), "gzip-compressed")


def test_a_capture_without_tcp(tmp_path):
    udp = ether(ipv4(bytes(8), proto=17))
    write_capture(tmp_path / "udp.pcap", [(1.0, udp), (2.0, udp)])
    one_line_error(summary(tmp_path / "udp.pcap"), "no TCP connections")


def test_json_and_csv_together(tmp_path):
    one_line_error(summary("--json", "--csv", SHARED_CAPTURES / "cs_tcp_teardown.pcapng"),
                   "choose one of --json and --csv")


def test_linger_must_be_a_number():
    one_line_error(summary("--linger", "nan", SHARED_CAPTURES / "cs_tcp_teardown.pcapng"),
                   "--linger takes a number of seconds")
    assert summary("--json", "--linger", "inf", SHARED_CAPTURES / "cs_tcp_teardown.pcapng"
                   ).code == 0


def test_segments_with_a_timestamp_that_is_no_time_are_refused():
    from tcptrace.engine import group_segments
    from tcptrace.model import SYN, Segment

    with pytest.raises(TcptraceError, match="not a timestamp: NaN"):
        group_segments([Segment(float("nan"), "10.0.0.1", 1, "10.0.0.2", 2, SYN, 0, 0, 0, 0)])


def test_damaged_file_gives_what_it_can_and_a_warning():
    result = summary("--json", SHARED_CAPTURES / "sv_smtp-to-comma_corrupt.pcap")
    assert result.code == 2
    [line] = result.out.splitlines()
    assert json.loads(line)["verdict"]["close"] == "fin"    # the rest of the session
    assert result.err.startswith("tcptrace: warning: record 19")
    assert "resynchronised" in result.err and "Traceback" not in result.err


def test_file_cut_short_gives_the_connections_so_far(tmp_path):
    path = tmp_path / "synth.pcap"
    generate(path, 50, 9)
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) * 2 // 3 + 7])
    result = summary("--csv", cut)
    assert result.code == 2
    assert 10 < len(result.out.splitlines()) <= 51
    assert "file ends in the middle of the record" in result.err
    assert result.err.count("\n") == 1


@pytest.mark.parametrize("seed", range(6))
def test_random_damage_never_raises(tmp_path, seed):
    """Bytes overwritten anywhere (headers included): the reader resyncs or stops, the
    decoders reject what is not a segment; nothing else may escape."""
    path = tmp_path / "synth.pcap"
    generate(path, 40, seed)
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for _ in range(30):
        at = rng.randrange(24, len(data))
        data[at:at + 4] = rng.randbytes(4)
    path.write_bytes(bytes(data))
    try:
        scan = Scan(path)
        done = list(scan)
    except TcptraceError:
        return
    assert len(done) == scan.connections
    assert sorted(s.stream for s in done) == list(range(len(done)))
