"""Real-world capture shapes (issue 14), on captures made for it (tests/data/shapes/:
record.sh made them in network namespaces; build_tunnels.py built the tunnels this
kernel cannot make), against an independent truth: the same connection captured whole,
the single copy of a doubled capture, and tshark's dissection.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

from tcptrace import replay as rp
from tcptrace.engine import Scan

SHAPES = Path(__file__).resolve().parent / "data" / "shapes"


def replay_json(replay, path: Path, *args: str) -> dict:
    code, out, err = replay(path, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def tshark_fields(tshark: str, path: Path, *fields: str, extra: tuple[str, ...] = ()
                  ) -> list[list[str]]:
    out = subprocess.run([tshark, "-r", path, *extra, "-T", "fields",
                          *(a for f in fields for a in ("-e", f))],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


# -- one direction ------------------------------------------------------------------------

def test_one_direction_infers_the_unseen_server_as_the_whole_capture_shows_it(replay):
    # `tcpdump -Q out` on the client's veth: the client's 6 segments only; the same
    # connection captured both ways at the same time is the truth.
    [one] = replay_json(replay, SHAPES / "one-direction.pcap")["connections"]
    [both] = replay_json(replay, SHAPES / "one-direction-both.pcap")["connections"]
    seen = [p for p in one["packets"] if p["frame"] is not None]
    inferred = [p for p in one["packets"] if p["frame"] is None]
    assert {p["from"] for p in seen} == {"client"} and len(seen) == 6
    assert {p["from"] for p in inferred} == {"server"}
    assert all("inferred" in p["tags"] and "inferred from the client's ACKs" in p["note"]
               and p["win"] is None for p in inferred)
    # The client's own rows: the states it really went through, as the whole capture
    # shows them on the same segments (the FIN-WAIT-2 between, proved only by the
    # server's separate ACK, is the one thing one direction cannot show).
    truth = {(p["seq"], p["ack"], tuple(p["flags"])): p for p in both["packets"]
             if p["from"] == "client"}
    for p in seen:
        want = truth[(p["seq"], p["ack"], tuple(p["flags"]))]
        assert p["client_state"] == want["client_state"], p["note"]
    assert [p["client_state"] for p in seen] == [
        "SYN-SENT", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT"]
    # Every server segment that moved something is inferred where the server sent it:
    # the SYN+ACK, the reply's data, the FIN (with numbers and lengths as captured).
    server = [p for p in both["packets"] if p["from"] == "server"]
    real = [(p["flags"], p["seq"], p["len"]) for p in server
            if p["len"] or {"SYN", "FIN"} & set(p["flags"])]
    assert [(p["flags"], p["seq"], p["len"]) for p in inferred] == [
        (["SYN", "ACK"], 0, 0), (["ACK"], 1, 44), (["FIN", "ACK"], 45, 0)]
    assert [(set(f) - {"PSH"}, s, n) for f, s, n in real] == \
        [(set(f), s, n) for f, s, n in [(["SYN", "ACK"], 0, 0), (["ACK"], 1, 44),
                                         (["FIN", "ACK"], 45, 0)]]
    # The verdict: what the whole capture says, and that one direction was all there was.
    assert one["verdict"]["one_direction"] is True and "one_direction" not in both["verdict"]
    for key in ("close", "first_closer", "time_wait", "final"):
        assert one["verdict"][key] == both["verdict"][key], key


def test_one_direction_in_the_table_and_the_summary(replay, summary):
    code, out, _ = replay(SHAPES / "one-direction.pcap", "--width", 200)
    assert code == 0 and "One direction captured" in out and "[inferred]" in out
    code, out, _ = summary(SHAPES / "one-direction.pcap", "--json")
    [line] = [json.loads(x) for x in out.splitlines()]
    assert line["verdict"]["one_direction"] is True
    assert line["sent"]["server"] == {"packets": 0, "bytes": 44, "retransmissions": 0,
                                      "zero_windows": 0, "window_probes": 0,
                                      "capture_duplicates": 0, "inferred": 3}
    listing = rp.list_connections(SHAPES / "one-direction.pcap")
    assert listing.rows[0].cells[6] == "one direction captured"
    code, out, _ = summary(SHAPES / "one-direction.pcap", "--width", 200)
    assert code == 0 and "1 connection with one direction captured" in out
    assert "3 segments the capture missed, inferred" in out


def test_one_direction_server_closing_first_as_the_whole_capture_shows_it(replay):
    # The server closes first: the client's ACK of its FIN advances one number while
    # both are ESTABLISHED (a byte or the FIN); the client's own FIN next, acknowledging
    # nothing more, makes it the FIN. The same connection captured both ways is the truth.
    [one] = replay_json(replay, SHAPES / "server-first.pcap")["connections"]
    [both] = replay_json(replay, SHAPES / "server-first-both.pcap")["connections"]
    seen = [p for p in one["packets"] if p["frame"] is not None]
    inferred = [p for p in one["packets"] if p["frame"] is None]
    assert {p["from"] for p in seen} == {"client"} and len(seen) == 6
    truth = {(p["seq"], p["ack"], tuple(p["flags"])): p for p in both["packets"]
             if p["from"] == "client"}
    for p in seen:
        want = truth[(p["seq"], p["ack"], tuple(p["flags"]))]
        assert (p["client_state"], p["server_state"]) == \
            (want["client_state"], want["server_state"]), p["note"]
    assert [p["client_state"] for p in seen] == [
        "SYN-SENT", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK"]
    # The whole capture's client goes on to CLOSED on the server's ACK of its FIN: the
    # one thing the client's own segments cannot show.
    assert [p["client_state"] for p in both["packets"]][-1] == "CLOSED"
    assert [(p["flags"], p["seq"], p["len"]) for p in inferred] == [
        (["SYN", "ACK"], 0, 0), (["ACK"], 1, 44), (["FIN", "ACK"], 45, 0)]
    server = [(set(p["flags"]) - {"PSH"}, p["seq"], p["len"]) for p in both["packets"]
              if p["from"] == "server" and (p["len"] or {"SYN", "FIN"} & set(p["flags"]))]
    assert server == [({"SYN", "ACK"}, 0, 0), ({"ACK"}, 1, 44), ({"FIN", "ACK"}, 45, 0)]
    fin = inferred[-1]
    assert fin["server_state"] == "FIN-WAIT-1" and fin["client_state"] == "CLOSE-WAIT"
    assert "or 1 byte" in fin["note"] and "read as the FIN" in fin["note"]
    for key in ("close", "first_closer", "time_wait"):
        assert one["verdict"][key] == both["verdict"][key], key
    assert one["verdict"]["first_closer"] == "server"
    assert one["verdict"]["final"] == {"client": "LAST-ACK", "server": "TIME-WAIT"}
    assert both["verdict"]["final"] == {"client": "CLOSED", "server": "TIME-WAIT"}


# -- capture duplicates -------------------------------------------------------------------

def test_doubled_capture_gives_the_single_captures_states_and_verdict(replay, tshark):
    # -i any across a bridge: every frame on the port it came in by and on the port it
    # left by. The single capture (one port) is the truth.
    [double] = replay_json(replay, SHAPES / "doubled.pcap")["connections"]
    [single] = replay_json(replay, SHAPES / "single.pcap")["connections"]
    copies = [p for p in double["packets"] if "capture-duplicate" in p.get("tags", ())]
    originals = [p for p in double["packets"] if p not in copies]
    assert len(copies) == len(single["packets"]) == len(originals)

    def row(p: dict) -> tuple:
        return (p["from"], p["flags"], p["seq"], p["ack"], p["len"], p["client_state"],
                p["server_state"], [t for t in p.get("tags", []) if t != "delayed-ack"])
    assert [row(p) for p in originals] == [row(p) for p in single["packets"]]
    assert double["verdict"] == single["verdict"]
    # Each copy repeats the IPv4 ID of the frame before it from its side (tshark's
    # reading of the file), which tshark itself calls a retransmission or a duplicate ACK.
    fields = {int(n): (ip_id, retrans or dup) for n, ip_id, retrans, dup in tshark_fields(
        tshark, SHAPES / "doubled.pcap", "frame.number", "ip.id",
        "tcp.analysis.retransmission", "tcp.analysis.duplicate_ack")}
    for p in copies:
        assert fields[p["frame"]][0] == fields[p["frame"] - 1][0]
    assert sum(bool(flag) for _, flag in fields.values()) >= len(copies) - 1


def test_doubled_summary_counts_copies_apart(summary):
    _, out, _ = summary(SHAPES / "doubled.pcap", "--json")
    [line] = [json.loads(x) for x in out.splitlines()]
    _, out, _ = summary(SHAPES / "single.pcap", "--json")
    [truth] = [json.loads(x) for x in out.splitlines()]
    assert line["verdict"] == truth["verdict"]
    for side in ("client", "server"):
        got, want = line["sent"][side], truth["sent"][side]
        assert got["capture_duplicates"] == want["packets"]
        assert got["packets"] == 2 * want["packets"]
        assert (got["bytes"], got["retransmissions"]) == (want["bytes"], 0)
    copies = line["sent"]["client"]["capture_duplicates"] + \
        line["sent"]["server"]["capture_duplicates"]
    _, out, _ = summary(SHAPES / "doubled.pcap", "--width", 200)
    assert f"{copies} capture duplicates" in out and "no zero windows, window probes or " \
        "retransmissions" in out


# -- tunnels ------------------------------------------------------------------------------

def test_vxlan_connections_listed_with_their_encapsulation(replay):
    # -i any on the client: each connection on the VXLAN device (plain) and on the
    # underlay veth (inside VXLAN). VNI 7 uses port 4790, which only --vxlan-port reads.
    doc = replay_json(replay, SHAPES / "vxlan.pcap", "--vxlan-port", "4790")
    conns = [(c["server"], c.get("encap")) for c in doc["connections"]]
    assert sorted(conns, key=str) == sorted([
        ("192.168.42.2:8082", None), ("192.168.42.2:8082", ["vxlan 42 10.9.2.1-10.9.2.2"]),
        ("192.168.7.2:8083", None), ("192.168.7.2:8083", ["vxlan 7 10.9.2.1-10.9.2.2"])],
        key=str)
    # Plain and encapsulated copies are separate connections with the same story.
    by_server: dict[str, list[dict]] = {}
    for c in doc["connections"]:
        by_server.setdefault(c["server"], []).append(c)
    for plain, tunnelled in by_server.values():
        assert plain["verdict"] == tunnelled["verdict"]
        assert len(plain["packets"]) == len(tunnelled["packets"]) == 10
    code, out, _ = replay(SHAPES / "vxlan.pcap", "--vxlan-port", "4790", "--width", 120)
    assert code == 0 and "tunnel" in out and "vxlan 42" in out and "vxlan 7" in out


def test_every_tcp_segment_of_the_vxlan_capture_is_accounted_for(tshark, replay):
    path = SHAPES / "vxlan.pcap"
    # tshark reads 4789 as VXLAN by default; told of 4790, it sees every TCP segment.
    everything = len(tshark_fields(tshark, path, "frame.number",
                                   extra=("-d", "udp.port==4790,vxlan", "-Y", "tcp")))
    default = len(tshark_fields(tshark, path, "frame.number", extra=("-Y", "tcp")))
    assert everything == 40 and default == 30
    with_port = Scan(path, vxlan_ports=[4790])
    assert sum(s.packets for s in with_port) == everything and with_port.skipped == []
    scan = Scan(path)
    assert sum(s.packets for s in scan) == default
    assert scan.skipped == [("VXLAN-like UDP to port 4790 (--vxlan-port 4790 reads it as "
                             "VXLAN)", everything - default)]
    code, _, err = replay(path)
    assert code == 0 and err.count("warning") == 1 and "--vxlan-port 4790" in err


TSHARK_LAYER = {"gre": "gre", "ipip": "ip:ip", "6in4": "ip:ipv6", "geneve": "geneve",
                "erspan": "erspan", "mpls": "mpls", "pppoe": "pppoes"}


def test_built_tunnels_match_tsharks_dissection(tshark):
    # One connection inside each encapsulation; tshark says which frames hold which
    # inner 4-tuple and through what.
    path = SHAPES / "tunnels-scapy.pcap"
    rows = tshark_fields(tshark, path, "frame.protocols", "tcp.srcport", "tcp.dstport")
    theirs: Counter = Counter()
    kinds: dict[int, str] = {}
    for protocols, sport, dport in rows:
        server = min(int(sport), int(dport))
        theirs[server] += 1
        kinds[server] = protocols
    ours = list(Scan(path))
    assert {s.conn.server_port: s.packets for s in ours} == dict(theirs)
    for s in ours:
        kind = s.conn.encap[0].split()[0]
        assert TSHARK_LAYER[kind] in kinds[s.conn.server_port], (kind, kinds)
        assert s.verdict.close == "fin" and s.verdict.final == {"client": "TIME-WAIT",
                                                                 "server": "CLOSED"}
    paths = {s.conn.server_port: s.conn.encap for s in ours}
    assert paths[8000] == ("gre key 5 198.51.100.1-198.51.100.2",)
    assert paths[8006] == ("mpls 100", "mpls 200")   # the client's labels (first segment)
    assert paths[8007] == ("pppoe 0x1234",)


# -- reordering ---------------------------------------------------------------------------

def test_data_captured_after_its_fin_is_out_of_order_counted_once(tmp_path, tshark, summary):
    # The client's last 13 bytes reach the capture just after its FIN, as a real capture
    # did (issue 14): tshark calls them out of order; the bytes count once.
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)

    def seg(up: bool, flags: str, seq: int, ack: int, data: bytes = b"", t: float = 0.0):
        a, b = (c, s) if up else (s, c)
        p = Ether() / IP(src=a[0], dst=b[0]) / TCP(sport=a[1], dport=b[1], flags=flags,
                                                     seq=seq, ack=ack) / data
        p.time = t
        return p
    frames = [seg(True, "S", 100, 0, t=1.0), seg(False, "SA", 900, 101, t=1.001),
              seg(True, "A", 101, 901, t=1.002), seg(True, "FA", 114, 901, t=1.010),
              seg(True, "PA", 101, 901, b"hello, world!", t=1.0101),
              seg(False, "A", 901, 115, t=1.011), seg(False, "FA", 901, 115, t=1.012),
              seg(True, "A", 115, 902, t=1.013)]
    path = tmp_path / "late.pcap"
    wrpcap(str(path), frames)
    [(frame, flagged)] = [(int(n), o) for n, o in tshark_fields(
        tshark, path, "frame.number", "tcp.analysis.out_of_order") if o]
    [conn] = Scan(path, keep="all")
    views, verdict = rp.analyse(conn)
    late = views[frame - 1]
    assert late.tags == ["out-of-order"] and "retransmi" not in late.note
    assert conn.client.bytes == 13 and conn.client.retransmissions == 0
    assert verdict.close == "fin" and verdict.final == {"client": "TIME-WAIT", "server": "CLOSED"}
