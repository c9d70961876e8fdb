"""`tcptrace diagnose`: every finding kind found where a real capture shows it, with
frames that tshark confirms (tests/finding_witness.py), and nothing found in the clean
graceful captures.

- captures/findings/ and the keep-alive race: recorded here for real (loopback, or a
  namespace with nftables drops): each file proves the kind in its name.
- ../shared/captures-real: the findings are pinned, and each is checked on tshark's
  reading of the packets at test time.
- live: `tcptrace close --mode keepalive-race` is found by diagnose, and its ladder
  marks the proving segments.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from finding_witness import Witness, packets

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES, real_captures, require

FINDINGS = PROJECT_CAPTURES / "findings"
RECORDED = sorted(p.name for p in FINDINGS.glob("*.pcapng"))
RACE = PROJECT_CAPTURES / "close-keepalive-race-by-server.pcapng"
UNREAD = ("close-unread.pcapng", "close-unread-node.pcapng", "close-unread-ipv6.pcapng",
          "close-kill-unread.pcapng")
# Library captures of `close` modes whose point is a finding: (kind, side).
NOT_CLEAN = {
    "close-linger.pcapng": ("zero-window-stall", "server"),   # the paused reader
    "close-tw-reuse.pcapng": ("time-wait-reuse", "client"),
    "close-tw-reuse-by-server.pcapng": ("time-wait-reuse", "server"),
    "close-tw-reuse-port.pcapng": ("time-wait-reuse", "client"),
    # The host came back without the connection: a bare RST, not an abort.
    "close-vanish-return.pcapng": ("half-open-connection", "server"),
    "close-vanish-return-ipv6.pcapng": ("half-open-connection", "server"),
}

# Real captures: (kind, stream, frames) of every finding, in the order reported.
PINNED: dict[str, list[tuple[str, int, list[int]]]] = {
    "cs_nowebaccess2.pcapng": [("refused", 0, [3, 4, 5, 7])],
    "cs_tcp_zerowindowdead.pcapng": [("zero-window-stall", 0, [2, 3, 7])],
    # The client's RST carries no ACK: the reset of a host without the connection, or
    # an abort by a stack that omits the ACK; the wire cannot tell which.
    "sv_tcp-empty-sack_tcp-opt.pcap": [("half-open-connection", 0, [41, 42])],
    "zeek_ftp_ipv6-violation.pcap": [("write-after-close", 0, [13, 14, 15])],
    "zeek_http_206_example_b.pcap": [("abort-with-unread-data", 1, [1543, 1544, 1556])],
    "zeek_ldap_modify-request.pcapng": [("abort-with-unread-data", 0, [14, 16, 17])],
    "zeek_nmap-vsn.pcap": [
        ("refused", 0, [1, 11]), ("refused", 1, [78, 80]), ("unanswered-syn", 3, [90]),
        ("refused", 4, [92, 257]), ("unanswered-syn", 5, [95]),
        ("unanswered-syn", 7, [359]), ("refused", 8, [361, 478]),
        ("unanswered-syn", 9, [364]), ("unanswered-syn", 10, [367]),
        ("refused", 11, [368, 479]), ("unanswered-syn", 12, [369]),
        ("unanswered-syn", 13, [411]), ("refused", 14, [412, 480]),
        ("unanswered-syn", 15, [413])],
    "zeek_redis_attr.pcap": [("refused", 0, [1, 2]), ("refused", 2, [15, 16])],
    # A FIN on the SYN, then the server's bare RST for the ACK+FIN that followed.
    "zeek_tcp_fin_retransmission.pcap": [("half-open-connection", 0, [4, 5])],
    "zeek_tls_irc-starttls.pcap": [("keep-alive-race", 0, [16, 17, 18])],
}


def findings(tcptrace, path, *options) -> list[dict]:
    code, out, err = tcptrace("diagnose", path, "--json", *options)
    assert code in (0, 2) and (code == 0) == (err == ""), err
    return [json.loads(line) for line in out.splitlines()
            if json.loads(line).get("scope") != "port"]


def witness(path, found: list[dict], tshark: str) -> None:
    pkts = packets(path, tshark)
    for f in found:
        Witness(f, pkts).check()


@pytest.mark.parametrize("name", RECORDED)
def test_each_recorded_capture_proves_the_finding_in_its_name(tcptrace, tshark, name):
    kind = name.removeprefix("finding-").removesuffix(".pcapng")
    found = findings(tcptrace, FINDINGS / name)
    assert found and {f["kind"] for f in found} == {kind}
    witness(FINDINGS / name, found, tshark)


def test_a_request_after_a_quiet_reset_without_fin_is_the_race_econnreset_form(tcptrace):
    [f] = findings(tcptrace, FINDINGS / "finding-abort-with-unread-data.pcapng")
    assert f["side"] == "server" and f["quiet"] >= 1.0
    code, out, _ = tcptrace("diagnose", FINDINGS / "finding-abort-with-unread-data.pcapng")
    assert "keep-alive race in its ECONNRESET form" in " ".join(out.split())
    # Below --idle it is only an abort.
    code, out, _ = tcptrace("diagnose", FINDINGS / "finding-abort-with-unread-data.pcapng",
                            "--idle", "5")
    assert "ECONNRESET form" not in " ".join(out.split())


def test_the_recorded_keep_alive_race_is_found(tcptrace, tshark):
    [f] = findings(tcptrace, RACE)
    assert (f["kind"], f["side"], f["stream"]) == ("keep-alive-race", "server", 0)
    witness(RACE, [f], tshark)


@pytest.mark.parametrize("name", UNREAD)
def test_close_with_unread_data_is_an_abort_with_unread_data(tcptrace, tshark, name):
    [f] = findings(tcptrace, PROJECT_CAPTURES / name)
    assert (f["kind"], f["side"]) == ("abort-with-unread-data", "client")
    witness(PROJECT_CAPTURES / name, [f], tshark)


@pytest.mark.parametrize("name", sorted(
    p.name for p in PROJECT_CAPTURES.glob("close-*.pcapng")
    if p.name not in UNREAD and p.name not in NOT_CLEAN and p != RACE))
def test_the_clean_closes_of_the_library_give_no_finding(tcptrace, name):
    assert findings(tcptrace, PROJECT_CAPTURES / name) == []


@pytest.mark.parametrize("name", sorted(NOT_CLEAN))
def test_the_library_modes_with_a_finding_show_it_on_the_wire(tcptrace, tshark, name):
    found = findings(tcptrace, PROJECT_CAPTURES / name)
    assert [(f["kind"], f["side"]) for f in found] == [NOT_CLEAN[name]]
    witness(PROJECT_CAPTURES / name, found, tshark)


@pytest.mark.parametrize("name", real_captures())
def test_real_captures_findings_are_pinned_and_true_on_the_wire(tcptrace, tshark, name):
    found = findings(tcptrace, SHARED_CAPTURES / name)
    assert [(f["kind"], f["stream"], f["frames"]) for f in found] == PINNED.get(name, [])
    witness(SHARED_CAPTURES / name, found, tshark)


def test_refused_attempts_are_counted_per_port(tcptrace):
    code, out, _ = tcptrace("diagnose", FINDINGS / "finding-refused.pcapng", "--json")
    [port] = [r for r in map(json.loads, out.splitlines()) if r.get("scope") == "port"]
    assert (port["kind"], port["connections"], port["syns"], port["clients"]) == \
        ("refused", 3, 3, 1)
    assert port["streams"] == [0, 1, 2]


def test_unanswered_syns_carry_the_retry_pattern(tcptrace, tshark):
    path = FINDINGS / "finding-unanswered-syn.pcapng"
    [f] = findings(tcptrace, path)
    syn_times = [p.t for p in packets(path, tshark).values() if p.syn]
    assert f["count"] == len(syn_times) >= 3
    assert f["pattern"] == pytest.approx([t - syn_times[0] for t in syn_times], abs=1e-6)


def test_thresholds_are_options(tcptrace):
    # The race's server was idle 1.2 s: with --idle 2 it is a write after close.
    [f] = findings(tcptrace, RACE, "--idle", "2")
    assert f["kind"] == "write-after-close"
    # The CLOSE-WAIT held about 6 s: not a leak under a 10 s threshold.
    assert findings(tcptrace, FINDINGS / "finding-close-wait-leak.pcapng",
                    "--close-wait", "10") == []
    assert findings(tcptrace, SHARED_CAPTURES / "cs_tcp_zerowindowdead.pcapng",
                    "--zero-window", "30") == []


def test_the_report_groups_by_kind_and_names_the_next_command(tcptrace):
    path = SHARED_CAPTURES / "zeek_nmap-vsn.pcap"
    code, out, err = tcptrace("diagnose", path, "--width", "80")
    assert (code, err) == (0, "")
    assert "refused (nothing listening) — 6 connections" in out
    assert "unanswered SYN — 8 connections" in out
    # The next command stays whole on its line (the terminal wraps it: it can be
    # copied); everything else fits the width.
    assert f"    → tcptrace replay {path} --stream 0\n" in out
    assert max(len(line) for line in out.splitlines() if "→ tcptrace" not in line) <= 80


def test_a_clean_capture_says_so(tcptrace):
    code, out, _ = tcptrace("diagnose", PROJECT_CAPTURES / "close-end.pcapng")
    assert code == 0 and "no findings" in out


def test_standard_input_and_bad_input(tcptrace):
    data = RACE.read_bytes()
    code, out, _ = tcptrace("diagnose", "-", "--json", stdin=data)
    assert code == 0 and json.loads(out.splitlines()[0])["kind"] == "keep-alive-race"
    code, out, err = tcptrace("diagnose", PROJECT_CAPTURES / "README.md")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("tcptrace: ") and "Traceback" not in err


def test_summary_counts_the_same_findings(tcptrace, summary):
    path = SHARED_CAPTURES / "zeek_nmap-vsn.pcap"
    _, out, _ = summary(path, "--json")
    per_stream = {d["stream"]: d["findings"] for d in map(json.loads, out.splitlines())}
    for f in findings(tcptrace, path):
        assert f["kind"] in per_stream[f["stream"]]
    _, table, _ = summary(path, "--width", "100")
    assert "Findings" in table and "unanswered SYN" in table


def test_replay_marks_the_proving_segments(replay):
    code, out, _ = replay(RACE, "--width", "120")
    assert code == 0
    marked, frame = [], None
    for line in out.splitlines():
        cells = line.split()
        if len(cells) > 2 and cells[0].isdigit() and cells[1].replace(".", "").isdigit():
            frame = int(cells[0])       # a segment's row: frame, time, ...
        elif not line.strip():
            frame = None                # the ladder is over
        if frame is not None and "finding:keep-alive-race" in line:
            marked.append(frame)        # on the row or its wrapped explanation
    assert sorted(set(marked)) == [8, 9, 10]
    assert "Finding: keep-alive race" in out


def test_keepalive_race_live(live, tcptrace, tmp_path, tshark):
    save = tmp_path / "race.pcapng"
    code, out, err = tcptrace("close", "--mode", "keepalive-race", "--closer", "server",
                              "--width", "200", "--save", save)
    assert code == 0, err
    assert "Finding: keep-alive race" in out and "write again: EPIPE" in out
    [f] = findings(tcptrace, save)
    assert (f["kind"], f["side"]) == ("keep-alive-race", "server")
    witness(save, [f], tshark)


def test_recorded_in_a_namespace_of_its_own(live, tcptrace, tmp_path, tshark):
    """The nftables recordings, made again now: the SYNs dropped on input and the
    vanished peer; diagnose finds each, and no namespace is left behind."""
    require(None if shutil.which("nft") and shutil.which("ip") else "nft and ip are needed")
    done = subprocess.run([sys.executable, PROJECT_CAPTURES / "record_findings.py",
                           "unanswered-syn", "unacked-fin"], capture_output=True, text=True,
                          env={**os.environ, "RECORD_OUT": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    for kind in ("unanswered-syn", "unacked-fin"):
        path = tmp_path / f"finding-{kind}.pcapng"
        found = findings(tcptrace, path)
        assert [f["kind"] for f in found] == [kind]
        witness(path, found, tshark)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    assert "tcptrace-rec-" not in namespaces.stdout


def test_playback_tags_the_proof_too(replay):
    code, out, _ = replay(RACE, "--speed", "1000", "--width", "120")
    assert code == 0 and out.count("finding:keep-alive-race") == 3


def test_close_json_carries_the_findings(live, tcptrace):
    code, out, err = tcptrace("close", "--mode", "keepalive-race", "--closer", "server",
                              "--json")
    assert code == 0, err
    doc = json.loads(out)
    [f] = doc["findings"]
    frames = {p["frame"]: p for p in doc["connections"][0]["packets"]}
    assert (f["kind"], f["side"]) == ("keep-alive-race", "server")
    fin, data, rst = (frames[n] for n in f["frames"])
    assert "FIN" in fin["flags"] and fin["from"] == "server"
    assert data["len"] > 0 and data["from"] == "client"
    assert "RST" in rst["flags"] and rst["from"] == "server"
    # A graceful close has none.
    code, out, _ = tcptrace("close", "--mode", "end", "--json")
    assert code == 0 and json.loads(out)["findings"] == []
