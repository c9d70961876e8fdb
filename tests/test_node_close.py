"""`--runtime node` close scenarios on real loopback sockets: what Node.js puts on the wire."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from tcptrace.engine import analyse_frames
from tcptrace.errors import TcptraceError
from tcptrace.live import node_close
from tcptrace.live.loopback import CLIENT_IP, SERVER_IP, Stage
from tcptrace.live.node_close import run_node_scenario
from tcptrace.model import FIN, RST, AppEvent, Connection, StateObservation, Verdict

from conftest import require

pytestmark = pytest.mark.live

BIG = 8 << 20             # far more than the kernel buffers hold with the reader paused
TRIES = range(3)          # each wire fact is checked more than once: no flakes
OTHER = {"client": "server", "server": "client"}


@dataclass
class Run:
    conn: Connection
    verdict: Verdict
    observations: list[StateObservation]
    events: list[AppEvent]
    bytes: dict


@pytest.fixture
def node(live):
    require(None if shutil.which("node") else "node (Node.js) is not installed")


def node_run(mode: str, closer: str = "client", pending: int = 0) -> Run:
    from tcptrace.live.capture import LoopbackCapture

    with Stage(0) as stage:
        with LoopbackCapture(ports={stage.server_port}) as cap:
            counts = run_node_scenario(stage, mode, closer, pending)
    conn, _, _, verdict = analyse_frames(cap.frames, (CLIENT_IP, stage.client_port),
                                         (SERVER_IP, stage.server_port))
    return Run(conn, verdict, stage.rec.observations, stage.rec.events, counts)


def closes(run: Run) -> list[tuple[str, str]]:
    """(sender, "FIN" or "RST") for every segment that carries either, in wire order;
    a retransmitted FIN (the same seq again: seen when it met a full receive buffer) once."""
    seen, out = set(), []
    for s in run.conn.segments:
        if s.has(FIN) or s.has(RST):
            key = (run.conn.side_of(s), "RST" if s.has(RST) else "FIN", s.seq + s.length)
            if key not in seen:
                seen.add(key)
                out.append(key[:2])
    return out


def event(run: Run, side: str, starts: str) -> AppEvent:
    return next(e for e in run.events if e.side == side and e.what.startswith(starts))


def state_after(run: Run, after: str) -> StateObservation:
    return next(o for o in run.observations if o.after == after)


@pytest.mark.parametrize("closer", ["client", "server"])
@pytest.mark.parametrize("attempt", TRIES)
def test_end_sends_a_fin_and_the_closer_ends_in_time_wait(node, closer, attempt):
    run = node_run("end", closer)
    peer = OTHER[closer]
    assert closes(run)[0] == (closer, "FIN")
    assert "RST" not in dict(closes(run)).values()
    after_end = state_after(run, f"{closer} socket.end()")
    assert (getattr(after_end, closer), getattr(after_end, peer)) == ("FIN-WAIT-2", "CLOSE-WAIT")
    last = run.observations[-1]
    assert getattr(last, closer) == "TIME-WAIT" and getattr(last, peer) == "CLOSED"
    # end() returns at once; the FIN leaves later; 'finish' follows the FIN.
    fin = next(s for s in run.conn.segments if s.has(FIN) and run.conn.side_of(s) == closer)
    assert event(run, closer, "socket.end()").t < fin.t < event(run, closer, "'finish'").t


@pytest.mark.parametrize("closer", ["client", "server"])
@pytest.mark.parametrize("attempt", TRIES)
def test_destroy_with_nothing_unread_sends_a_fin_not_an_rst(node, closer, attempt):
    run = node_run("destroy", closer)
    assert closes(run)[0] == (closer, "FIN")
    assert run.verdict.rst_from is None and run.verdict.close == "fin"
    after = state_after(run, f"{closer} socket.destroy()")
    assert getattr(after, closer) == "FIN-WAIT-2"   # the kernel still has the socket
    assert getattr(run.observations[-1], closer) == "TIME-WAIT"


def test_close_is_destroy_and_says_so(node):
    run = node_run("close")
    assert event(run, "client", "note: Node.js has no close()")
    assert closes(run)[0] == ("client", "FIN") and run.verdict.rst_from is None


@pytest.mark.parametrize("closer", ["client", "server"])
@pytest.mark.parametrize("attempt", TRIES)
def test_reset_and_destroy_sends_an_rst_and_nobody_waits(node, closer, attempt):
    run = node_run("reset", closer)
    assert closes(run) == [(closer, "RST")]
    assert all("TIME-WAIT" not in (o.client, o.server) for o in run.observations)
    assert event(run, OTHER[closer], "'error': ECONNRESET")


@pytest.mark.parametrize("closer", ["client", "server"])
@pytest.mark.parametrize("attempt", TRIES)
def test_destroy_with_unread_data_sends_an_rst(node, closer, attempt):
    run = node_run("unread", closer)
    unread = next(o for o in run.observations if "unread" in o.after)
    assert unread.details[closer]["recv_q"] > 0     # the bytes sat in the kernel
    assert closes(run) == [(closer, "RST")]
    assert event(run, OTHER[closer], "'error': ECONNRESET")


@pytest.mark.parametrize("attempt", TRIES)
def test_destroy_with_data_queued_delivers_only_what_the_kernel_had(node, attempt):
    run = node_run("destroy", pending=BIG)
    written, delivered = run.bytes["written"], run.bytes["delivered"]
    assert written == BIG and 0 < delivered < written
    assert closes(run) == [("client", "FIN"), ("server", "FIN")]
    # The FIN follows exactly the bytes delivered: the kernel sent all it had accepted.
    isn = run.conn.segments[0].seq
    fin = next(s for s in run.conn.segments if s.has(FIN) and run.conn.side_of(s) == "client")
    assert (fin.seq + fin.length - isn - 1) % 2**32 == delivered
    after = state_after(run, "client socket.destroy()")
    assert after.client == "FIN-WAIT-1" and after.details["client"]["send_q"] > 0


@pytest.mark.parametrize("attempt", TRIES)
def test_end_with_data_queued_delivers_everything(node, attempt):
    run = node_run("end", pending=BIG)
    assert run.bytes == {"written": BIG, "delivered": BIG}
    assert closes(run) == [("client", "FIN"), ("server", "FIN")]
    # Node was still holding data: the kernel had not been asked for a FIN yet.
    assert state_after(run, "client socket.end()").client == "ESTABLISHED"


def test_after_an_rst_queued_data_is_still_read_and_node_reports_end(node):
    run = node_run("reset", pending=200_000)
    assert closes(run) == [("client", "RST")]
    assert 0 < run.bytes["delivered"] < run.bytes["written"]
    assert event(run, "server", "'end' (EOF)")
    assert not any(e.what.startswith("'error'") for e in run.events if e.side == "server")


@pytest.mark.parametrize("closer", ["client", "server"])
def test_half_close_data_still_flows_to_the_closer(node, closer):
    run = node_run("half-close", closer)
    peer = OTHER[closer]
    fin = next(s for s in run.conn.segments if s.has(FIN))
    assert run.conn.side_of(fin) == closer
    late = [s for s in run.conn.segments
            if run.conn.side_of(s) == peer and s.length and s.t > fin.t]
    assert sum(s.length for s in late) == 3000
    assert len([e for e in run.events if e.side == closer and e.what.startswith("'data'")]) == 3
    assert getattr(run.observations[-1], closer) == "TIME-WAIT"


def test_simultaneous_both_sides_end(node):
    # Whether the FINs cross is up to the scheduler (live.run_close retries); each try
    # must still be a clean close with both calls on record.
    run = node_run("simultaneous")
    assert sorted(side for side, kind in closes(run) if kind == "FIN") == ["client", "server"]
    assert run.verdict.rst_from is None
    ends = [e.side for e in run.events if e.what.startswith("socket.end()")]
    assert sorted(ends) == ["client", "server"]
    assert {run.observations[-1].client, run.observations[-1].server} <= {"TIME-WAIT", "CLOSED"}


def test_missing_node_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(node_close.shutil, "which", lambda name: None)
    with Stage(0) as stage, pytest.raises(TcptraceError, match="node .Node.js. was not found"):
        run_node_scenario(stage, "end", "client", 0)


def test_a_silent_node_is_stopped(node, monkeypatch, tmp_path):
    script = tmp_path / "silent.js"
    script.write_text("setTimeout(() => {}, 60000);\n")
    monkeypatch.setattr(node_close, "script_path", lambda: str(script))
    monkeypatch.setattr(node_close, "SILENCE", 0.5)
    with Stage(0) as stage, pytest.raises(TcptraceError, match="sent nothing"):
        run_node_scenario(stage, "end", "client", 0)
