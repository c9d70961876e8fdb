"""A live close run: stage, capture, kernel trace, scenario, then analysis of what was seen.

This is the one place where the edges (sockets, capture, `ss`, tracefs) meet the pure
analysis.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from tcptrace.annotate import relative_views
from tcptrace.engine import analyse_frames
from tcptrace.errors import TcptraceError
from tcptrace.live.close_modes import MODES, SYMMETRIC, Mode, Roles, open_connection
from tcptrace.live.kernel_trace import RST_REASONS, KernelTrace
from tcptrace.live.loopback import CLIENT_IP, SERVER_IP, Stage
from tcptrace.live.node_close import NODE_CALLS, run_node_scenario
from tcptrace.live.ss import require_ss
from tcptrace.model import (
    AppEvent,
    Connection,
    KernelEvent,
    PacketView,
    StateObservation,
    TcpState,
    Transition,
    Verdict,
)


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
    transitions: list[Transition] = field(default_factory=list)
    kernel_events: list[KernelEvent] = field(default_factory=list)
    kernel_note: str = ""       # why kernel tracepoints were not used, if they were not
    tries: int = 1
    drops: int = 0              # frames the kernel dropped from the capture
    frames: list[tuple[float, builtins.bytes]] = field(repr=False, default_factory=list)

    @property
    def what_it_does(self) -> list[str]:
        """The header's lines: the closing calls of this runtime and their equivalent."""
        if self.runtime == "node":
            return [f"What it does (Node.js net): {NODE_CALLS[self.mode.name]}",
                    f"Syscall level, as the Python runtime does it: {self.mode.summary}"]
        return [f"What it does: {self.mode.summary}", f"Node.js equivalent: {self.mode.node}"]


def run_close(mode: str, *, port: int = 0, pending: int = 0, closer: str = "client",
              runtime: str = "python", kernel: bool = True) -> CloseRun:
    require_ss()  # before anything is opened: a run without ss shows nothing true
    scenario = MODES[mode]
    if mode in SYMMETRIC:
        closer = "both"
    for attempt in range(1, scenario.retries + 1):
        run = _run_once(scenario, port, pending, closer, runtime, kernel)
        run.tries = attempt
        if scenario.retries == 1 or run.verdict.simultaneous:
            return run
    return run  # the FINs never crossed: the caller says so


def _run_once(scenario: Mode, port: int, pending: int, closer: str, runtime: str,
              kernel: bool) -> CloseRun:
    from tcptrace.live.capture import LoopbackCapture  # imports scapy: only when capturing

    with Stage(port) as stage:
        ports = [stage.server_port]
        with LoopbackCapture(ports=set(ports)) as cap:
            with (KernelTrace(ports) if kernel else _NoTrace()) as trace:
                counts = _drive(stage, scenario, pending, closer, runtime)
        rec = stage.rec
    conn, steps, initial, verdict = analyse_frames(
        cap.frames, (CLIENT_IP, stage.client_port), (SERVER_IP, stage.server_port))
    transitions, kernel_events = trace.results((CLIENT_IP, stage.client_port),
                                               (SERVER_IP, stage.server_port))
    views = relative_views(conn, initial, steps)
    _explain_resets(views, kernel_events)
    # The kernel, not the packets, has the last word on where each socket ended up.
    if rec.observations:
        last = rec.observations[-1]
        verdict.final = {"client": last.client, "server": last.server}
        verdict.time_wait = _time_wait_side(verdict.final)
    return CloseRun(scenario, runtime, closer, pending, conn, views, verdict,
                    rec.observations, rec.events, counts, transitions, kernel_events,
                    trace.why, drops=cap.drops, frames=cap.frames)


def _drive(stage: Stage, scenario: Mode, pending: int, closer: str, runtime: str) -> dict:
    if runtime == "node":
        return run_node_scenario(stage, scenario.name, closer, pending)
    if runtime != "python":
        raise TcptraceError(f"unknown runtime {runtime!r}: use python or node")
    open_connection(stage)
    return scenario.run(Roles(stage, "client" if closer == "both" else closer), pending)


def _nearest(events: list[KernelEvent], side: str, t: float) -> KernelEvent | None:
    """The event of `side` closest in time to `t`, if any."""
    return min((e for e in events if e.side == side), key=lambda e: abs(e.t - t), default=None)


def _explain_resets(views: list[PacketView], kernel_events: list[KernelEvent]) -> None:
    """Add the kernel's reason to each RST its sender's kernel reported sending."""
    reasons = [e for e in kernel_events if e.kind == "send_reset"]
    for view in views:
        if "RST" not in view.flags or view.segment is None:
            continue
        match = _nearest(reasons, view.sender, view.segment.t)
        if match and match.reason:
            words = RST_REASONS.get(match.reason, "")
            view.note += f"; kernel reason {match.reason}" + (f" ({words})" if words else "")


def _time_wait_side(final: dict[str, str]) -> str | None:
    sides = [side for side in ("client", "server") if final[side] == TcpState.TIME_WAIT]
    return "both" if len(sides) == 2 else (sides[0] if sides else None)


class _NoTrace:
    why = "kernel tracepoints not requested"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def results(self, client, server):
        return [], []
