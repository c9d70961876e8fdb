"""`tcptrace summary`: one engine and one grouping with replay (the same connections, the
same verdicts, the same counts, on every connection), streaming rules (port reuse,
linger, late roles), output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tcptrace import replay as rp
from tcptrace.bench.synth import generate
from tcptrace.engine import Scan
from tcptrace.model import ACK, FIN, RST, SYN
from tcptrace.pcapwrite import write_capture
from tcptrace.render.jsonout import verdict_json
from tcptrace.render.summary import CSV_FIELDS, CsvWriter

from conftest import SHARED_CAPTURES as CAPTURES
from conftest import real_captures
from frames import frame

REAL = real_captures()
CORRUPT = "sv_smtp-to-comma_corrupt.pcap"


# -- one engine, one grouping ----------------------------------------------------------------

def warnings_of(err: str) -> list[str]:
    return [line.removeprefix("tcptrace: warning: ") for line in err.splitlines()]


def assert_summary_agrees_with_replay(summary, replay, path: Path) -> int:
    """`summary --json` and `replay --json` of one capture: the same connections, in the
    same order, each with the same endpoints, roles, verdict and counts; the same
    warnings. Returns the number of connections."""
    code, out, err = summary("--json", path)
    r_code, r_out, r_err = replay("--json", path)
    assert code == r_code and err == r_err
    lines = [json.loads(line) for line in out.splitlines()]
    doc = json.loads(r_out)
    assert doc["warnings"] == warnings_of(err)
    streams = [c["stream"] for c in doc["connections"]]
    assert sorted(streams) == list(range(len(streams)))      # each once
    assert [line["stream"] for line in lines] == streams      # handed over in one order
    for line, conn in zip(lines, doc["connections"], strict=True):
        where = f"stream {conn['stream']}"
        assert (line["client"], line["server"], line.get("vlan"), line.get("roles_guessed")) \
            == (conn["client"], conn["server"], conn.get("vlan"), conn.get("roles_guessed")), where
        assert line["verdict"] == conn["verdict"], where
        packets = conn["packets"]
        for side in ("client", "server"):
            sent = line["sent"][side]
            mine = [p for p in packets if p["from"] == side and p["frame"] is not None]
            assert sent["packets"] == len(mine), where
            inferred = [p for p in packets if p["from"] == side and p["frame"] is None]
            assert sent["inferred"] == len(inferred), where
            assert sent["capture_duplicates"] == sum("capture-duplicate" in p.get("tags", ())
                                                     for p in mine), where
            assert sent["zero_windows"] == sum("zero-window" in p.get("tags", ())
                                               for p in mine), where
        assert line["last"] - line["first"] == pytest.approx(packets[-1]["t"], abs=2e-6), where
    return len(lines)


@pytest.mark.parametrize("name", REAL)
def test_summary_and_replay_agree_on_every_connection(summary, replay, name):
    assert assert_summary_agrees_with_replay(summary, replay, CAPTURES / name) >= 1


def test_summary_and_replay_agree_on_a_synthetic_capture(summary, replay, tmp_path):
    # Thousands of interleaved connections, loopback port reuse, every way of closing.
    path = tmp_path / "synth.pcap"
    expected, _ = generate(path, 3000, 5)
    assert assert_summary_agrees_with_replay(summary, replay, path) == len(expected)


def test_listing_and_summary_scan_give_the_same_rows():
    # replay's listing (keeping one connection's segments) and summary's scan (keeping
    # none) on the largest real capture.
    path = CAPTURES / "zeek_nmap-vsn.pcap"
    listing = rp.list_connections(path, keep=3)
    scan = sorted(Scan(path), key=lambda s: s.stream)
    assert [(r.index, r.conn.client, r.conn.server, r.packets, r.verdict) for r in listing.rows] \
        == [(s.stream, s.conn.client, s.conn.server, s.packets, s.verdict) for s in scan]
    assert listing.kept.stream == 3 and len(listing.kept.conn.segments) == scan[3].packets


# -- streaming rules -------------------------------------------------------------------------

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def closed_connection(t: float, isn: int) -> list[tuple[float, bytes]]:
    return [(t, frame(C, S, SYN, isn)), (t + 0.001, frame(S, C, SYN | ACK, 7, isn + 1)),
            (t + 0.002, frame(C, S, ACK, isn + 1, 8)),
            (t + 0.003, frame(C, S, FIN | ACK, isn + 1, 8)),
            (t + 0.004, frame(S, C, FIN | ACK, 8, isn + 2)),
            (t + 0.005, frame(C, S, ACK, isn + 2, 9))]


def summarise(tmp_path, frames, **options):
    """(client, close, segments) of each connection, as the summary hands them over;
    replay's listing (the default linger) must have the same connections."""
    path = tmp_path / "t.pcap"
    write_capture(path, frames)
    got = [(s.conn.client, s.verdict.close, s.client.packets + s.server.packets)
           for s in Scan(path, **options)]
    if options.get("linger", 60.0) == 60.0:
        rows = rp.list_connections(path).rows
        assert sorted(got) == sorted((r.conn.client, r.verdict.close, r.packets) for r in rows)
    return got


def test_port_reuse_starts_a_new_connection_at_once(tmp_path):
    frames = closed_connection(0, 100) + closed_connection(1, 5000)
    assert summarise(tmp_path, frames) == [("10.0.0.1:40000", "fin", 6)] * 2


def test_a_late_segment_after_linger_is_a_new_connection(tmp_path):
    stray = (500.0, frame(S, C, RST, 9))
    # Within the linger time it is the old connection's ...
    assert summarise(tmp_path, closed_connection(0, 100) + [stray], linger=600) == [
        ("10.0.0.1:40000", "fin", 7)]
    # ... after it, the old one is summarised and forgotten first, in replay too.
    assert summarise(tmp_path, closed_connection(0, 100) + [stray]) == [
        ("10.0.0.1:40000", "fin", 6), ("10.0.0.1:40000", "rst", 1)]


def test_roles_settled_by_a_late_syn_are_replays(tmp_path):
    # The SYN+ACK is captured before the SYN it answers; then the close.
    frames = [(0.0, frame(S, C, SYN | ACK, 7, 101)), (0.001, frame(C, S, SYN, 100)),
              (0.002, frame(C, S, ACK, 101, 8)), (0.003, frame(S, C, FIN | ACK, 8, 101)),
              (0.004, frame(C, S, FIN | ACK, 101, 9)), (0.005, frame(S, C, ACK, 9, 102))]
    path = tmp_path / "t.pcap"
    write_capture(path, frames)
    [s] = Scan(path)
    [row] = rp.list_connections(path).rows
    assert (s.conn.client, s.verdict) == (row.conn.client, row.verdict)
    assert (s.conn.client, s.verdict.first_closer) == ("10.0.0.1:40000", "server")
    assert s.conn.roles_guessed is None


def test_reverse_direction_on_another_vlan_joins(tmp_path):
    frames = [(0.0, frame(C, S, SYN, 100, vlan=81)),
              (0.001, frame(S, C, SYN | ACK, 7, 101, vlan=80)),
              (0.002, frame(C, S, ACK, 101, 8, vlan=81)),
              (0.003, frame(S, C, RST | ACK, 8, 101, vlan=80)),
              (0.004, frame(S, C, RST | ACK, 8, 101))]      # untagged: another connection
    assert summarise(tmp_path, frames) == [("10.0.0.1:40000", "rst", 4),
                                           ("10.0.0.1:40000", "rst", 1)]


# -- output ----------------------------------------------------------------------------------

def test_json_lines_carry_the_verdict_object_and_counts():
    for s in Scan(CAPTURES / "zeek_vlan-collisions.pcap"):
        doc = json.loads(s.json_line())
        assert doc["verdict"] == verdict_json(s.verdict)
        assert (doc["schema"], doc["command"], doc["stream"]) == ("tcptrace/1", "summary",
                                                                  s.stream)
        assert (doc["client"], doc["server"]) == (s.conn.client, s.conn.server)
        assert doc.get("vlan", []) == list(s.conn.vlan)
        assert doc["sent"]["client"] == s.client._asdict()
        assert doc["sent"]["server"] == s.server._asdict()
        assert (doc["first"], doc["last"]) == (round(s.first, 6), round(s.last, 6))
        assert "roles_guessed" not in doc
    [s] = Scan(CAPTURES / "cs_tcp_teardown.pcapng")
    assert json.loads(s.json_line())["roles_guessed"].startswith("no SYN seen")


def test_json_line_fields_in_contract_order():
    [s] = Scan(CAPTURES / "zeek_http-vlan-0.pcap")
    assert list(json.loads(s.json_line())) == ["schema", "command", "stream", "client",
                                               "server", "vlan", "first", "last", "verdict",
                                               "sent", "findings"]


def test_csv_rows():
    out = io.StringIO()
    writer = CsvWriter(out)
    for s in Scan(CAPTURES / "tcpreplay_test.pcap"):
        writer.write(s)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 7 and tuple(rows[0]) == CSV_FIELDS
    # README: stream 0 crossed FINs, stream 2 a 4-way close, stream 3 half-closed (the
    # server's FIN only); the others open or mid-stream.
    assert {r["close"] for r in rows} == {"fin", "half-closed", "open"}
    [half] = [r for r in rows if r["close"] == "half-closed"]
    assert (half["first_closer"], half["client_final"], half["server_final"],
            half["conn_state"]) == ("server", "CLOSE-WAIT", "FIN-WAIT-2", "S3")


def test_csv_from_the_command_line(summary):
    code, out, err = summary("--csv", CAPTURES / "zeek_nmap-vsn.pcap")
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 17
    # nmap: SYNs refused, SYNs never answered, and connections the scanner resets.
    assert {"refused", "unanswered", "rst"} <= {r["close"] for r in rows}
    for r in rows:
        if r["close"] == "unanswered":
            assert (r["server_packets"], r["conn_state"], r["server_final"]) == ("0", "S0", "?")


def test_tables_and_json_from_the_command_line(summary):
    path = CAPTURES / "zeek_nmap-vsn.pcap"
    code, out, err = summary(path)
    assert (code, err) == (0, ""), err
    for title in ("How the connections ended", "Ended by RST", "Top talkers"):
        assert title in out
    for word in ("refused", "unanswered"):
        assert word in out
    code, out, _ = summary("--json", path)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 17
    assert all(json.loads(line)["command"] == "summary" for line in lines)
    assert sorted(json.loads(line)["stream"] for line in lines) == list(range(17))


def test_jobs_is_gone(summary):
    code, out, err = summary("--jobs", "2", CAPTURES / "cs_tcp_teardown.pcapng")
    assert code == 2 and out == ""
    assert "No such option" in err and "--jobs" in err and "Traceback" not in err
