"""Kernel tracepoint parsing on trace text recorded from real loopback runs."""

import json
from pathlib import Path

from tcptrace.live.kernel_trace import parse_trace

DATA = Path(__file__).parent / "data" / "kernel"


def load(name):
    meta = json.loads((DATA / f"{name}.json").read_text())
    text = (DATA / f"{name}.trace").read_text()
    return parse_trace(text, tuple(meta["client"]), tuple(meta["server"]), meta["clock_offset"])


def path_of(transitions, side):
    seq = [t.old for t in transitions if t.side == side][:1]
    return seq + [t.new for t in transitions if t.side == side]


def test_graceful_close_shows_the_short_states():
    transitions, events = load("end")
    assert path_of(transitions, "client") == [
        "CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSED"]
    assert path_of(transitions, "server") == [
        "LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert events == []
    # The listener's own LISTEN -> CLOSE (dport 0) belongs to neither side.
    assert all(t.side in ("client", "server") for t in transitions)


def test_times_are_on_the_wall_clock_and_ordered():
    transitions, _ = load("end")
    meta = json.loads((DATA / "end.json").read_text())
    assert transitions[0].t > meta["clock_offset"] > 1e9
    assert [t.t for t in transitions] == sorted(t.t for t in transitions)


def test_linger_zero_reset_reason_is_tcp_state():
    transitions, events = load("reset")
    sent = [e for e in events if e.kind == "send_reset"]
    assert [(e.side, e.reason) for e in sent] == [("client", "TCP_STATE")]
    assert [e.side for e in events if e.kind == "receive_reset"] == ["server"]
    assert ("server", "ESTABLISHED", "CLOSED") in [(t.side, t.old, t.new) for t in transitions]


def test_close_with_unread_data_reset_reason_is_abort_on_close():
    _, events = load("unread")
    sent = [e for e in events if e.kind == "send_reset"]
    assert [(e.side, e.reason) for e in sent] == [("server", "TCP_ABORT_ON_CLOSE")]


def test_other_connections_are_ignored():
    transitions, events = parse_trace(
        (DATA / "end.trace").read_text(), ("127.0.0.9", 1), ("127.0.0.1", 2))
    assert transitions == [] and events == []
