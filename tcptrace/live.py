"""A live close run: stage, capture, scenario, then analysis of what was captured.

This is the one place where the edges (sockets, capture, `ss`) meet the pure analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcptrace.annotate import annotate
from tcptrace.decode import decode_segment
from tcptrace.model import AppEvent, Connection, PacketView, StateObservation, Verdict
from tcptrace.scenarios import MODES, Mode
from tcptrace.stage import CLIENT_IP, SERVER_IP, Stage
from tcptrace.verdict import classify

LINKTYPE_ETHERNET = 1  # what an AF_PACKET socket on lo delivers


@dataclass
class CloseRun:
    mode: Mode
    runtime: str
    closer: str
    pending: int
    connection: Connection
    views: list[PacketView]
    verdict: Verdict
    observations: list[StateObservation]
    events: list[AppEvent]
    bytes: dict
    frames: list[tuple[float, bytes]] = field(repr=False, default_factory=list)


def run_close(mode: str, *, port: int = 0, pending: int = 0) -> CloseRun:
    from tcptrace.capture import LoopbackCapture  # imports scapy: only when capturing

    scenario = MODES[mode]
    with Stage(port) as stage:
        with LoopbackCapture(ports={stage.server_port}) as cap:
            counts = scenario.run(stage, pending)
        frames = cap.frames
        rec = stage.rec
        conn = Connection(CLIENT_IP, stage.client_port, SERVER_IP, stage.server_port)
    for index, (ts, data) in enumerate(frames, start=1):
        seg = decode_segment(LINKTYPE_ETHERNET, data, len(data), ts, index=index)
        if seg is not None:
            conn.segments.append(seg)
    views = annotate(conn)
    verdict = classify(conn, views)
    # The kernel, not the packets, has the last word on where each socket ended up.
    if rec.observations:
        last = rec.observations[-1]
        verdict.final = {"client": last.client, "server": last.server}
        verdict.time_wait = _time_wait_side(verdict.final)
    return CloseRun(scenario, "python", "client", pending, conn, views, verdict,
                    rec.observations, rec.events, counts, frames)


def _time_wait_side(final: dict[str, str]) -> str | None:
    sides = [side for side in ("client", "server") if final[side] == "TIME-WAIT"]
    return "both" if len(sides) == 2 else (sides[0] if sides else None)
