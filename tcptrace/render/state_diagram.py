"""RFC 9293's state diagram (its Figure 5) as data, drawn as SVG with the path each
endpoint took through it.

The states and transitions below are the RFC's own; a path step the figure does not
draw (an RST, which ends any state in CLOSED; a FIN+ACK that takes FIN-WAIT-1 straight
to TIME-WAIT) is drawn as a dashed line of its own, labelled with the segment that
caused it. CLOSED appears twice, as in the RFC: where a connection starts, and where it
ends; a side that is CLOSED after a segment is lit on the lower one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from tcptrace.ladder_model import PACKET, LadderRow
from tcptrace.model import TcpState

START = "CLOSED-start"          # the upper CLOSED box: no ladder row lights it
WIDTH, HEIGHT = 640, 680
BOX_W, BOX_H = 168, 44
SIDE_COLOURS = {"client": "#1c64c8", "server": "#c2410c"}


@dataclass(frozen=True)
class StateBox:
    key: str                    # the state's name, or START
    label: str
    x: int                      # centre
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str                  # the RFC's event / action


STATES = (
    StateBox(START, "CLOSED", 250, 50),
    StateBox(TcpState.LISTEN, "LISTEN", 250, 130),
    StateBox(TcpState.SYN_RECEIVED, "SYN-RECEIVED", 120, 220),
    StateBox(TcpState.SYN_SENT, "SYN-SENT", 530, 220),
    StateBox(TcpState.ESTABLISHED, "ESTABLISHED", 320, 320),
    StateBox(TcpState.FIN_WAIT_1, "FIN-WAIT-1", 110, 420),
    StateBox(TcpState.CLOSE_WAIT, "CLOSE-WAIT", 530, 420),
    StateBox(TcpState.FIN_WAIT_2, "FIN-WAIT-2", 110, 530),
    StateBox(TcpState.CLOSING, "CLOSING", 320, 530),
    StateBox(TcpState.LAST_ACK, "LAST-ACK", 530, 530),
    StateBox(TcpState.TIME_WAIT, "TIME-WAIT", 320, 630),
    StateBox(TcpState.CLOSED, "CLOSED", 530, 630),
)
BY_KEY = {s.key: s for s in STATES}

# RFC 9293, Figure 5 (event / action).
EDGES = (
    Edge(START, TcpState.LISTEN, "passive OPEN"),
    Edge(START, TcpState.SYN_SENT, "active OPEN / snd SYN"),
    Edge(TcpState.LISTEN, TcpState.SYN_RECEIVED, "rcv SYN / snd SYN,ACK"),
    Edge(TcpState.LISTEN, TcpState.SYN_SENT, "SEND / snd SYN"),
    Edge(TcpState.SYN_SENT, TcpState.SYN_RECEIVED, "rcv SYN / snd ACK"),
    Edge(TcpState.SYN_RECEIVED, TcpState.ESTABLISHED, "rcv ACK of SYN"),
    Edge(TcpState.SYN_SENT, TcpState.ESTABLISHED, "rcv SYN,ACK / snd ACK"),
    Edge(TcpState.SYN_RECEIVED, TcpState.FIN_WAIT_1, "CLOSE / snd FIN"),
    Edge(TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, "CLOSE / snd FIN"),
    Edge(TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, "rcv FIN / snd ACK"),
    Edge(TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2, "rcv ACK of FIN"),
    Edge(TcpState.FIN_WAIT_1, TcpState.CLOSING, "rcv FIN / snd ACK"),
    Edge(TcpState.FIN_WAIT_2, TcpState.TIME_WAIT, "rcv FIN / snd ACK"),
    Edge(TcpState.CLOSING, TcpState.TIME_WAIT, "rcv ACK of FIN"),
    Edge(TcpState.CLOSE_WAIT, TcpState.LAST_ACK, "CLOSE / snd FIN"),
    Edge(TcpState.LAST_ACK, TcpState.CLOSED, "rcv ACK of FIN"),
    Edge(TcpState.TIME_WAIT, TcpState.CLOSED, "Timeout=2MSL"),
)
_DRAWN = {(e.source, e.target) for e in EDGES}


@dataclass(frozen=True)
class PathStep:
    """One change of one side's state, and the segment that made it ("snd FIN")."""

    source: str
    target: str
    via: str


def side_path(rows: Sequence[LadderRow], side: str) -> list[PathStep]:
    """The states `side` went through, segment by segment (the ladder's own states);
    a state the diagram has no box for ("?": not known yet) breaks the path there."""
    steps: list[PathStep] = []
    previous = ""
    for row in rows:
        if row.kind != PACKET or row.view is None:
            continue
        state = row.client if side == "client" else row.server
        if previous and state != previous and previous in BY_KEY and state in BY_KEY:
            verb = "snd" if row.view.sender == side else "rcv"
            steps.append(PathStep(previous, state, f"{verb} {'+'.join(row.view.flags)}"))
        previous = state
    return steps


def _border(a: StateBox, b: StateBox, offset: float) -> tuple[float, float, float, float]:
    """The segment from a's box edge to b's box edge along the line between centres,
    moved `offset` px sideways (so the client's and server's paths stay apart)."""
    dx, dy = b.x - a.x, b.y - a.y
    length = max((dx * dx + dy * dy) ** 0.5, 1.0)
    nx, ny = -dy / length * offset, dx / length * offset

    def cut(scale_from: StateBox, sign: int) -> tuple[float, float]:
        tx = (BOX_W / 2) / abs(dx) if dx else float("inf")
        ty = (BOX_H / 2 + 4) / abs(dy) if dy else float("inf")
        f = min(tx, ty)
        return scale_from.x + sign * dx * f + nx, scale_from.y + sign * dy * f + ny

    (x1, y1), (x2, y2) = cut(a, 1), cut(b, -1)
    return x1, y1, x2, y2


def _edge(e: Edge) -> str:
    x1, y1, x2, y2 = _border(BY_KEY[e.source], BY_KEY[e.target], 0)
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    anchor = "start"
    if y1 == y2 and abs(x2 - x1) < 80:      # too short to hold its words: under the boxes
        mx, my, anchor = mx - 4, my + BOX_H / 2 + 17, "middle"
    return (f'<g class="rfc-edge"><title>{escape(e.label)}</title>'
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#9ca3af" '
            f'stroke-width="1.5" marker-end="url(#sd-head)"/>'
            f'<text x="{mx + 4:.0f}" y="{my - 3:.0f}" text-anchor="{anchor}" font-size="11" '
            f'fill="#6b7280" '
            f'stroke="white" stroke-width="3" paint-order="stroke">'
            f'{escape(e.label)}</text></g>')


def _path(side: str, steps: list[PathStep]) -> str:
    colour, offset = SIDE_COLOURS[side], (-5 if side == "client" else 5)
    out = [f'<g class="path path-{side}"><title>the {side}\'s path</title>']
    for s in steps:
        a = BY_KEY[START if s.source == TcpState.CLOSED and s.target in (
            TcpState.LISTEN, TcpState.SYN_SENT) else s.source]
        x1, y1, x2, y2 = _border(a, BY_KEY[s.target], offset)
        dashed = (a.key, s.target) not in _DRAWN
        out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                   f'stroke="{colour}" stroke-width="4" opacity="0.8" '
                   f'marker-end="url(#sd-head-{side})"'
                   + (' stroke-dasharray="8,5"' if dashed else "") + '>'
                   f'<title>{side}: {escape(s.source)} → {escape(s.target)} ({escape(s.via)})'
                   '</title></line>')
        if dashed:      # the client's label before the middle, the server's after it
            f = 0.4 if side == "client" else 0.6
            out.append(f'<text x="{x1 + (x2 - x1) * f + 8:.0f}" y="{y1 + (y2 - y1) * f + 4:.0f}" '
                       f'font-size="12" font-weight="bold" fill="{colour}">'
                       f'{escape(s.via)}</text>')
    out.append("</g>")
    return "".join(out)


def _box(s: StateBox, lit: dict[str, str], interactive: bool) -> str:
    sides = [side for side in ("client", "server") if lit.get(side) == s.key]
    badges = []
    for i, side in enumerate(("client", "server")):
        if interactive or side in sides:
            bx = s.x - BOX_W / 2 + 4 + i * (BOX_W - 52)
            badges.append(f'<g class="badge badge-{side}"><rect x="{bx:.0f}" '
                          f'y="{s.y - BOX_H / 2 - 10}" width="44" height="16" rx="4" '
                          f'fill="{SIDE_COLOURS[side]}"/><text x="{bx + 22:.0f}" '
                          f'y="{s.y - BOX_H / 2 + 2}" font-size="11" fill="white" '
                          f'text-anchor="middle">{side}</text></g>')
    classes = " ".join(["state"] + [f"lit-{side}" for side in sides])
    key = "" if s.key == START else s.key
    width = 4 if sides else 1.5
    return (f'<g class="{classes}" data-state={quoteattr(key)}><title>{escape(s.label)}'
            f'{" (where a connection starts)" if s.key == START else ""}</title>'
            f'<rect class="box" x="{s.x - BOX_W / 2:.0f}" y="{s.y - BOX_H / 2:.0f}" '
            f'width="{BOX_W}" height="{BOX_H}" rx="10" fill="#f9fafb" stroke="#374151" '
            f'stroke-width="{width}"/><text x="{s.x}" y="{s.y + 6}" text-anchor="middle" '
            f'font-size="17" font-weight="bold" fill="#111827">{escape(s.label)}</text>'
            + "".join(badges) + "</g>")


def state_diagram_svg(rows: Sequence[LadderRow], lit: dict[str, str] | None = None,
                      x: int = 0, y: int = 0, interactive: bool = False) -> str:
    """The diagram as an <svg> element (standalone, or nested at x, y): the RFC's
    states and transitions in grey, each side's path in its colour, and `lit` (side ->
    state, e.g. the final states) marked with the side's name. `interactive`: every box
    carries both badges, for the page's script to show."""
    lit = lit or {}
    heads = "".join(
        f'<marker id="sd-head{suffix}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerUnits="userSpaceOnUse" markerWidth="{size}" markerHeight="{size}" '
        f'orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for suffix, colour, size in (("", "#9ca3af", 9), ("-client", SIDE_COLOURS["client"], 14),
                                     ("-server", SIDE_COLOURS["server"], 14)))
    out = [f'<svg class="state-diagram" x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Verdana, sans-serif" '
           f'role="group" aria-label="RFC 9293 state diagram">'
           f"<title>RFC 9293 TCP state diagram, with the client's path (blue) and the "
           f"server's path (orange)</title><defs>{heads}</defs>"
           f'<text x="10" y="22" font-size="16" font-weight="bold" fill="#374151">'
           f"RFC 9293 states: each side's path</text>"]
    out += [_edge(e) for e in EDGES]
    out += [_path(side, side_path(rows, side)) for side in ("client", "server")]
    out += [_box(s, lit, interactive) for s in STATES]
    out.append("</svg>")
    return "".join(out)
