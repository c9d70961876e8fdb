"""A live close run: stage, capture, kernel trace, scenario, then analysis of what was seen.

This is the one place where the edges (sockets, capture, `ss`, tracefs) meet the pure
analysis.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path

from tcptrace.annotate import relative_views
from tcptrace.engine import analyse_frames, decode_frames, group_segments
from tcptrace.errors import TcptraceError
from tcptrace.live.close_modes import MODES, SYMMETRIC, Mode, Roles, open_connection
from tcptrace.live.kernel_trace import RST_REASONS, KernelTrace
from tcptrace.live.loopback import CLIENT_IP, CLIENT_IP6, SERVER_IP, SERVER_IP6, Stage
from tcptrace.live.netns import NetNamespace, inside_our_namespace
from tcptrace.live.node_close import NODE_CALLS, NODE_MODES, run_node_scenario
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
class LaterConnection:
    """A new connection on the run's 4-tuple (TIME-WAIT reuse), with what was recorded
    from its start on."""

    connection: Connection
    views: list[PacketView]
    verdict: Verdict
    observations: list[StateObservation] = field(default_factory=list)
    events: list[AppEvent] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    kernel_events: list[KernelEvent] = field(default_factory=list)

    def take(self, observations, events, transitions, kernel_events, cut: float) -> None:
        self.observations = [o for o in observations if o.t >= cut]
        self.events = [e for e in events if e.t >= cut]
        self.transitions = [t for t in transitions if t.t >= cut]
        self.kernel_events = [k for k in kernel_events if k.t >= cut]
        if self.observations:
            last = self.observations[-1]
            self.verdict.final = {"client": last.client, "server": last.server}
            self.verdict.time_wait = _time_wait_side(self.verdict.final)


def split_reuse(frames: list[tuple[float, bytes]], cut: float | None
                ) -> tuple[list[tuple[float, bytes]], list[LaterConnection]]:
    """The frames of the run's first connection, and the later connections on the same
    4-tuple as the engine groups them (a SYN with a new ISN after the close)."""
    if cut is None:
        return frames, []
    groups = sorted(group_segments(decode_frames(frames)), key=lambda g: g.first)
    if len(groups) < 2:
        return frames, []
    later = [LaterConnection(g.conn, relative_views(g.conn, g.initial, g.steps or []),
                             g.verdict) for g in groups[1:]]
    return frames[:groups[1].conn.segments[0].frame - 1], later


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
    ipv6: bool = False
    # Facts of the run that are no segment, state or event: timings, errors, sysctls.
    findings: list[str] = field(default_factory=list)
    later: list[LaterConnection] = field(default_factory=list)   # same 4-tuple, reused
    facts: dict = field(default_factory=dict)   # the findings' numbers, for claims and JSON
    frames: list[tuple[float, builtins.bytes]] = field(repr=False, default_factory=list)

    @property
    def where(self) -> str:
        """Where the run happened, when not on the host's own loopback."""
        if self.mode.where:
            return self.mode.where
        if self.ipv6:
            return "IPv6 loopback in a network namespace of the run's own (::2 added to its lo)"
        return ""

    @property
    def all_views(self) -> list[PacketView]:
        """Every ladder row of the capture: this connection's, then any later one's."""
        return [*self.views, *(v for c in self.later for v in c.views)]

    @property
    def what_it_does(self) -> list[str]:
        """The header's lines: the closing calls of this runtime and their equivalent."""
        if self.runtime == "node":
            return [f"What it does (Node.js net): "
                    f"{NODE_CALLS.get(self.mode.name, self.mode.node)}",
                    f"Syscall level, as the Python runtime does it: {self.mode.summary}"]
        return [f"What it does: {self.mode.summary}", f"Node.js equivalent: {self.mode.node}"]


def run_close(mode: str, *, port: int = 0, pending: int = 0, closer: str = "client",
              runtime: str = "python", kernel: bool = True, ipv6: bool = False) -> CloseRun:
    require_ss()  # before anything is opened: a run without ss shows nothing true
    scenario = MODES[mode]
    if mode in SYMMETRIC:
        closer = "both"
    closer = scenario.closer or closer
    for attempt in range(1, scenario.retries + 1):
        if scenario.stage is not None:
            run = scenario.stage(scenario, port, pending, closer, runtime, kernel, ipv6)
        elif ipv6:
            run = run_in_private_namespace(scenario, port, pending, closer, runtime, kernel)
        else:
            run = _run_once(scenario, port, pending, closer, runtime, kernel)
        run.tries = attempt
        if scenario.retries == 1 or run.verdict.simultaneous:
            return run
    return run  # the FINs never crossed: the caller says so


def run_in_private_namespace(scenario: Mode, port: int, pending: int, closer: str,
                             runtime: str, kernel: bool, ipv6: bool = True,
                             sysctls: dict[str, str] | None = None,
                             stage_class: type[Stage] = Stage) -> CloseRun:
    """The run on the `lo` of a namespace of its own, with `sysctls` set there: for
    --ipv6, whose client gets ::2 (the host's `lo` has ::1 alone, and is left as it is),
    and for modes that change a sysctl (never the host's)."""
    with NetNamespace() as ns:
        if ipv6:
            ns.run("ip", "-6", "addr", "add", f"{CLIENT_IP6}/128", "dev", "lo")
        with ns.entered():
            for name, value in (sysctls or {}).items():
                assert inside_our_namespace(), "a sysctl of the run's own namespace only"
                Path("/proc/sys", name.replace(".", "/")).write_text(value + "\n")
            return _run_once(scenario, port, pending, closer, runtime, kernel,
                             addresses=(SERVER_IP6, CLIENT_IP6) if ipv6
                             else (SERVER_IP, CLIENT_IP), stage_class=stage_class)


def _run_once(scenario: Mode, port: int, pending: int, closer: str, runtime: str,
              kernel: bool, addresses: tuple[str, str] = (SERVER_IP, CLIENT_IP),
              stage_class: type[Stage] = Stage) -> CloseRun:
    from tcptrace.live.capture import LoopbackCapture  # imports scapy: only when capturing

    with stage_class(port, *addresses) as stage:
        ports = [stage.server_port]
        with LoopbackCapture(ports=set(ports)) as cap:
            with (KernelTrace(ports) if kernel else _NoTrace()) as trace:
                counts = _drive(stage, scenario, pending, closer, runtime)
    return finish_run(scenario, runtime, closer, pending, stage, cap, trace, counts)


def finish_run(scenario: Mode, runtime: str, closer: str, pending: int, stage, cap, trace,
               counts: dict) -> CloseRun:
    """What was recorded (the stage's recorder, the capture, the kernel trace, what the
    scenario returned) analysed by the engine into one run."""
    rec = stage.rec
    client, server = (stage.client_ip, stage.client_port), (stage.server_ip, stage.server_port)
    findings, cut = counts.pop("findings", []), counts.pop("second_from", None)
    facts = counts.pop("facts", {})
    frames, later = split_reuse(cap.frames, cut)
    conn, steps, initial, verdict = analyse_frames(frames, client, server)
    transitions, kernel_events = trace.results(client, server)
    views = relative_views(conn, initial, steps)
    _explain_resets(views, kernel_events)
    observations, events = rec.observations, rec.events
    if later:   # what happened from the second connection on goes with its ladder
        later[0].take(observations, events, transitions, kernel_events, cut)
        observations, events, transitions, kernel_events = (
            [x for x in xs if x.t < cut]
            for xs in (observations, events, transitions, kernel_events))
    # The kernel, not the packets, has the last word on where each socket ended up.
    if observations:
        last = observations[-1]
        verdict.final = {"client": last.client, "server": last.server}
        verdict.time_wait = _time_wait_side(verdict.final)
    return CloseRun(scenario, runtime, closer, pending, conn, views, verdict,
                    observations, events, counts, transitions, kernel_events,
                    trace.why, drops=cap.drops, frames=cap.frames,
                    ipv6=":" in stage.server_ip, findings=findings, later=later, facts=facts)


def _drive(stage: Stage, scenario: Mode, pending: int, closer: str, runtime: str) -> dict:
    if runtime == "node" and scenario.node_too:
        open_connection(stage)
        roles = Roles(stage, closer)
        roles.runtime = "node"
        return scenario.run(roles, pending)
    if runtime == "node" and scenario.name not in NODE_MODES:
        with_node = [*NODE_MODES, *(m.name for m in MODES.values() if m.node_too)]
        raise TcptraceError(f"--runtime node has no mode {scenario.name!r} (Node.js: "
                            f"{scenario.node}); with node: {', '.join(with_node)}")
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
