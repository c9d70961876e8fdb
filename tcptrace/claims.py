"""Popular claims about closing a TCP connection, judged against real runs.

Pure: a verdict comes from the runs' own data (segments on the wire, `ss` states,
application events, byte counts, kernel RST reasons), never from what we expect, so a
different kernel or Node.js that behaves differently gets a different verdict. A run is
anything shaped like `live.CloseRun` (whose `verdict.final` is the last `ss` snapshot);
each claim names the runs it needs in REQUIRED_RUNS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from tcptrace.annotate import describe_recv_q
from tcptrace.live.kernel_trace import RST_REASONS
from tcptrace.model import ACK, FIN, RST, SYN, Segment, TcpState

if TYPE_CHECKING:
    from tcptrace.live.close_run import CloseRun

BIG = 8 << 20   # bytes queued to a paused reader: far more than the kernel buffers hold
TRUE, FALSE, PARTLY = "true", "false", "partly"


class RunKey(NamedTuple):
    mode: str
    runtime: str        # python | node
    closer: str         # client | server
    pending: int = 0    # bytes the closer queued, unread by the peer, before closing

    def label(self) -> str:
        queued = f", {self.pending:,} bytes queued" if self.pending else ""
        return f"{self.runtime} {self.mode} (closer {self.closer}{queued})"


def key_of(run) -> RunKey:
    return RunKey(run.mode.name, run.runtime, run.closer, run.pending)


NODE_DESTROY = RunKey("destroy", "node", "client")
NODE_DESTROY_BIG = RunKey("destroy", "node", "client", BIG)
NODE_END = RunKey("end", "node", "client")
NODE_END_BIG = RunKey("end", "node", "client", BIG)
NODE_UNREAD = RunKey("unread", "node", "client")
NODE_RESET = RunKey("reset", "node", "client")
PY_END_CLIENT = RunKey("end", "python", "client")
PY_END_SERVER = RunKey("end", "python", "server")
PY_UNREAD = RunKey("unread", "python", "client")
PY_RESET = RunKey("reset", "python", "client")

DESTROY_SENDS_RST = "socket.destroy() sends RST (abrupt close)."
END_WAITS_FOR_ACK = "socket.end() sends FIN, waits for acknowledgment and enters FIN_WAIT."
DESTROY_DISCARDS = "destroy() discards pending data."
DESTROY_FREES = "destroy() frees resources immediately"
FIRST_CLOSER_TIME_WAIT = "The side that closes first ends in TIME_WAIT."
RST_MEANS_CRASH = "An RST means the peer crashed."

REQUIRED_RUNS: dict[str, tuple[RunKey, ...]] = {
    DESTROY_SENDS_RST: (NODE_DESTROY, NODE_UNREAD, NODE_RESET),
    END_WAITS_FOR_ACK: (NODE_END,),
    DESTROY_DISCARDS: (NODE_DESTROY_BIG, NODE_END_BIG),
    DESTROY_FREES: (NODE_DESTROY, NODE_DESTROY_BIG),
    FIRST_CLOSER_TIME_WAIT: (PY_END_CLIENT, PY_END_SERVER, PY_RESET),
    RST_MEANS_CRASH: (PY_UNREAD, PY_RESET),
}


def required_runs() -> list[RunKey]:
    """Every run the claims need, each once, in a stable order."""
    return list(dict.fromkeys(key for keys in REQUIRED_RUNS.values() for key in keys))


@dataclass
class Claim:
    claim: str
    verdict: str            # true | false | partly
    evidence: list[str]


def judge(runs: Mapping[RunKey, CloseRun]) -> list[Claim]:
    """Judge each claim whose runs are all present; the others are left out (e.g. the
    Node.js ones when node is not installed)."""
    return [_JUDGES[text](*(runs[k] for k in keys))
            for text, keys in REQUIRED_RUNS.items() if all(k in runs for k in keys)]


# --- facts from one run ----------------------------------------------------------------

def _label(run) -> str:
    return key_of(run).label()


def _at(run, t: float) -> str:
    """A time as the ladder shows it: since the connection's first segment."""
    segs = run.connection.segments
    return f"+{(t - segs[0].t) * 1000:.1f} ms" if segs else f"{t:.3f}"


def _closes(run: CloseRun) -> list[tuple[str, str, Segment]]:
    """(sender, "FIN" or "RST", segment) for each segment carrying either, in wire order."""
    conn = run.connection
    return [(conn.side_of(s), "RST" if s.flags & RST else "FIN", s)
            for s in conn.segments if s.flags & (FIN | RST)]


def _first(run: CloseRun, side: str, kind: str) -> Segment | None:
    return next((s for who, k, s in _closes(run) if who == side and k == kind), None)


def _call(run, side: str, starts: str):
    return next((e for e in run.events if e.side == side and e.what.startswith(starts)), None)


def _state_after(run, t: float):
    """The first `ss` snapshot taken after `t`."""
    return next((o for o in run.observations if o.t >= t), None)


def _ss(obs, side: str) -> str:
    state = getattr(obs, side)
    queues = obs.details.get(side, {})
    if queues.get("send_q") or queues.get("recv_q"):
        state += f" ({describe_recv_q(queues)}, Send-Q {queues.get('send_q', 0):,})"
    return state


def _ack_of(run, seg):
    """The other side's first segment acknowledging all of `seg`."""
    conn, end = run.connection, (seg.seq + seg.seq_space) & 0xFFFFFFFF
    sender = conn.side_of(seg)
    return next((s for s in conn.segments if s.t >= seg.t and conn.side_of(s) != sender
                 and s.flags & ACK and s.ack == end), None)


def _sent_through(run, seg) -> int:
    """Data bytes its sender had sent up to the end of `seg`'s payload."""
    conn, sender = run.connection, run.connection.side_of(seg)
    syn = next(s for s in conn.segments if s.flags & SYN and conn.side_of(s) == sender)
    return (seg.seq + seg.length - syn.seq - 1) & 0xFFFFFFFF


def _reason(run, side: str) -> str:
    reasons = [e.reason for e in run.kernel_events if e.kind == "send_reset"
               and e.side == side and e.reason]
    if not reasons:
        return ""
    words = RST_REASONS.get(reasons[0])
    return f"; kernel reason {reasons[0]}" + (f" ({words})" if words else "")


_TOOK = re.compile(r"returned(?: \w+)? after (\d+) µs")


def _returned_at(event) -> float | None:
    """When a Node call returned, from the duration close.js writes into the event."""
    m = _TOOK.search(event.what)
    return event.t + int(m.group(1)) / 1e6 if m else None


def _other(side: str) -> str:
    return "server" if side == "client" else "client"


# --- the claims ----------------------------------------------------------------------

def _destroy_sends_rst(plain, unread, reset) -> Claim:
    closer = plain.closer
    evidence = []
    rst, fin = _first(plain, closer, "RST"), _first(plain, closer, "FIN")
    if rst:
        evidence.append(f"{_label(plain)}: the {closer} sent an RST at {_at(plain, rst.t)}"
                        f"{_reason(plain, closer)}")
    elif fin:
        evidence.append(f"{_label(plain)}: socket.destroy() with nothing unread: the {closer} "
                        f"sent a FIN at {_at(plain, fin.t)} and no RST; the {closer} ended in "
                        f"{plain.verdict.final[closer]}")
    else:
        evidence.append(f"{_label(plain)}: the {closer} sent neither a FIN nor an RST")
    for run, why in ((unread, "socket.destroy() with unread data in the kernel"),
                     (reset, "socket.resetAndDestroy()")):
        side = run.closer
        seg = _first(run, side, "RST")
        evidence.append(f"{_label(run)}: {why}: " + (
            f"RST from the {side} at {_at(run, seg.t)}{_reason(run, side)}" if seg
            else f"no RST from the {side}"))
    # An RST from destroy() only when data sat unread in the kernel: partly.
    unread_rst = _first(unread, unread.closer, "RST") is not None
    verdict = TRUE if rst else PARTLY if unread_rst else FALSE
    return Claim(DESTROY_SENDS_RST, verdict, evidence)


def _end_waits_for_ack(run) -> Claim:
    closer, peer = run.closer, _other(run.closer)
    fin = _first(run, closer, "FIN")
    if fin is None:
        return Claim(END_WAITS_FOR_ACK, FALSE, [f"{_label(run)}: the {closer} sent no FIN"])
    evidence = [f"{_label(run)}: the {closer} sent a FIN at {_at(run, fin.t)}"]
    call, finish, ack = _call(run, closer, "socket.end()"), _call(run, closer, "'finish'"), \
        _ack_of(run, fin)
    waited = True
    if call and (returned := _returned_at(call)) is not None:
        early = returned < fin.t
        evidence.append(f"socket.end() was called at {_at(run, call.t)} and returned at "
                        f"{_at(run, returned)}, " + ("before the FIN even left" if early
                                                     else "after the FIN left"))
        waited = waited and not early
    if finish and ack:
        before = finish.t < ack.t
        evidence.append(f"'finish' fired at {_at(run, finish.t)}, "
                        f"{'before' if before else 'after'} the {peer}'s ACK of the FIN at "
                        f"{_at(run, ack.t)}" + ("" if before else " (a race on loopback)"))
        # 'finish' means Node's shutdown() is done, never that the FIN was ACKed: even
        # when the ACK wins the race, nothing waited for it.
        waited = False
    states = [o for o in run.observations if o.t >= fin.t
              and getattr(o, closer) in (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2)]
    for obs in states[:1]:
        evidence.append(f"ss after {obs.after!r}: {closer} {_ss(obs, closer)}, "
                        f"{peer} {_ss(obs, peer)}")
    if not states:
        verdict = PARTLY
        evidence.append(f"ss never showed the {closer} in FIN-WAIT-1 or FIN-WAIT-2")
    else:
        verdict = TRUE if waited else PARTLY
    return Claim(END_WAITS_FOR_ACK, verdict, evidence)


def _destroy_discards(destroy, end) -> Claim:
    written, delivered = destroy.bytes["written"], destroy.bytes["delivered"]
    closer = destroy.closer
    evidence = [f"{_label(destroy)}: {written:,} bytes written to a paused reader, "
                f"{delivered:,} delivered, {written - delivered:,} never arrived"]
    last = _first(destroy, closer, "FIN") or _first(destroy, closer, "RST")
    if last is not None:
        sent = _sent_through(destroy, last)
        evidence.append(f"the {closer}'s kernel sent {sent:,} bytes, then "
                        f"{'a FIN' if last.flags & FIN else 'an RST'} at {_at(destroy, last.t)}"
                        + (": all it had accepted reached the reader; what was lost never "
                           "left Node" if sent == delivered else ""))
    evidence.append(f"{_label(end)}: {end.bytes['delivered']:,} of {end.bytes['written']:,} "
                    "bytes delivered")
    verdict = TRUE if delivered == 0 else FALSE if delivered >= written else PARTLY
    return Claim(DESTROY_DISCARDS, verdict, evidence)


def _destroy_frees(*runs) -> Claim:
    evidence, kept = [], False
    for run in runs:
        closer, call = run.closer, _call(run, run.closer, "socket.destroy()")
        if call is None:
            continue
        closed = _call(run, closer, "'close'")
        if closed:
            evidence.append(f"{_label(run)}: Node's 'close' fired at {_at(run, closed.t)}, "
                            f"{(closed.t - call.t) * 1000:.1f} ms after socket.destroy()")
        obs = _state_after(run, call.t)
        if obs and getattr(obs, closer) != TcpState.CLOSED:
            kept = True
            evidence.append(f"ss after socket.destroy(): the kernel still had the {closer} "
                            f"socket, in {_ss(obs, closer)}")
        data = [s for s in run.connection.segments
                if s.length and run.connection.side_of(s) == closer]
        late = [s for s in data if s.t > call.t]
        if late:
            kept = True
            # New bytes only: retransmissions after the call carry nothing new.
            sent = max(_sent_through(run, s) for s in late) - max(
                (_sent_through(run, s) for s in data if s.t <= call.t), default=0)
            evidence.append(f"the {closer}'s kernel went on sending: {sent:,} new bytes "
                            f"after socket.destroy(), the last at {_at(run, late[-1].t)}")
        if run.verdict.final[closer] == TcpState.TIME_WAIT:
            kept = True
            evidence.append(f"the {closer} socket ended in TIME-WAIT, which Linux keeps 60 s")
    return Claim(DESTROY_FREES, FALSE if kept else TRUE, evidence)


def _first_closer_time_wait(*runs) -> Claim:
    evidence, confirmed, refuted, rst_exception = [], 0, 0, False
    for run in runs:
        first = run.verdict.first_closer
        if first is None:
            continue
        kind, seg = next((k, s) for who, k, s in _closes(run) if who == first)
        ends = run.verdict.final
        evidence.append(f"{_label(run)}: the {first} closed first ({kind} at {_at(run, seg.t)});"
                        f" at the end: client {ends['client']}, server {ends['server']}")
        final = ends[first]
        if kind == "RST":
            rst_exception = rst_exception or final != TcpState.TIME_WAIT
        elif final == TcpState.TIME_WAIT:
            confirmed += 1
        else:
            refuted += 1
    if rst_exception:
        evidence.append("only for a FIN close: the side that closed with an RST did not "
                        "enter TIME-WAIT")
    verdict = FALSE if refuted or not confirmed else PARTLY if rst_exception else TRUE
    return Claim(FIRST_CLOSER_TIME_WAIT, verdict, evidence)


# The calls that close a socket; only one of these explains an RST its sender made.
_CLOSING_CALL = re.compile(r"close\(|shutdown\(|destroy\(|resetAndDestroy|SO_LINGER")


def _rst_means_crash(*runs) -> Claim:
    evidence, explained, unexplained = [], 0, 0
    for run in runs:
        for side, kind, seg in _closes(run):
            if kind != "RST":
                continue
            calls = [e for e in run.events if e.side == side and e.t <= seg.t
                     and _CLOSING_CALL.search(e.what)]
            later = [e for e in run.events if e.t > seg.t]
            if calls:
                explained += 1
                evidence.append(f"{_label(run)}: RST from the {side} at {_at(run, seg.t)}, "
                                f"right after its own call {calls[-1].what!r}"
                                f"{_reason(run, side)}" + (
                                    f"; the program went on ({len(later)} more events)"
                                    if later else ""))
            else:
                unexplained += 1
                evidence.append(f"{_label(run)}: RST from the {side} at {_at(run, seg.t)} "
                                "with no call of its own before it")
            break
    if not explained and not unexplained:
        evidence.append("no RST was seen in these runs")
    verdict = FALSE if explained and not unexplained else PARTLY
    return Claim(RST_MEANS_CRASH, verdict, evidence)


_JUDGES: dict[str, Callable[..., Claim]] = {
    DESTROY_SENDS_RST: _destroy_sends_rst,
    END_WAITS_FOR_ACK: _end_waits_for_ack,
    DESTROY_DISCARDS: _destroy_discards,
    DESTROY_FREES: _destroy_frees,
    FIRST_CLOSER_TIME_WAIT: _first_closer_time_wait,
    RST_MEANS_CRASH: _rst_means_crash,
}


# Claims kept in modules of their own register themselves into the tables above.
from tcptrace import ending_claims  # noqa: E402, F401
