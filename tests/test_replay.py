"""`tcptrace replay`: the streaming listing, one connection's ladder, JSON, --speed, and
the progress bar. Real captures are used by path; synthetic ones are written to tmp."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

import pytest

from conftest import SHARED_CAPTURES
from tcptrace import replay as rp
from tcptrace.connections import read_connections
from tcptrace.pcapwrite import write_capture
from tcptrace.render.table import ReadProgress, show_progress
from tcptrace.verdict import classify

REAL = sorted(p.name for p in SHARED_CAPTURES.glob("*.pcap*"))
SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08


def frame(src: tuple[str, int], dst: tuple[str, int], flags: int, seq: int, ack: int = 0,
          payload: int = 0, win: int = 1000) -> bytes:
    """An Ethernet/IPv4/TCP frame (checksums left at 0: nothing here checks them)."""
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq % 2**32, ack % 2**32, 5 << 4, flags,
                      win, 0, 0) + b"x" * payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))))
    return b"\0" * 12 + b"\x08\x00" + ip + tcp


def bulk_connection(n: int, payload: int = 100,
                    t0: float = 1_700_000_000.0) -> list[tuple[float, bytes]]:
    """One connection of about n frames: handshake, data and ACKs, FIN close."""
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
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
    conns, warnings = read_connections(path)
    listing = rp.list_connections(path)
    assert listing.warnings == warnings
    assert len(listing.rows) == len(conns)
    for row, conn in zip(listing.rows, conns):
        assert row.conn.segments == []          # the listing keeps no segments
        assert (row.conn.client, row.conn.server, row.conn.vlan, row.conn.roles_guessed) == \
            (conn.client, conn.server, conn.vlan, conn.roles_guessed)
        assert (row.packets, row.verdict) == (len(conn.segments), classify(conn))
        assert rp.load_connection(path, row.index).segments == conn.segments


def test_roles_that_change_after_the_first_segment_are_observed_again(tmp_path):
    # The first segment has no SYN, so the lower port (5000) is taken for the server;
    # then a SYN from port 5000 makes it the client. The listing must not keep the
    # verdict of an observer started with the first guess.
    a, b = ("10.0.0.1", 5000), ("10.0.0.2", 6000)
    frames = [frame(b, a, ACK, 7000, 3000, payload=10), frame(a, b, SYN, 2999),
              frame(a, b, FIN | ACK, 3000, 7010), frame(b, a, ACK, 7010, 3001)]
    path = tmp_path / "late-syn.pcap"
    write_capture(path, [(1_700_000_000 + i, f) for i, f in enumerate(frames)])
    [conn], _ = read_connections(path)
    assert conn.client == "10.0.0.1:5000"
    [row] = rp.list_connections(path).rows
    assert row.conn.client == "10.0.0.1:5000"
    assert row.verdict == classify(conn)
    assert row.verdict.first_closer == "client"


def test_listing_memory_does_not_grow_with_the_segments(tmp_path):
    def peak(fn, frames: int) -> int:
        path = tmp_path / f"bulk-{frames}.pcap"
        write_capture(path, bulk_connection(frames, payload=300))   # several read chunks
        tracemalloc.start()
        try:
            fn(path)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(rp.list_connections, 10_000), peak(rp.list_connections, 30_000)
    # Three times the segments: the same read window and one observer, give or take.
    assert large < small + (256 << 10)
    # Whereas keeping 10,000 segments costs megabytes.
    assert peak(rp.load_all, 10_000) > small + (2 << 20)


def test_progress_is_reported_while_reading(tmp_path):
    path = tmp_path / "bulk.pcap"
    write_capture(path, bulk_connection(3 * rp.PROGRESS_EVERY))
    calls = []
    rp.list_connections(path, lambda done, size: calls.append((done, size)))
    size = path.stat().st_size
    assert len(calls) >= 3
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[-1] == (size, size)


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
    code, out, err = replay(path)
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
    assert [c["stream"] for c in doc["connections"]] == list(range(len(conns)))
    for c, conn in zip(doc["connections"], conns):
        assert (c["client"], c["server"]) == (conn.client, conn.server)
        assert len(c["packets"]) == len(conn.segments)
        assert c["verdict"]["close"] == classify(conn).close
        assert {"client_state", "server_state", "note"} <= set(c["packets"][0])


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
    _, out, _ = replay(SHARED_CAPTURES / "tcpdump_pptp.pcap")
    assert "[duplicate-ack]" in out and "[retransmission" in out


def test_wireshark_comments_are_shown_with_their_segment(replay, tshark, tmp_path):
    editcap = Path(tshark).with_name("editcap")
    if not editcap.exists():
        pytest.skip("editcap (Wireshark) is not installed")
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
