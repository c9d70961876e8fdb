"""`tcptrace replay` on every real capture in /work/shared/captures-real (used by path),
checked against tshark's own dissection of the same file, computed when the test runs.

Compared per 4-tuple: the first FIN's sender, the first FIN-or-RST sender, the RST
senders, whether the FINs crossed (both sent before either was ACKed), and the zero
windows per direction. Where tshark and we legitimately differ, the test says why and
checks our answer another way.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from test_replay import REAL

from conftest import SHARED_CAPTURES
from tshark_facts import StreamFacts, stream_facts, tshark_packets

CORRUPT = "sv_smtp-to-comma_corrupt.pcap"
VLAN_COPIES = "zeek_vlan-collisions.pcap"


def our_facts(conn: dict) -> dict:
    """The same facts, from one connection of our --json output."""
    ends = {"client": conn["client"], "server": conn["server"]}
    # What the capture holds (tshark's side): not the rows inferred from ACKs.
    packets = [p for p in conn["packets"] if p["frame"] is not None]
    verdict = conn["verdict"]
    zero = {}
    for p in packets:
        if "zero-window" in p.get("tags", ()):
            zero[ends[p["from"]]] = zero.get(ends[p["from"]], 0) + 1
    rst_packets = {ends[p["from"]] for p in packets if "RST" in p["flags"]}
    rst_verdict = {ends[side] for side in ("client", "server")
                   if verdict["rst_from"] in (side, "both")}
    assert rst_packets == rst_verdict     # the verdict agrees with its own rows
    return {"packets": len(packets),
            "first_fin": next((ends[p["from"]] for p in packets if "FIN" in p["flags"]), None),
            "first_close": ends.get(verdict["first_closer"]),
            "rst_senders": rst_verdict, "simultaneous": verdict["simultaneous"],
            "zero_windows": zero}


def expected(facts: StreamFacts) -> dict:
    return {"packets": facts.packets, "first_fin": facts.first_fin,
            "first_close": facts.first_close, "rst_senders": facts.rst_senders,
            "simultaneous": facts.simultaneous, "zero_windows": facts.zero_windows}


def by_four_tuple(doc: dict) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for conn in doc["connections"]:
        out.setdefault(tuple(sorted((conn["client"], conn["server"]))), []).append(conn)
    return out


@pytest.mark.parametrize("name", REAL)
def test_replay_reads_every_real_capture(replay, name):
    code, out, err = replay(SHARED_CAPTURES / name)
    damaged = name == CORRUPT
    assert code == (2 if damaged else 0)
    assert len(err.splitlines()) == (1 if damaged else 0)
    assert ("TCP connections" in out) or ("How it ended" in out)


@pytest.mark.parametrize("name", [n for n in REAL if n not in (CORRUPT, VLAN_COPIES)])
def test_close_facts_match_tshark(replay, tshark, name):
    path = SHARED_CAPTURES / name
    _, out, _ = replay(path, "--json")
    ours = by_four_tuple(json.loads(out))
    theirs = stream_facts(path, tshark)
    assert set(ours) == set(theirs)
    for key, facts in theirs.items():
        [conn] = ours[key]      # no port reuse in these files: one connection per 4-tuple
        assert our_facts(conn) == expected(facts), key


def test_vlan_copies_are_three_connections_where_tshark_sees_one(replay, tshark):
    # tshark keys a stream on the 4-tuple alone and merges the untagged, VLAN 42 and
    # QinQ 10.20 copies of one conversation into one stream, whose second and third
    # copies it then calls retransmissions. We keep a connection per VLAN stack: three,
    # each closing as tshark's merged stream does, their segments adding up to its.
    path = SHARED_CAPTURES / VLAN_COPIES
    _, out, _ = replay(path, "--json")
    [(key, conns)] = by_four_tuple(json.loads(out)).items()
    [facts] = stream_facts(path, tshark).values()
    assert [c.get("vlan") for c in conns] == [None, [42], [10, 20]]
    assert sum(len(c["packets"]) for c in conns) == facts.packets
    for conn in conns:
        assert our_facts(conn) == {**expected(facts), "packets": len(conn["packets"])}
        assert conn["verdict"]["first_closer"] == "client"


def test_corrupt_capture_matches_tshark_on_the_repaired_file(replay, tshark, tmp_path):
    # tshark stops at the damaged record header after record 18 and sees the session
    # still open; we skip the 3 stray bytes and read on to its FIN close. To check what
    # we read, cut those bytes out of a copy (where tshark's own record lengths say
    # record 18 ends) and let tshark read the repaired file in full.
    path = SHARED_CAPTURES / CORRUPT
    lengths = subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "frame.cap_len"],
                             capture_output=True, text=True).stdout.split()
    assert len(lengths) == 18
    end = 24 + sum(16 + int(n) for n in lengths)
    raw = path.read_bytes()
    repaired = tmp_path / "repaired.pcap"
    repaired.write_bytes(raw[:end] + raw[end + 3:])
    assert len(tshark_packets(repaired, tshark)) == 199     # nothing damaged any more

    code, out, err = replay(path, "--json")
    assert code == 2
    assert err == (f"tcptrace: warning: record 19 at byte {end}: damaged record header; "
                   "skipped 3 bytes and resynchronised\n")
    doc = json.loads(out)
    assert doc["warnings"] == [err.removeprefix("tcptrace: warning: ").strip()]
    [(key, [conn])] = by_four_tuple(doc).items()
    assert our_facts(conn) == expected(stream_facts(repaired, tshark)[key])
    damaged = stream_facts(path, tshark)[key]
    assert (damaged.packets, damaged.first_fin) == (18, None)   # tshark alone: still open
