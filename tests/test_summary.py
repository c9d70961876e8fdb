"""`tcptrace summary`: one engine with replay (same observer, same verdicts), the fast
paths equal to the slow ones, streaming rules (port reuse, linger, late roles), output."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import socket
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptrace.cli import cli
from tcptrace.connections import read_connections
from tcptrace.decode import ETH_IP4_TCP, decode_segment
from tcptrace.model import ACK, FIN, PSH, RST, SYN, Segment
from tcptrace.observer import ConnectionObserver, Endpoint
from tcptrace.pcapfile import CaptureReader
from tcptrace.pcapwrite import write_capture
from tcptrace.render.jsonout import verdict_json
from tcptrace.render.summary import CSV_FIELDS, CsvWriter, json_line
from tcptrace.summary import Summariser
from tcptrace.verdict import classify

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures-real"
REAL = sorted(p.name for p in CAPTURES.glob("*.pcap*"))


def key(conn, first: float) -> tuple:
    return conn.client, conn.server, conn.vlan, round(first, 6)


# -- one engine ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", REAL)
def test_same_connections_and_verdicts_as_replay(name):
    path = CAPTURES / name
    ours = {key(s.conn, s.first): s for s in Summariser(path)}
    conns, _ = read_connections(path)
    assert sorted(ours) == sorted(key(c, c.segments[0].t) for c in conns)
    for conn in conns:
        s = ours[key(conn, conn.segments[0].t)]
        assert s.verdict == classify(conn)
        assert s.conn.roles_guessed == conn.roles_guessed
        assert s.client.packets + s.server.packets == len(conn.segments)
        assert s.last == conn.segments[-1].t


def _random_segments(rng: random.Random) -> list[Segment]:
    """A random walk over one connection: mostly in-order traffic, with losses,
    retransmissions, zero windows, FINs, RSTs, stray SYNs and odd numbers."""
    isn = [rng.getrandbits(32), rng.getrandbits(32)]
    nxt = list(isn)
    ends = [("10.0.0.1", 40000), ("10.0.0.2", 80)]
    segs: list[Segment] = []

    def add(side, flags, seq, ack, length=0, win=502, wscale=None):
        (src, sport), (dst, dport) = ends[side], ends[1 - side]
        t = (segs[-1].t if segs else 0.0) + rng.choice((0.0001, 0.001, 0.05))
        segs.append(Segment(t, src, sport, dst, dport, flags, seq & 0xFFFFFFFF,
                            ack & 0xFFFFFFFF, length, win, wscale))

    if rng.random() < 0.8:
        add(0, SYN, isn[0], 0, win=64240, wscale=rng.choice((None, 7)))
        nxt[0] += 1
        if rng.random() < 0.9:
            add(1, SYN | ACK, isn[1], nxt[0], win=65160, wscale=rng.choice((None, 7)))
            nxt[1] += 1
            add(0, ACK, nxt[0], nxt[1])
    for _ in range(rng.randrange(1, 40)):
        side, x = rng.randrange(2), rng.random()
        length = rng.choice((0, 0, 1, 100, 1448))
        win = 502 if rng.random() < 0.85 else rng.choice((0, 1, 65535))
        if x < 0.7:                                     # in order
            add(side, ACK | (PSH if length else 0), nxt[side],
                nxt[1 - side] - rng.choice((0, 0, 0, 1, 100)), length, win)
            nxt[side] += length
        elif x < 0.78:                                  # old data again
            add(side, ACK, nxt[side] - rng.choice((1, 100, 1448)), nxt[1 - side], length, win)
        elif x < 0.84:                                  # beyond a gap
            add(side, ACK, nxt[side] + rng.choice((1, 100)), nxt[1 - side], length, win)
            if rng.random() < 0.5:
                nxt[side] += 100 + length
        elif x < 0.9:
            add(side, FIN | ACK, nxt[side], nxt[1 - side], length, win)
            nxt[side] += length + 1
        elif x < 0.93:
            add(side, RST | (ACK if rng.random() < 0.5 else 0),
                nxt[side] + rng.choice((0, 0, 5)), nxt[1 - side], 0, 0)
        elif x < 0.95:
            add(side, SYN | (ACK if rng.random() < 0.5 else 0), isn[side], nxt[1 - side], 0, win)
        else:
            add(side, rng.choice((ACK, 0, ACK | FIN | PSH, ACK | 0x20)),
                nxt[side] + rng.choice((0, -1, 1 << 31)),
                nxt[1 - side] + rng.choice((0, 1 << 31, 5)), length, win)
    return segs


def _state(obs: ConnectionObserver) -> dict:
    """Everything the observer knows, except what only annotation or caching keeps."""
    out = {name: getattr(obs, name) for name in ConnectionObserver.__slots__
           if name not in ("client", "server", "zeek", "_syn_steps", "_syn_side")}
    for side in ("client", "server"):
        end = getattr(obs, side)
        out.update({f"{side}.{name}": getattr(end, name) for name in Endpoint.__slots__
                    if name not in ("steps", "quiet")})
    out.update({f"zeek.{name}": getattr(obs.zeek, name) for name in type(obs.zeek).__slots__})
    return out


def test_header_prediction_leaves_the_same_state_as_the_full_path():
    rng = random.Random(20240601)
    for _ in range(1500):
        full, fast = ConnectionObserver("10.0.0.1", 40000), ConnectionObserver("10.0.0.1", 40000)
        for seg in _random_segments(rng):
            full.feed(seg)                  # annotate=True never takes the fast path
            fast.feed_fields(seg.src == "10.0.0.1", seg.t, seg.flags, seg.seq, seg.ack,
                             seg.length, seg.win, seg.wscale)
            assert _state(fast) == _state(full), seg


@pytest.mark.parametrize("name", [n for n in REAL if n.endswith(".pcap")])
def test_in_place_decoding_equals_decode_segment(name):
    reader = CaptureReader(CAPTURES / name)
    fast = 0
    for ts, linktype, buf, off, caplen, orig in reader.frames():
        seg = decode_segment(linktype, buf[off:off + caplen], orig, ts)
        if linktype != 1 or caplen < ETH_IP4_TCP.size:
            continue
        etype, vihl, total, frag, proto, raw, seq, ack, hoff, flags, win = \
            ETH_IP4_TCP.unpack_from(buf, off)
        hlen = hoff >> 2 & 0x3C
        if (etype, vihl, proto) != (0x0800, 0x45, 6) or frag & 0x1FFF or not total:
            continue
        fast += 1
        if hlen < 20 or total - 20 < hlen:
            assert seg is None
            continue
        assert raw == (socket.inet_aton(seg.src) + socket.inet_aton(seg.dst)
                       + struct.pack("!HH", seg.sport, seg.dport))
        assert (seq, ack, flags, win, total - 20 - hlen) == (seg.seq, seg.ack, seg.flags,
                                                             seg.win, seg.length)
    assert fast or name in ("lw_simple_http_sll2.pcap", "zeek_tls_irc-starttls.pcap",
                            "sv_tcp-empty-sack_tcp-opt.pcap", "zeek_redis_attr.pcap",
                            "zeek_http-vlan-0.pcap", "zeek_ftp_ipv6-violation.pcap",
                            "sv_community-id-ipv6.pcap", "sv_mqtt-limit-2.pcap")


# -- streaming rules -------------------------------------------------------------------------

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def frame(src, dst, flags, seq, ack=0, length=0, vlan=None) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 512, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + length, 0, 0, 64, 6, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return b"\x02" * 12 + tag + b"\x08\x00" + ip + tcp + bytes(length)


def closed_connection(t: float, isn: int) -> list[tuple[float, bytes]]:
    return [(t, frame(C, S, SYN, isn)), (t + 0.001, frame(S, C, SYN | ACK, 7, isn + 1)),
            (t + 0.002, frame(C, S, ACK, isn + 1, 8)),
            (t + 0.003, frame(C, S, FIN | ACK, isn + 1, 8)),
            (t + 0.004, frame(S, C, FIN | ACK, 8, isn + 2)),
            (t + 0.005, frame(C, S, ACK, isn + 2, 9))]


def summarise(tmp_path, frames, **options):
    path = tmp_path / "t.pcap"
    write_capture(path, frames)
    return [(s.conn.client, s.verdict.close, s.client.packets + s.server.packets)
            for s in Summariser(path, **options)]


def test_port_reuse_starts_a_new_connection_at_once(tmp_path):
    frames = closed_connection(0, 100) + closed_connection(1, 5000)
    assert summarise(tmp_path, frames) == [("10.0.0.1:40000", "fin", 6)] * 2


def test_a_late_segment_after_linger_is_a_new_connection(tmp_path):
    stray = (500.0, frame(S, C, RST, 9))
    # Within the linger time it is the old connection's (as replay has it) ...
    assert summarise(tmp_path, closed_connection(0, 100) + [stray], linger=600) == [
        ("10.0.0.1:40000", "fin", 7)]
    # ... after it, the old one is summarised and forgotten first.
    assert summarise(tmp_path, closed_connection(0, 100) + [stray], linger=60) == [
        ("10.0.0.1:40000", "fin", 6), ("10.0.0.1:40000", "rst", 1)]


def test_roles_settled_by_a_late_syn_are_replays(tmp_path):
    # The SYN+ACK is captured before the SYN it answers; then the close.
    frames = [(0.0, frame(S, C, SYN | ACK, 7, 101)), (0.001, frame(C, S, SYN, 100)),
              (0.002, frame(C, S, ACK, 101, 8)), (0.003, frame(S, C, FIN | ACK, 8, 101)),
              (0.004, frame(C, S, FIN | ACK, 101, 9)), (0.005, frame(S, C, ACK, 9, 102))]
    path = tmp_path / "t.pcap"
    write_capture(path, frames)
    [s] = Summariser(path)
    [conn], _ = read_connections(path)
    assert (s.conn.client, s.verdict) == (conn.client, classify(conn))
    assert (s.conn.client, s.verdict.first_closer) == ("10.0.0.1:40000", "server")


def test_reverse_direction_on_another_vlan_joins(tmp_path):
    frames = [(0.0, frame(C, S, SYN, 100, vlan=81)),
              (0.001, frame(S, C, SYN | ACK, 7, 101, vlan=80)),
              (0.002, frame(C, S, ACK, 101, 8, vlan=81)),
              (0.003, frame(S, C, RST | ACK, 8, 101, vlan=80)),
              (0.004, frame(S, C, RST | ACK, 8, 101))]      # untagged: another connection
    assert summarise(tmp_path, frames) == [("10.0.0.1:40000", "rst", 4),
                                           ("10.0.0.1:40000", "rst", 1)]
    assert len(read_connections(tmp_path / "t.pcap")[0]) == 2


# -- output ----------------------------------------------------------------------------------

def test_json_lines_carry_the_verdict_object_and_counts():
    for s in Summariser(CAPTURES / "zeek_vlan-collisions.pcap"):
        doc = json.loads(json_line(s))
        assert doc["verdict"] == verdict_json(s.verdict)
        assert (doc["schema"], doc["command"]) == ("tcptrace/1", "summary")
        assert (doc["client"], doc["server"]) == (s.conn.client, s.conn.server)
        assert doc.get("vlan", []) == list(s.conn.vlan)
        assert doc["sent"]["client"] == s.client._asdict()
        assert (doc["first"], doc["last"]) == (round(s.first, 6), round(s.last, 6))
    [s] = Summariser(CAPTURES / "cs_tcp_teardown.pcapng")
    assert json.loads(json_line(s))["roles_guessed"].startswith("no SYN seen")


def test_csv_rows():
    out = io.StringIO()
    writer = CsvWriter(out)
    for s in Summariser(CAPTURES / "tcpreplay_test.pcap"):
        writer.write(s)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 7 and tuple(rows[0]) == CSV_FIELDS
    assert {r["close"] for r in rows} == {"fin", "half-open", "open"}


def test_tables_and_json_from_the_command_line():
    path = str(CAPTURES / "zeek_nmap-vsn.pcap")
    result = CliRunner().invoke(cli, ["summary", path])
    assert result.exit_code == 0, result.output
    for title in ("How the connections ended", "Ended by RST", "Top talkers"):
        assert title in result.output
    result = CliRunner().invoke(cli, ["summary", "--json", path])
    lines = result.output.splitlines()
    assert len(lines) == 17 and all(json.loads(line)["command"] == "summary" for line in lines)


# -- several processes ---------------------------------------------------------------------

@pytest.mark.parametrize("name", REAL)
def test_parallel_jobs_give_the_same_summaries(name):
    path = CAPTURES / name
    one = [json_line(s) for s in Summariser(path, jobs=1)]
    assert sorted(json_line(s) for s in Summariser(path, jobs=2)) == sorted(one)


@pytest.mark.parametrize("jobs", [2, 3])
def test_parallel_jobs_on_a_synthetic_capture(tmp_path, jobs):
    from tcptrace.bench.synth import generate

    path = tmp_path / "synth.pcap"
    generate(path, 3000, 7)
    for linger in (60.0, 0.5):
        one = Summariser(path, linger=linger, jobs=1)
        lines = [json_line(s) for s in one]
        many = Summariser(path, linger=linger, jobs=jobs)
        got = [json_line(s) for s in many]
        assert sorted(got) == sorted(lines)
        assert (many.segments, many.connections) == (one.segments, one.connections)
        # Deterministic, and the end of the file comes in order of first appearance.
        assert got == [json_line(s) for s in Summariser(path, linger=linger, jobs=jobs)]
        assert got[-100:] == lines[-100:] or linger == 0.5


def test_parallel_stopping_early_reaps_the_worker(tmp_path):
    from tcptrace.bench.synth import generate

    path = tmp_path / "synth.pcap"
    generate(path, 2000, 3)
    run = iter(Summariser(path, jobs=2))
    next(run)
    run.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
