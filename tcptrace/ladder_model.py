"""A ladder row as plain data: what the terminal ladder, the SVG ladder and the HTML page
all draw, so the three say the same thing in the same words.

A ladder merges, on the packets' clock, four kinds of facts: segments (the engine's
`PacketView`s, with both states after each one), `ss` snapshots, the kernel's own
transitions and RST events, and the application's calls. `timeline` puts them in one
list of `LadderRow`s; renderers only lay them out and colour them. Nothing here knows
about a terminal, a page or an image, and nothing here decides a TCP fact: states,
tags and notes come from the engine and `annotate.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tcptrace.annotate import describe_recv_q
from tcptrace.model import (
    AppEvent,
    KernelEvent,
    PacketView,
    StateObservation,
    TcpState,
    Transition,
)

# Row kinds, in the order rows of the same instant are listed.
APP, PACKET, SS, KERNEL = "app", "packet", "ss", "kernel"
_ORDER = {APP: 0, PACKET: 1, SS: 2, KERNEL: 3}


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One row. `client`/`server`: the state written in that side's column ("" for none:
    a kernel transition names one side only, an application call neither). `note`: why
    the segment was sent, or what the row reports. `side`: whose transition, event or
    call ("" for segments and snapshots). `label`: where a snapshot came from (`ss`)."""

    t: float                    # seconds since the connection's first segment
    kind: str                   # APP, PACKET, SS or KERNEL
    client: str
    server: str
    note: str
    view: PacketView | None = None
    side: str = ""
    label: str = ""

    @property
    def frame(self) -> int | None:
        """The segment's number in the capture (1-based), when it has one."""
        seg = self.view.segment if self.view else None
        return seg.frame if seg and seg.frame else None


def snapshot_detail(obs: StateObservation) -> str:
    """What `ss` said about each socket beyond its state: queues and timers."""
    parts = []
    for side in ("client", "server"):
        d = obs.details.get(side)
        if not d:
            continue
        bits = []
        if d.get("recv_q"):
            bits.append(describe_recv_q(d))
        if d.get("send_q"):
            bits.append(f"Send-Q {d['send_q']}")
        if "timer" in d:
            tm = d["timer"]
            bits.append(f"timer:({tm['name']},{tm['expires']},{tm['retrans']})")
        if bits:
            parts.append(f"{side} " + " ".join(bits))
    return "; ".join(parts)


def _transition(t: float, item: Transition, final: dict[str, str]) -> LadderRow:
    """The kernel's words, with the one place where they need a gloss: the full socket
    goes FIN-WAIT-2 (or CLOSING) -> CLOSE when the TIME-WAIT mini-socket takes over."""
    note = f"{item.side}: {item.old} → {item.new} (sock:inet_sock_set_state)"
    state = item.new
    if item.old == TcpState.LISTEN:
        note += "; the accepted socket is born from the request socket when the ACK arrives"
    if item.new == TcpState.CLOSED \
            and item.old in (TcpState.FIN_WAIT_2, TcpState.CLOSING, TcpState.FIN_WAIT_1) \
            and final.get(item.side) == TcpState.TIME_WAIT:
        # An orphaned socket is handed over on the ACK of its FIN (ss then shows
        # FIN-WAIT-2 with a timewait timer), a socket still open on the peer's FIN.
        note += ("; a timewait mini-socket takes over, which only ss shows (as TIME-WAIT, "
                 "or FIN-WAIT-2 while an orphaned socket waits for the peer's FIN)")
        state = "timewait sock"
    client, server = (state, "") if item.side == "client" else ("", state)
    return LadderRow(t, KERNEL, client, server, note, side=item.side)


def _other(t: float, item: StateObservation | AppEvent | Transition | KernelEvent,
           final: dict[str, str]) -> LadderRow:
    if isinstance(item, StateObservation):
        detail = snapshot_detail(item)
        note = f"kernel states after {item.after}" + (f" ({detail})" if detail else "")
        return LadderRow(t, SS, item.client, item.server, note, label=item.source)
    if isinstance(item, Transition):
        return _transition(t, item, final)
    if isinstance(item, KernelEvent):
        what = ("sends RST" + (f", reason {item.reason}" if item.reason else "")
                if item.kind == "send_reset" else "receives RST")
        return LadderRow(t, KERNEL, "", "", f"{item.side}: {what} (tcp:tcp_{item.kind})",
                         side=item.side)
    return LadderRow(t, APP, "", "", item.what, side=item.side)


def timeline(views: Sequence[PacketView], observations: Sequence[StateObservation] = (),
             events: Sequence[AppEvent] = (), transitions: Sequence[Transition] = (),
             kernel_events: Sequence[KernelEvent] = (),
             final: dict[str, str] | None = None) -> list[LadderRow]:
    """Segments, snapshots, kernel facts and application calls on one clock (seconds
    since the first segment); `final`: each side's last state, for the TIME-WAIT gloss."""
    t0 = views[0].segment.t - views[0].t if views and views[0].segment else 0.0
    timed: list[tuple[float, int, PacketView | StateObservation | AppEvent | Transition
                      | KernelEvent]] = [(v.t, _ORDER[PACKET], v) for v in views]
    timed += [(o.t - t0, _ORDER[SS], o) for o in observations]
    timed += [(e.t - t0, _ORDER[APP], e) for e in events]
    timed += [(k.t - t0, _ORDER[KERNEL], k) for k in transitions]
    timed += [(k.t - t0, _ORDER[KERNEL], k) for k in kernel_events]
    timed.sort(key=lambda r: (r[0], r[1]))
    return [LadderRow(t, PACKET, item.client_state, item.server_state, item.note, item)
            if isinstance(item, PacketView) else _other(t, item, final or {})
            for t, _, item in timed]


@dataclass(frozen=True, slots=True)
class SegmentStep:
    """One stop of a step-through: a segment and the rows (snapshots, kernel facts,
    calls) that happened after it and before the next segment; the rows before the
    first segment go with the first."""

    index: int                  # 0-based, in capture order
    row: LadderRow              # the segment's own row (kind PACKET)
    around: tuple[LadderRow, ...]


def segment_steps(rows: Sequence[LadderRow]) -> list[SegmentStep]:
    packets = [i for i, r in enumerate(rows) if r.kind == PACKET]
    steps = []
    for n, i in enumerate(packets):
        start = 0 if n == 0 else i + 1
        end = packets[n + 1] if n + 1 < len(packets) else len(rows)
        around = tuple(r for j, r in enumerate(rows[start:end], start) if j != i)
        steps.append(SegmentStep(n, rows[i], around))
    return steps
