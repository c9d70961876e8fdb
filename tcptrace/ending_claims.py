"""Claims about connections nobody closed on purpose (a killed process, a crashed host,
TIME-WAIT, keepalive), judged against the runs of `live.ending_modes` and `live.vanish`
as `claims` judges the others: from the segments, kernel events and the run's measured
`facts`, never from what we expect. They register into `claims`' tables when imported
(`claims` imports this module last).
"""

from __future__ import annotations

from collections.abc import Callable

from tcptrace import claims
from tcptrace.claims import (
    FALSE,
    PARTLY,
    TRUE,
    Claim,
    RunKey,
    _at,
    _call,
    _first,
    _label,
    _reason,
)
from tcptrace.live.vanish import POWER_OFF_EVENT, POWER_ON_EVENT
from tcptrace.model import RST

PY_KILL = RunKey("kill", "python", "client")
PY_KILL_UNREAD = RunKey("kill-unread", "python", "client")
PY_VANISH = RunKey("vanish", "python", "server")
PY_VANISH_RETURN = RunKey("vanish-return", "python", "server")
PY_TW_REUSE = RunKey("tw-reuse", "python", "client")
PY_TW_REUSE_SERVER = RunKey("tw-reuse", "python", "server")
PY_TW_REUSE_PORT = RunKey("tw-reuse-port", "python", "client")
PY_KEEPALIVE = RunKey("vanish-keepalive", "python", "server")

KILL_SENDS_RST = "Killing a process sends RST."
CRASH_SENDS_RST = "A crashed host sends RST."
TIME_WAIT_BLOCKS = "TIME-WAIT blocks the port for new connections."
KEEPALIVE_QUICK = "Keepalive detects a dead peer quickly (default settings)."
QUICK = 60.0    # "quickly": within a minute, generous for a request that hangs


def _kill_sends_rst(plain, unread) -> Claim:
    evidence = []
    for run, what in ((plain, "nothing unread"), (unread, "data unread in the kernel")):
        side = run.closer
        rst, fin = _first(run, side, "RST"), _first(run, side, "FIN")
        seg, kind = (rst, "an RST") if rst else (fin, "a FIN") if fin else (None, "nothing")
        evidence.append(f"{_label(run)}: the {side}'s process killed with SIGKILL, {what}: "
                        f"its kernel sent {kind}" + (f" at {_at(run, seg.t)}" if seg else "")
                        + (_reason(run, side) if rst else ""))
    plain_rst = _first(plain, plain.closer, "RST") is not None
    unread_rst = _first(unread, unread.closer, "RST") is not None
    verdict = TRUE if plain_rst else PARTLY if unread_rst else FALSE
    if verdict == PARTLY:
        evidence.append("the kernel closes a dead process's sockets as close() would: an RST "
                        "only when received data is left unread")
    return Claim(KILL_SENDS_RST, verdict, evidence)


def _sent_between(run, side: str, start: float, end: float) -> list:
    conn = run.connection
    return [s for s in conn.segments if conn.side_of(s) == side and start <= s.t < end]


def _event_time(run, side: str, starts: str) -> float | None:
    event = _call(run, side, starts)
    return event.t if event else None


def _crash_sends_rst(gone, back) -> Claim:
    evidence, spoke = [], False
    for run in (gone, back):
        off = _event_time(run, "server", POWER_OFF_EVENT)
        on = _event_time(run, "server", POWER_ON_EVENT)
        if off is None:
            evidence.append(f"{_label(run)}: the power-off was not recorded")
            continue
        end = float("inf") if on is None else on
        during = _sent_between(run, "server", off, end)
        spoke = spoke or bool(during)
        evidence.append(f"{_label(run)}: while the host was down the client sent "
                        f"{len(_sent_between(run, 'client', off, end))} segment(s); the "
                        f"server sent {len(during)}")
        rst = _first(run, "server", "RST")
        if on is not None and rst is not None:
            evidence.append(f"after it came back, without the connection: an RST from "
                            f"the server at {_at(run, rst.t)}, in reply to the client's "
                            f"next segment{_reason(run, 'server')}")
    if "error" in gone.facts:
        evidence.append(f"{_label(gone)}: the client learnt of it by "
                        f"{gone.facts['error']} after {gone.facts['error_after_s']} s")
    # The RST after the return is the rebooted kernel answering a segment, not the crash.
    return Claim(CRASH_SENDS_RST, TRUE if spoke else FALSE, evidence)


def _time_wait_blocks(*runs) -> Claim:
    evidence, blocked, reused = [], False, False
    for run in runs:
        facts = run.facts
        tw = run.verdict.final.get(run.closer)
        evidence.append(f"{_label(run)}: the {run.closer} ended the first connection in {tw}")
        plain = facts.get("bind_without_reuseaddr")
        if plain and plain != "ok":
            blocked = True
            evidence.append(f"bind() of the same client port without SO_REUSEADDR: {plain}")
        if facts.get("connect") == "ok":
            reused = True
            later = run.later[0].connection.segments if run.later else []
            evidence.append("a new connection on the very same 4-tuple was established "
                            f"during the TIME-WAIT ({len(later)} segments, its SYN at "
                            f"{_at(run, later[0].t) if later else '?'})")
        elif facts.get("connect"):
            blocked = True
            evidence.append(f"connect() on the TIME-WAIT 4-tuple failed: {facts['connect']}")
        for a in facts.get("attempts", ()):
            ok = a["result"] == "ok"
            reused, blocked = reused or ok, blocked or not ok
            evidence.append(f"connect() picking the only ephemeral port, in TIME-WAIT for "
                            f"{a['time_wait_age_ms']} ms, tcp_tw_reuse {a['tcp_tw_reuse']}: "
                            + ("a new connection" if ok else a["result"]))
    verdict = PARTLY if blocked and reused else TRUE if blocked else FALSE
    if verdict == PARTLY:
        evidence.append("it blocks a bind() without SO_REUSEADDR, and a connect() that "
                        "picks the port itself unless tcp_tw_reuse is on and the "
                        "TIME-WAIT is older than tcp_tw_reuse_delay; it does not block a "
                        "socket bound with SO_REUSEADDR when the TIME-WAIT socket had it "
                        "too, nor a SYN to a server's TIME-WAIT")
    return Claim(TIME_WAIT_BLOCKS, verdict, evidence)


def _keepalive_quick(run) -> Claim:
    f = run.facts
    if "tcp_keepalive_time" not in f:
        return Claim(KEEPALIVE_QUICK, PARTLY, [f"{_label(run)}: no keepalive timings recorded"])
    short = f["keepidle_s"] + f["keepcnt"] * f["keepintvl_s"]
    off = _event_time(run, "server", POWER_OFF_EVENT) or 0.0
    probes = [s for s in _sent_between(run, "client", off, float("inf"))
              if s.length == 0 and not s.flags & RST]
    evidence = [f"{_label(run)}: with TCP_KEEPIDLE {f['keepidle_s']} s, TCP_KEEPINTVL "
                f"{f['keepintvl_s']} s, TCP_KEEPCNT {f['keepcnt']}: {len(probes)} probe(s) on "
                f"the wire, then {f['error']} after {f['error_after_s']} s (idle + count x "
                f"interval = {short} s)",
                f"this machine's defaults: tcp_keepalive_time {f['tcp_keepalive_time']} s, "
                f"tcp_keepalive_intvl {f['tcp_keepalive_intvl']} s, tcp_keepalive_probes "
                f"{f['tcp_keepalive_probes']}: {f['default_detection_s']:,} s before a dead "
                "peer is noticed, and only on a socket that set SO_KEEPALIVE at all"]
    verdict = TRUE if f["default_detection_s"] <= QUICK else FALSE
    return Claim(KEEPALIVE_QUICK, verdict, evidence)


REQUIRED_RUNS: dict[str, tuple[RunKey, ...]] = {
    KILL_SENDS_RST: (PY_KILL, PY_KILL_UNREAD),
    CRASH_SENDS_RST: (PY_VANISH, PY_VANISH_RETURN),
    TIME_WAIT_BLOCKS: (PY_TW_REUSE, PY_TW_REUSE_SERVER, PY_TW_REUSE_PORT),
    KEEPALIVE_QUICK: (PY_KEEPALIVE,),
}
JUDGES: dict[str, Callable[..., Claim]] = {
    KILL_SENDS_RST: _kill_sends_rst,
    CRASH_SENDS_RST: _crash_sends_rst,
    TIME_WAIT_BLOCKS: _time_wait_blocks,
    KEEPALIVE_QUICK: _keepalive_quick,
}
claims.REQUIRED_RUNS.update(REQUIRED_RUNS)
claims._JUDGES.update(JUDGES)
