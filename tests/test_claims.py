"""Claims judged on hand-built runs shaped like the measured ones, then with the facts
changed: a verdict must follow the data, not a script."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from tcptrace import claims, ending_claims
from tcptrace.claims import (
    BIG,
    DESTROY_DISCARDS,
    DESTROY_FREES,
    DESTROY_SENDS_RST,
    END_WAITS_FOR_ACK,
    FIRST_CLOSER_TIME_WAIT,
    NODE_DESTROY,
    NODE_DESTROY_BIG,
    NODE_END,
    NODE_END_BIG,
    NODE_RESET,
    NODE_UNREAD,
    PY_END_CLIENT,
    PY_END_SERVER,
    PY_RESET,
    PY_UNREAD,
    REQUIRED_RUNS,
    RunKey,
    judge,
    key_of,
    required_runs,
)
from tcptrace.engine import analyse_segments
from tcptrace.model import AppEvent, KernelEvent, StateObservation
from tcptrace.render.claims import render_claims
from tcptrace.render.jsonout import claims_json

from segments import C, S, connection, handshake, seg

DELIVERED = 3_919_467     # what a measured node destroy of 8 MiB delivered


def fake(key: RunKey, segments, states=(), events=(), delivered=None, kernel=()):
    """A run shaped like live.CloseRun. states: (t, after, client, server[, details])."""
    conn = connection(*segments)
    observations = [StateObservation(s[0], s[1], s[2], s[3], details=s[4] if len(s) > 4 else {})
                    for s in states]
    verdict = analyse_segments(conn)[2]
    if observations:     # as live.run_close does: ss has the last word
        verdict.final = {"client": observations[-1].client, "server": observations[-1].server}
    return SimpleNamespace(
        mode=SimpleNamespace(name=key.mode), runtime=key.runtime, closer=key.closer,
        pending=key.pending, connection=conn, views=[], verdict=verdict,
        observations=observations,
        events=[AppEvent(*e) for e in events],
        bytes={"written": key.pending,
               "delivered": key.pending if delivered is None else delivered},
        kernel_events=list(kernel), transitions=[])


def fin_close(first: str = "c", ack_delay: float = 0.040, start: float = 0.010):
    """The first closer's FIN, the ACK after `ack_delay`, the other's FIN, the last ACK."""
    a, b = (C, S) if first == "c" else (S, C)
    other = "s" if first == "c" else "c"
    return [*handshake(), seg(start, first, "FA", a + 1, b + 1),
            seg(start + ack_delay, other, "A", b + 1, a + 2),
            seg(start + 0.100, other, "FA", b + 1, a + 2),
            seg(start + 0.101, first, "A", a + 2, b + 2)]


def rst_close(t: float = 0.010):
    return [*handshake(), seg(t, "c", "RA", C + 1, S + 1)]


def big_close(delivered: int, last: str = "FPA"):
    """8 MiB queued, `delivered` bytes sent, the last segment carrying the FIN (or RST)."""
    tail = 1000
    return [*handshake(), seg(0.005, "c", "PA", C + 1, S + 1, length=delivered - tail),
            seg(0.030, "c", last, C + 1 + delivered - tail, S + 1, length=tail),
            seg(0.031, "s", "A", S + 1, C + 2 + delivered),
            seg(0.040, "s", "FA", S + 1, C + 2 + delivered),
            seg(0.041, "c", "A", C + 2 + delivered, S + 2)]


def measured() -> dict:
    """Every required run, as they came out on Linux 6.18 / Node 20."""
    done = (0.5, "server closed", "TIME-WAIT", "CLOSED")
    return {
        NODE_DESTROY: fake(NODE_DESTROY, fin_close(),
                           [(0.06, "client socket.destroy()", "FIN-WAIT-2", "CLOSE-WAIT"), done],
                           [(0.009, "client", "socket.destroy() returned after 40 µs"),
                            (0.011, "client", "'close' (hadError false)")]),
        NODE_DESTROY_BIG: fake(
            NODE_DESTROY_BIG, big_close(DELIVERED),
            [(0.004, "client wrote 8388608 bytes", "ESTABLISHED", "ESTABLISHED"),
             (0.010, "client socket.destroy()", "FIN-WAIT-1", "ESTABLISHED",
              {"client": {"recv_q": 0, "send_q": 3_886_727}}), done],
            [(0.001, "client", "socket.write(8388608 bytes) returned false after 5000 µs"),
             (0.006, "client", "socket.destroy() returned after 50 µs"),
             (0.007, "client", "'close' (hadError false)")],
            delivered=DELIVERED),
        NODE_END: fake(NODE_END, fin_close(),
                       [(0.06, "client socket.end()", "FIN-WAIT-2", "CLOSE-WAIT"), done],
                       [(0.005, "client", "socket.end() returned after 30 µs"),
                        (0.0105, "client", "'finish': Node's shutdown() is done")]),
        NODE_END_BIG: fake(NODE_END_BIG, big_close(BIG), [done]),
        NODE_UNREAD: fake(NODE_UNREAD, rst_close(),
                          [(0.02, "client socket.destroy()", "CLOSED", "CLOSED")],
                          [(0.009, "client", "socket.destroy() with 1000 bytes unread"),
                           (0.012, "server", "'error': ECONNRESET")],
                          kernel=[KernelEvent(0.010, "client", "send_reset",
                                              "TCP_ABORT_ON_CLOSE")]),
        NODE_RESET: fake(NODE_RESET, rst_close(),
                         [(0.02, "client socket.resetAndDestroy()", "CLOSED", "CLOSED")],
                         [(0.009, "client", "socket.resetAndDestroy()"),
                          (0.012, "server", "'error': ECONNRESET")],
                         kernel=[KernelEvent(0.010, "client", "send_reset", "TCP_STATE")]),
        PY_END_CLIENT: fake(PY_END_CLIENT, fin_close("c"),
                            [(0.5, "server close()", "TIME-WAIT", "CLOSED")]),
        PY_END_SERVER: fake(PY_END_SERVER, fin_close("s"),
                            [(0.5, "client close()", "CLOSED", "TIME-WAIT")]),
        PY_UNREAD: fake(PY_UNREAD, rst_close(),
                        [(0.02, "client close() with unread data", "CLOSED", "CLOSED")],
                        [(0.009, "client", "close() with 28 bytes unread"),
                         (0.012, "server", "read 0 bytes, then ECONNRESET")],
                        kernel=[KernelEvent(0.010, "client", "send_reset",
                                            "TCP_ABORT_ON_CLOSE")]),
        PY_RESET: fake(PY_RESET, rst_close(),
                       [(0.02, "client close() with SO_LINGER {on, 0}", "CLOSED", "CLOSED")],
                       [(0.009, "client", "setsockopt(SO_LINGER, {on, 0}); close()")],
                       kernel=[KernelEvent(0.010, "client", "send_reset", "TCP_STATE")]),
    }


def verdicts(runs) -> dict[str, str]:
    return {c.claim: c.verdict for c in judge(runs)}


def claim(runs, text):
    return next(c for c in judge(runs) if c.claim == text)


def test_every_required_run_is_listed_once():
    keys = required_runs()
    ending = {k for ks in ending_claims.REQUIRED_RUNS.values() for k in ks}  # their own file
    assert len(keys) == len(set(keys)) == len(measured()) + len(ending)
    assert set(keys) == {k for ks in REQUIRED_RUNS.values() for k in ks}
    assert all(key_of(run) == key for key, run in measured().items())


def test_the_measured_runs():
    assert verdicts(measured()) == {
        DESTROY_SENDS_RST: "partly",        # a FIN, but an RST when data sat unread
        END_WAITS_FOR_ACK: "partly",
        DESTROY_DISCARDS: "partly",
        DESTROY_FREES: "false",
        FIRST_CLOSER_TIME_WAIT: "partly",
        claims.RST_MEANS_CRASH: "false",
    }


def test_destroy_evidence_names_the_fin_and_the_rst_cases():
    evidence = claim(measured(), DESTROY_SENDS_RST).evidence
    assert "sent a FIN at +10.0 ms and no RST" in evidence[0]
    assert "TCP_ABORT_ON_CLOSE" in evidence[1] and "TCP_STATE" in evidence[2]


def test_destroy_that_sent_an_rst_makes_the_claim_true():
    runs = measured()
    runs[NODE_DESTROY] = fake(NODE_DESTROY, rst_close(), [(0.02, "x", "CLOSED", "CLOSED")])
    assert verdicts(runs)[DESTROY_SENDS_RST] == "true"


def test_end_evidence_orders_the_call_the_fin_finish_and_the_ack():
    evidence = claim(measured(), END_WAITS_FOR_ACK).evidence
    assert "returned at +5.0 ms, before the FIN even left" in evidence[1]
    assert "'finish' fired at +10.5 ms, before the server's ACK of the FIN at +50.0 ms" \
        in evidence[2]
    assert "FIN-WAIT-2" in evidence[3]


def test_end_that_waited_for_the_ack_would_be_true():
    runs = measured()
    runs[NODE_END] = fake(NODE_END, fin_close(ack_delay=0.0001),
                          [(0.06, "client socket.end()", "FIN-WAIT-2", "CLOSE-WAIT")],
                          [(0.005, "client", "socket.end()")])     # no duration known
    assert verdicts(runs)[END_WAITS_FOR_ACK] == "true"
    # 'finish' only says Node's shutdown() is done: even after the ACK it proves no wait.
    runs[NODE_END].events.append(AppEvent(0.0105, "client", "'finish': Node's shutdown() is done"))
    assert verdicts(runs)[END_WAITS_FOR_ACK] == "partly"


def test_end_without_a_fin_is_false():
    runs = measured()
    runs[NODE_END] = fake(NODE_END, rst_close(), [(0.02, "x", "CLOSED", "CLOSED")])
    assert verdicts(runs)[END_WAITS_FOR_ACK] == "false"


def test_discarded_bytes_follow_the_counts():
    evidence = claim(measured(), DESTROY_DISCARDS).evidence
    assert f"{DELIVERED:,} delivered, {BIG - DELIVERED:,} never arrived" in evidence[0]
    assert f"sent {DELIVERED:,} bytes, then a FIN" in evidence[1]
    assert "what was lost never left Node" in evidence[1]
    runs = measured()
    runs[NODE_DESTROY_BIG] = fake(NODE_DESTROY_BIG, big_close(BIG), delivered=BIG)
    assert verdicts(runs)[DESTROY_DISCARDS] == "false"
    runs[NODE_DESTROY_BIG] = fake(NODE_DESTROY_BIG, rst_close(), delivered=0)
    assert verdicts(runs)[DESTROY_DISCARDS] == "true"


def test_resources_kept_by_the_kernel_are_the_evidence():
    evidence = claim(measured(), DESTROY_FREES).evidence
    assert any("still had the client socket, in FIN-WAIT-1 (Recv-Q 0, Send-Q 3,886,727)" in e
               for e in evidence)
    assert any("went on sending: 1,000 new bytes after socket.destroy()" in e for e in evidence)
    assert any("TIME-WAIT, which Linux keeps 60 s" in e for e in evidence)
    gone = (0.02, "client socket.destroy()", "CLOSED", "CLOSED")
    runs = measured()
    for key in (NODE_DESTROY, NODE_DESTROY_BIG):
        runs[key] = fake(key, rst_close(), [gone],
                         [(0.009, "client", "socket.destroy()")], delivered=0)
    assert verdicts(runs)[DESTROY_FREES] == "true"


def test_time_wait_follows_the_first_closer_only_for_fin():
    evidence = claim(measured(), FIRST_CLOSER_TIME_WAIT).evidence
    assert "the server closed first (FIN at +10.0 ms)" in evidence[1]
    assert "server TIME-WAIT" in evidence[1]
    assert evidence[-1].startswith("only for a FIN close")
    runs = measured()
    runs[PY_END_SERVER] = fake(PY_END_SERVER, fin_close("s"),
                               [(0.5, "client close()", "TIME-WAIT", "CLOSED")])
    assert verdicts(runs)[FIRST_CLOSER_TIME_WAIT] == "false"


def test_rsts_from_healthy_programs_refute_the_crash_claim():
    evidence = claim(measured(), claims.RST_MEANS_CRASH).evidence
    assert len(evidence) == 2
    assert "right after its own call 'close() with 28 bytes unread'" in evidence[0]
    assert "TCP_ABORT_ON_CLOSE" in evidence[0] and "went on (1 more events)" in evidence[0]
    runs = measured()
    runs[PY_RESET] = fake(PY_RESET, rst_close(), [(0.02, "x", "CLOSED", "CLOSED")])
    assert verdicts(runs)[claims.RST_MEANS_CRASH] == "partly"   # an RST nobody asked for


def test_claims_with_missing_runs_are_left_out():
    runs = {k: v for k, v in measured().items() if k.runtime == "python"}
    assert [c.claim for c in judge(runs)] == [FIRST_CLOSER_TIME_WAIT, claims.RST_MEANS_CRASH]


def test_json_and_text():
    found = judge(measured())
    doc = claims_json(found)
    assert doc["schema"] == "tcptrace/1" and doc["command"] == "claims"
    assert doc["claims"][0] == {"claim": DESTROY_SENDS_RST, "verdict": "partly",
                                "evidence": found[0].evidence}
    console = Console(record=True, width=300, no_color=True)
    render_claims(found, console)
    text = console.export_text()
    assert "PARTLY  socket.destroy() sends RST (abrupt close)." in text
    assert "PARTLY  destroy() discards pending data." in text
    assert "SO_LINGER {on, 0}" in text       # markup-like text is printed, not parsed


def test_an_rst_after_no_closing_call_is_not_explained():
    runs = measured()
    for key in (claims.PY_UNREAD, claims.PY_RESET):
        runs[key].events[:] = [e for e in runs[key].events
                               if not claims._CLOSING_CALL.search(e.what)]
    assert verdicts(runs)[claims.RST_MEANS_CRASH] == "partly"
