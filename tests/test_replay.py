"""`tcptrace replay`: the streaming listing, one connection's ladder, JSON, --speed, and
the progress bar. Real captures are used by path; synthetic ones are written to tmp."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tcptrace import replay as rp
from tcptrace.bench.synth import generate
from tcptrace.engine import Scan, analyse_segments
from tcptrace.model import Connection
from tcptrace.pcapwrite import write_capture
from tcptrace.render.progress import ReadProgress, show_progress

from conftest import SHARED_CAPTURES, real_captures, require
from frames import frame

REAL = real_captures()
SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08


def read_connections(path) -> tuple[list[Connection], list[str]]:
    """Every connection with its segments, in stream order, and the warnings."""
    scan = Scan(path, keep="all")
    return [s.conn for s in sorted(scan, key=lambda s: s.stream)], scan.warnings


def bulk_connection(n: int, payload: int = 100, t0: float = 1_700_000_000.0,
                    c: tuple[str, int] = ("10.0.0.1", 40000)) -> list[tuple[float, bytes]]:
    """One connection of about n frames: handshake, data and ACKs, FIN close."""
    s = ("10.0.0.2", 80)
    frames = [frame(c, s, SYN, 100), frame(s, c, SYN | ACK, 900, 101), frame(c, s, ACK, 101, 901)]
    seq = 101
    while len(frames) < n - 3:
        frames += [frame(c, s, PSH | ACK, seq, 901, payload), frame(s, c, ACK, 901, seq + payload)]
        seq += payload
    frames += [frame(c, s, FIN | ACK, seq, 901), frame(s, c, FIN | ACK, 901, seq + 1),
               frame(c, s, ACK, seq + 1, 902)]
    return [(t0 + i * 1e-4, f) for i, f in enumerate(frames)]


# -- the listing agrees with the whole-file analysis ---------------------------------------

@pytest.mark.parametrize("name", REAL)
def test_streaming_listing_matches_the_whole_file_analysis(name):
    path = SHARED_CAPTURES / name
    whole = Scan(path, keep="all")
    kept_all = sorted(whole, key=lambda s: s.stream)
    listing = rp.list_connections(path)
    assert listing.warnings == whole.warnings
    assert [row.index for row in listing.rows] == [s.stream for s in kept_all] \
        == list(range(len(kept_all)))
    for row, s in zip(listing.rows, kept_all, strict=True):
        conn = s.conn
        # The listing keeps the segments of stream 0 only (the ladder it may show).
        assert row.conn.segments == (conn.segments if row.index == 0 else [])
        assert (row.conn.client, row.conn.server, row.conn.vlan, row.conn.roles_guessed) == \
            (conn.client, conn.server, conn.vlan, conn.roles_guessed)
        # The verdict of the whole connection analysed on its own, roles known.
        steps, initial, verdict = analyse_segments(conn)
        assert (row.packets, row.verdict) == (len(conn.segments), verdict)
        assert (s.steps, s.initial) == (steps, initial)
        kept = rp.list_connections(path, keep=row.index).kept
        assert (kept.stream, kept.conn.segments, kept.steps) == (row.index, conn.segments,
                                                                 s.steps)


def test_roles_that_change_after_the_first_segment_are_observed_again(tmp_path):
    # The first segment has no SYN, so the lower port (5000) is taken for the server;
    # then a SYN from port 5000 makes it the client. The listing must not keep the
    # verdict of an observer started with the first guess.
    a, b = ("10.0.0.1", 5000), ("10.0.0.2", 6000)
    frames = [frame(b, a, ACK, 7000, 3000, length=10), frame(a, b, SYN, 2999),
              frame(a, b, FIN | ACK, 3000, 7010), frame(b, a, ACK, 7010, 3001)]
    path = tmp_path / "late-syn.pcap"
    write_capture(path, [(1_700_000_000 + i, f) for i, f in enumerate(frames)])
    [conn], _ = read_connections(path)
    assert conn.client == "10.0.0.1:5000"
    [row] = rp.list_connections(path).rows
    assert row.conn.client == "10.0.0.1:5000"
    assert row.verdict == analyse_segments(conn)[2]
    assert row.verdict.first_closer == "client"


# Peak resident memory (KiB) of a process that lists a capture. VmHWM, not ru_maxrss:
# ru_maxrss survives exec and would count the forking test process.
PEAK_RSS = """
import sys
from tcptrace import replay as rp
listing = rp.list_connections(sys.argv[1], keep=int(sys.argv[2]))
assert len(listing.rows) == 2
print(next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:")))
"""


def test_listing_memory_does_not_grow_with_the_segments(tmp_path):
    # Stream 0 is a short connection, stream 1 a long one. The listing keeps stream 0's
    # segments: its peak memory (the engine's included, hence a process of its own)
    # must not follow stream 1's length, unless stream 1 is the one kept.
    def peak_kib(frames: int, keep: int = 0) -> int:
        path = tmp_path / f"bulk-{frames}.pcap"
        if not path.exists():
            write_capture(path, bulk_connection(20, c=("10.0.0.3", 40001))
                          + bulk_connection(frames, payload=300, t0=1_700_000_001.0))
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path), str(keep)],
                             capture_output=True, text=True, check=True).stdout
        return int(out)

    small, large = peak_kib(20_000), peak_kib(100_000)
    # Five times the segments: the same read window and one observer, give or take.
    assert large < small + 4096
    # Whereas keeping 100,000 segments costs tens of megabytes.
    assert peak_kib(100_000, keep=1) > small + 16384


def cut_in_a_record(raw: bytes, at: int) -> bytes:
    """A classic pcap cut 9 bytes into the header of the record holding byte `at`."""
    pos = 24
    while pos + 16 + struct.unpack_from("<I", raw, pos + 8)[0] <= at:
        pos += 16 + struct.unpack_from("<I", raw, pos + 8)[0]
    return raw[:pos + 9]


def test_progress_is_reported_while_reading(tmp_path):
    # Progress is reported as the engine hands connections over: several times for a
    # capture of a few thousand connections over minutes, from the start to the end.
    path = tmp_path / "synth.pcap"
    generate(path, 4000, 3, rate=20)
    calls = []
    rp.list_connections(path, progress=lambda done, size: calls.append((done, size)))
    size = path.stat().st_size
    assert len(calls) >= 3
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[0][0] < size and calls[-1] == (size, size)


def test_progress_is_reported_while_reading_one_long_connection(tmp_path):
    path = tmp_path / "bulk.pcap"
    write_capture(path, bulk_connection(60_000, payload=300))    # 20 MB: 20 read chunks
    calls = []
    rp.list_connections(path, progress=lambda done, size: calls.append((done, size)))
    size = path.stat().st_size
    assert calls[-1] == (size, size)
    assert len(calls) >= 3 and calls[0][0] < size


def test_progress_bar_only_for_big_or_slow_reads_on_a_terminal():
    assert not show_progress(1 << 20, 0.1)
    assert show_progress(1 << 20, 0.6)
    assert show_progress(30 << 20, 0.0)

    class Pipe:
        is_terminal = False
    bar = ReadProgress(Pipe(), "reading")
    bar(10, 100 << 20)          # big, but stderr is not a terminal: no bar
    assert bar._bar is None


# -- the command ---------------------------------------------------------------------------

def test_one_connection_shows_its_ladder(replay):
    code, out, err = replay(SHARED_CAPTURES / "zeek_http_get-gzip.pcap")
    assert (code, err) == (0, "")
    assert "client 141.142.228.5:50153  →  server 54.243.118.187:80" in out
    assert "FINs crossed: simultaneous close" in out
    assert "[simultaneous-close]" in out and "[retransmission," in out
    assert "How it ended: graceful close" in out


def test_several_connections_show_a_table(replay):
    path = SHARED_CAPTURES / "tcpreplay_test.pcap"
    code, out, err = replay(path, "--width", 200)     # room for every column
    assert (code, err) == (0, "")
    listing = rp.list_connections(path)
    assert f"{len(listing.rows)} TCP connections" in out
    for header in ("stream", "client", "server", "segs", "how it closed", "first closer",
                   "client final", "server final", "conn_state"):
        assert header in out
    lines = out.splitlines()
    for row in listing.rows:
        line = next(x for x in lines if x.split()[:1] == [str(row.index)])
        assert row.conn.client in line and row.conn.server in line
        assert row.verdict.final["client"] in line and row.verdict.conn_state in line
    assert "--stream N  (N = 0..6)" in out
    assert "* no SYN seen" in out       # stream 0 starts mid-connection


def test_stream_picks_one_connection(replay):
    path = SHARED_CAPTURES / "tcpreplay_test.pcap"
    code, out, _ = replay(path, "--stream", 3)
    row = rp.list_connections(path).rows[3]
    assert code == 0
    assert "stream 3 of 7 (0..6)" in out
    assert f"client {row.conn.client}  →  server {row.conn.server}" in out
    assert "half-closed (one side's FIN only)" in out


def test_json_has_every_connection_with_packets_and_verdict(replay):
    path = SHARED_CAPTURES / "tcpreplay_test.pcap"
    code, out, _ = replay(path, "--json")
    doc = json.loads(out)
    conns, _ = read_connections(path)
    assert code == 0
    assert (doc["schema"], doc["command"], doc["file"], doc["warnings"]) == \
        ("tcptrace/1", "replay", str(path), [])
    # In the order the engine was done with them: each stream once.
    shown = sorted(doc["connections"], key=lambda c: c["stream"])
    assert [c["stream"] for c in shown] == list(range(len(conns)))
    for c, conn in zip(shown, conns, strict=True):
        assert (c["client"], c["server"]) == (conn.client, conn.server)
        assert len(c["packets"]) == len(conn.segments)
        assert c["verdict"]["close"] == analyse_segments(conn)[2].close
        assert {"client_state", "server_state", "note"} <= set(c["packets"][0])


def test_json_of_a_whole_capture_has_every_connection(replay, tmp_path):
    # Streamed as the engine is done with each connection: still one valid document,
    # every stream once, each closing as the generator scripted it.
    path = tmp_path / "synth.pcap"
    expected, _ = generate(path, 3000, 8)
    code, out, err = replay(path, "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert (doc["schema"], doc["command"], doc["file"], doc["warnings"]) == \
        ("tcptrace/1", "replay", str(path), [])
    assert sorted(c["stream"] for c in doc["connections"]) == list(range(len(expected)))
    assert Counter((c["client"], c["server"], c["verdict"]["close"])
                   for c in doc["connections"]) == \
        Counter((e.client, e.server, e.close) for e in expected)


def test_json_of_a_damaged_capture_ends_with_its_warnings(replay, tmp_path):
    path = tmp_path / "synth.pcap"
    generate(path, 300, 9)
    raw = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(cut_in_a_record(raw, len(raw) * 2 // 3))
    code, out, err = replay(cut, "--json")
    assert code == 2
    doc = json.loads(out)
    [warning] = doc["warnings"]
    assert "file ends in the middle of the record" in warning
    assert err == f"tcptrace: warning: {warning}\n"
    streams = sorted(c["stream"] for c in doc["connections"])
    assert streams == list(range(len(streams))) and 100 < len(streams) <= 300


def test_json_with_stream_has_just_that_connection(replay):
    code, out, _ = replay(SHARED_CAPTURES / "tcpreplay_test.pcap", "--json", "--stream", 2)
    [conn] = json.loads(out)["connections"]
    assert code == 0 and conn["stream"] == 2
    assert conn["client"].startswith("[2001:4958:")


def test_guessed_roles_are_said_in_the_header_and_the_json(replay):
    path = SHARED_CAPTURES / "cs_tcp_teardown.pcapng"
    [conn], _ = read_connections(path)
    _, out, _ = replay(path)
    assert f"Roles guessed ({conn.roles_guessed})" in out
    _, out, _ = replay(path, "--json")
    assert json.loads(out)["connections"][0]["roles_guessed"] == conn.roles_guessed
    assert "lower port" in conn.roles_guessed


def test_backpressure_tags_are_shown(replay):
    _, out, _ = replay(SHARED_CAPTURES / "cs_tcp_zerowindowrecovery.pcapng")
    assert "[zero-window]" in out and "[window-update]" in out
    _, out, _ = replay(SHARED_CAPTURES / "sv_tcp-empty-sack_tcp-opt.pcap")
    assert "[duplicate-ack]" in out and "[retransmission" in out
    # Every server frame of this capture is in it twice (same IPv4 ID and checksum):
    # copies, not the retransmissions and duplicate ACKs tshark calls them.
    _, out, _ = replay(SHARED_CAPTURES / "tcpdump_pptp.pcap")
    assert "[capture-duplicate]" in out and "[retransmission" not in out
    assert "[duplicate-ack]" not in out


def test_wireshark_comments_are_shown_with_their_segment(replay, tshark, tmp_path):
    editcap = Path(tshark).with_name("editcap")
    require(None if editcap.exists() else "editcap (Wireshark, with tshark) is not installed")
    import subprocess
    path = tmp_path / "commented.pcapng"
    subprocess.run([editcap, "-a", "3:look here", SHARED_CAPTURES / "cs_tcp_teardown.pcapng",
                    path], check=True, capture_output=True)
    _, out, _ = replay(path)
    assert "comment: look here" in out
    _, out, _ = replay(path, "--json")
    packets = json.loads(out)["connections"][0]["packets"]
    assert [p.get("comments") for p in packets] == [None, None, ["look here"], None]


def test_speed_plays_the_rows_back(replay):
    code, out, _ = replay(SHARED_CAPTURES / "cs_tcp_teardown.pcapng", "--speed", 1000)
    assert code == 0
    assert "Playing 4 segments at 1000x" in out
    assert out.count("FIN+ACK") == 2 and "How it ended" in out


@pytest.mark.parametrize("args", [["--json", "--speed", "2"], ["--step", "--json"]])
def test_presentation_options_exclude_each_other(replay, args):
    code, out, err = replay(SHARED_CAPTURES / "cs_tcp_teardown.pcapng", *args)
    assert code != 0 and out == ""
    assert err == "tcptrace: choose one of --json, --step and --speed\n"


def test_speed_with_several_connections_asks_for_a_stream(replay):
    code, _, err = replay(SHARED_CAPTURES / "tcpreplay_test.pcap", "--speed", "2")
    assert code != 0
    assert err.strip().endswith("has 7 TCP connections: pick one with --stream N (0..6)")
