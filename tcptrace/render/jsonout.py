"""The `tcptrace/1` JSON contract (documented in the README)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import IO, TYPE_CHECKING

from tcptrace.model import (
    AppEvent,
    Connection,
    KernelEvent,
    PacketView,
    StateObservation,
    Transition,
    Verdict,
)

if TYPE_CHECKING:
    from tcptrace.buffers import BuffersReport
    from tcptrace.claims import Claim

SCHEMA = "tcptrace/1"


def _r(t: float) -> float:
    return round(t, 6)


def packet_json(view: PacketView) -> dict:
    inferred = "inferred" in view.tags     # in no record of the capture; window unknown
    out = {"t": _r(view.t),
           "frame": view.segment.frame if view.segment and not inferred else None,
           "from": view.sender, "flags": view.flags, "seq": view.seq,
           "ack": view.ack, "len": view.length, "win": None if inferred else view.win,
           "note": view.note,
           "client_state": view.client_state, "server_state": view.server_state}
    if view.tags:
        out["tags"] = list(view.tags)
    if view.comments:
        out["comments"] = list(view.comments)
    return out


def verdict_json(verdict: Verdict) -> dict:
    return {"close": verdict.close, "first_closer": verdict.first_closer,
            "rst_from": verdict.rst_from, "simultaneous": verdict.simultaneous,
            "time_wait": verdict.time_wait, "final": dict(verdict.final),
            "conn_state": verdict.conn_state, "history": verdict.history,
            **({"one_direction": True} if verdict.one_direction else {})}


def connection_json(conn: Connection, views: list[PacketView], verdict: Verdict, *,
                    observations: Sequence[StateObservation] = (),
                    events: Sequence[AppEvent] = (), counts: dict | None = None,
                    transitions: Sequence[Transition] = (),
                    kernel_events: Sequence[KernelEvent] = ()) -> dict:
    t0 = conn.segments[0].t if conn.segments else 0.0
    out = {"client": conn.client, "server": conn.server,
           "packets": [packet_json(v) for v in views],
           "verdict": verdict_json(verdict)}
    if conn.vlan:
        out["vlan"] = list(conn.vlan)
    if conn.encap:
        out["encap"] = list(conn.encap)
    if conn.roles_guessed:
        out["roles_guessed"] = conn.roles_guessed
    if observations:
        out["states"] = [{"t": _r(o.t - t0), "after": o.after, "client": o.client,
                          "server": o.server, "source": o.source,
                          **({"ss": o.details} if o.details else {})}
                         for o in observations]
    if events:
        out["events"] = [{"t": _r(e.t - t0), "side": e.side, "what": e.what} for e in events]
    if transitions:
        out["transitions"] = [{"t": _r(k.t - t0), "side": k.side, "from": k.old, "to": k.new,
                               "source": k.source} for k in transitions]
    if kernel_events:
        out["kernel_events"] = [{"t": _r(k.t - t0), "side": k.side, "kind": k.kind,
                                 "reason": k.reason} for k in kernel_events]
    if counts is not None:
        out["bytes"] = counts
    return out


def close_json(run) -> dict:
    """The document for one `tcptrace close` run (a live.CloseRun)."""
    scenario = {"mode": run.mode.name, "runtime": run.runtime, "closer": run.closer,
                "pending": run.pending}
    if run.mode.retries > 1:
        scenario["tries"] = run.tries
    if run.kernel_note:
        scenario["kernel"] = run.kernel_note
    if run.drops:
        scenario["capture_drops"] = run.drops
    if run.ipv6:
        scenario["ipv6"] = True
    if run.where:
        scenario["where"] = run.where
    if run.findings:
        scenario["findings"] = list(run.findings)
    if run.facts:
        scenario["facts"] = dict(run.facts)
    return {"schema": SCHEMA, "command": "close", "scenario": scenario,
            "connections": [connection_json(run.connection, run.views, run.verdict,
                                            observations=run.observations,
                                            events=run.events, counts=run.bytes,
                                            transitions=run.transitions,
                                            kernel_events=run.kernel_events)]
            + [connection_json(c.connection, c.views, c.verdict,
                               observations=c.observations, events=c.events,
                               transitions=c.transitions, kernel_events=c.kernel_events)
               for c in run.later]}


def replay_json(path: str, shown: list[tuple[int, Connection, list[PacketView], Verdict]],
                warnings: list[str]) -> dict:
    """The document for `tcptrace replay --json`: `shown` is (stream index, connection,
    rows, verdict) for every connection, or for the one picked with --stream."""
    return {"schema": SCHEMA, "command": "replay", "file": path, "warnings": list(warnings),
            "connections": [{"stream": index, **connection_json(conn, views, verdict)}
                            for index, conn, views, verdict in shown]}


def replay_json_stream(out: IO[str], path: str,
                       shown: Iterable[tuple[int, Connection, list[PacketView], Verdict]],
                       warnings: Callable[[], list[str]]) -> None:
    """`replay_json`'s document written one connection at a time, as the engine hands
    them over (order: as each is done with), one connection per line, so a capture of
    any size streams out in flat memory. (Compact on purpose: json.dumps with an indent
    runs the pure-Python encoder, ten times slower, and its closures make a reference
    cycle per call that only the cyclic collector frees.) The reader's warnings are known
    only at the end: they come last. Nothing is written when there is no connection (the
    caller reports that)."""
    started = False
    for index, conn, views, verdict in shown:
        body = json.dumps({"stream": index, **connection_json(conn, views, verdict)})
        if not started:
            out.write(f'{{"schema": "{SCHEMA}", "command": "replay", '
                      f'"file": {json.dumps(path)}, "connections": [\n')
            started = True
        else:
            out.write(",\n")
        out.write(body)
    if started:
        out.write(f'\n], "warnings": {json.dumps(warnings())}}}\n')


def claims_json(claims: list[Claim]) -> dict:
    return {"schema": SCHEMA, "command": "claims",
            "claims": [{"claim": c.claim, "verdict": c.verdict, "evidence": list(c.evidence)}
                       for c in claims]}


def buffers_json(report: BuffersReport) -> dict:
    return {"schema": SCHEMA, "command": "buffers",
            "layers": [asdict(layer) for layer in report.layers],
            "sysctl": report.sysctl}
