"""The ladder as a standalone SVG sequence diagram, for slides and for the HTML page.

Two lifelines (client, server) headed by their addresses; one arrow per segment,
labelled with its flags and relative seq/ack/len; each side's state written beside its
lifeline where it changes; `ss` snapshots, kernel transitions and application calls as
marks on the lifelines; the close (from the first FIN or RST) on a tinted band; each
segment's explanation beside it. Type is large (a projector shrinks a 1,800-pixel-wide
picture), no font or file is referenced from outside, and every row carries a <title>
for screen readers and tooltips.

Arrows are level: a capture gives each segment one timestamp, where it was captured
(on loopback, sending and receiving are the same instant); a slope would invent a
transit time. Rows are spaced evenly, not by time (a close has microsecond gaps next to
40 ms delayed ACKs): each row's time is written beside it.

All text comes from the plain rows (ladder_model); text read from the capture passes
through untrusted.markup, our own words through xml escaping.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from tcptrace.ladder_model import APP, KERNEL, PACKET, SS, LadderRow
from tcptrace.model import PacketView
from tcptrace.render.ladder import arrow_words
from tcptrace.render.state_diagram import HEIGHT as DIAGRAM_H
from tcptrace.render.state_diagram import WIDTH as DIAGRAM_W
from tcptrace.render.state_diagram import state_diagram_svg
from tcptrace.untrusted import markup, shown

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
TIME_X = 150                    # right edge of the frame/time column
CLIENT_X, SERVER_X = 400, 960   # lifelines
NOTE_X = 1200                   # explanations start here
NOTE_CHARS = 58                 # characters per explanation line at NOTE_SIZE
COMMENT_LIMIT = 300             # a pcapng comment is cut here in the picture
MARK_CHARS = 60                 # without notes, a mark's words between the lifelines
WIDTH = 1860
TOP = 190                       # first row
LINE = 23                       # one line of explanation
NOTE_SIZE, LABEL_SIZE, STATE_SIZE = 18, 21, 19

FLAG_COLOURS = (("RST", "#dc2626"), ("FIN", "#b45309"), ("SYN", "#0e7490"))
PLAIN_COLOUR = "#1f2937"
STATE_COLOURS = {"ESTABLISHED": "#15803d", "TIME-WAIT": "#a21caf", "CLOSED": "#6b7280"}
CLOSING_COLOUR = "#b45309"


def flag_colour(view: PacketView) -> str:
    return next((c for f, c in FLAG_COLOURS if f in view.flags), PLAIN_COLOUR)


def state_colour(state: str) -> str:
    return STATE_COLOURS.get(state, CLOSING_COLOUR if state not in ("?", "") else "#6b7280")


def arrow_label(view: PacketView) -> str:
    """The words on the arrow: flags, then the relative numbers (the terminal's words)."""
    return " ".join(arrow_words(view))


@dataclass(frozen=True)
class Header:
    """What the picture says above and below the ladder (our words; the caller passes
    any capture text, such as a file name, through untrusted.shown first)."""

    title: str
    client: str                 # ip:port
    server: str
    conclusion: tuple[str, ...] = ()


def _note_lines(row: LadderRow, comments: Sequence[str]) -> list[str]:
    """The explanation wrapped, then each comment (marked, cut short), as escaped
    markup lines."""
    text = row.note
    if row.view and row.view.tags:
        text += f"  [{', '.join(row.view.tags)}]"
    lines = [escape(line) for line in textwrap.wrap(text, NOTE_CHARS) or [""]]
    for comment in comments:
        # Wrapped as the reader will see it (visible escapes), then escaped line by line.
        visible = textwrap.wrap("comment: " + shown(comment, COMMENT_LIMIT), NOTE_CHARS)
        lines += [markup(line) for line in visible]
    return lines


def _height(lines: int, kind: str) -> int:
    base = 66 if kind == PACKET else 40
    return max(base, 16 + lines * LINE)


def _state_text(x: float, y: float, state: str, anchor: str, ss: bool = False) -> str:
    style = ' font-style="italic"' if ss else ""
    return (f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="{STATE_SIZE}" '
            f'font-weight="bold" fill="{state_colour(state)}"{style}>{escape(state)}</text>')


def _packet(row: LadderRow, y: int) -> str:
    view = row.view
    assert view is not None
    colour = flag_colour(view)
    x1, x2 = (CLIENT_X, SERVER_X) if view.sender == "client" else (SERVER_X, CLIENT_X)
    head = "lad-head-" + colour[1:]
    ay = y + 34
    # A segment the capture does not hold (inferred from the peer's ACKs) is dashed.
    dash = ' stroke-dasharray="10,7"' if "inferred" in view.tags else ""
    return (f'<line x1="{x1}" y1="{ay}" x2="{x2 + (-8 if x2 > x1 else 8)}" y2="{ay}" '
            f'stroke="{colour}" stroke-width="3"{dash} marker-end="url(#{head})"/>'
            f'<text x="{(CLIENT_X + SERVER_X) / 2}" y="{ay - 9}" text-anchor="middle" '
            f'font-size="{LABEL_SIZE}" font-weight="bold" fill="{colour}">'
            f'{escape(arrow_label(view))}</text>')


def _mark(row: LadderRow, y: int) -> str:
    """A snapshot, kernel fact or call: a mark on the lifeline(s) it concerns."""
    my = y + 20
    if row.kind == SS:
        return (f'<line x1="{CLIENT_X}" y1="{my}" x2="{SERVER_X}" y2="{my}" stroke="#2563eb" '
                f'stroke-width="1.5" stroke-dasharray="6,5"/>'
                f'<rect x="{(CLIENT_X + SERVER_X) / 2 - 22}" y="{my - 11}" width="44" '
                f'height="22" rx="5" fill="#dbeafe" stroke="#2563eb"/>'
                f'<text x="{(CLIENT_X + SERVER_X) / 2}" y="{my + 6}" text-anchor="middle" '
                f'font-size="15" fill="#1d4ed8">{escape(row.label)}</text>')
    x = CLIENT_X if row.side == "client" else SERVER_X
    if row.kind == KERNEL:
        return f'<circle cx="{x}" cy="{my}" r="8" fill="#16a34a" stroke="white"/>'
    return f'<rect x="{x - 7}" y="{my - 7}" width="14" height="14" fill="#6b7280"/>'


def _row_title(row: LadderRow) -> str:
    if row.view is None:
        return escape(f"{row.t * 1000:.3f} ms, {row.kind}: {row.note}")
    v = row.view
    frame = f"frame {row.frame}, " if row.frame else ""
    return escape(f"{frame}{row.t * 1000:.3f} ms: {v.sender} to "
                  f"{'server' if v.sender == 'client' else 'client'}, {arrow_label(v)}. "
                  f"{row.note}. Client {row.client}, server {row.server}.")


def _row(row: LadderRow, index: int, y: int, lines: list[str],
         shown_states: dict[str, str], width: int) -> str:
    attrs = f' class="seg" data-i="{index}"' if row.kind == PACKET else \
        f' class="mark {row.kind}"'
    colour = {SS: "#1d4ed8", KERNEL: "#15803d", APP: "#4b5563"}.get(row.kind, PLAIN_COLOUR)
    out = [f'<g{attrs}><title>{_row_title(row)}</title>',
           f'<rect class="hit" x="0" y="{y}" width="{width}" '
           f'height="{_height(len(lines), row.kind)}" fill="transparent"/>']
    when = f"{row.t * 1000:.3f} ms"
    if row.frame:
        out.append(f'<text x="{TIME_X}" y="{y + 24}" text-anchor="end" font-size="16" '
                   f'fill="#374151">#{row.frame}</text>')
    out.append(f'<text x="{TIME_X}" y="{y + 44}" text-anchor="end" font-size="14" '
               f'fill="#6b7280">{when}</text>')
    out.append(_packet(row, y) if row.kind == PACKET else _mark(row, y))
    for side, x, anchor in (("client", CLIENT_X - 14, "end"), ("server", SERVER_X + 14,
                                                               "start")):
        state = row.client if side == "client" else row.server
        if state and (row.kind == SS or state != shown_states.get(side)):
            out.append(_state_text(x, y + (40 if row.kind == PACKET else 26), state,
                                   anchor, ss=row.kind == SS))
            if row.kind != SS:
                shown_states[side] = state
    style = "" if row.kind == PACKET else ' font-style="italic"'
    if not lines and row.kind in (APP, KERNEL):     # no notes column: a short label
        short = row.note if len(row.note) <= MARK_CHARS else row.note[:MARK_CHARS - 1] + "…"
        out.append(f'<text x="{(CLIENT_X + SERVER_X) / 2}" y="{y + 25}" text-anchor="middle" '
                   f'font-size="15" fill="{colour}"{style}>{escape(short)}</text>')
    for n, line in enumerate(lines):
        out.append(f'<text x="{NOTE_X}" y="{y + 26 + n * LINE}" font-size="{NOTE_SIZE}" '
                   f'fill="{colour}"{style}>{line}</text>')
    out.append("</g>")
    return "".join(out)


def _defs() -> str:
    colours = {c for _, c in FLAG_COLOURS} | {PLAIN_COLOUR}
    return "<defs>" + "".join(
        f'<marker id="lad-head-{c[1:]}" viewBox="0 0 10 10" refX="8" refY="5" '
        f'markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{c}"/></marker>' for c in sorted(colours)) + "</defs>"


def _head(header: Header, notes: bool) -> list[str]:
    out = [f'<text x="30" y="44" font-size="28" font-weight="bold" fill="#111827">'
           f'{markup(header.title)}</text>']
    for side, x, address in (("client", CLIENT_X, header.client),
                             ("server", SERVER_X, header.server)):
        out.append(f'<g class="lifeline-head"><rect x="{x - 150}" y="80" width="300" '
                   f'height="72" rx="12" fill="#f3f4f6" stroke="#374151" stroke-width="2"/>'
                   f'<text x="{x}" y="110" text-anchor="middle" font-size="24" '
                   f'font-weight="bold" fill="#111827">{side}</text><text x="{x}" y="138" '
                   f'text-anchor="middle" font-size="18" fill="#374151">{escape(address)}'
                   f'</text></g>')
    if notes:
        out.append(f'<text x="{NOTE_X}" y="140" font-size="18" font-weight="bold" '
                   f'fill="#374151">why</text>')
    return out


def ladder_svg(rows: Sequence[LadderRow], header: Header,
               comments: Sequence[Sequence[str]] | None = None, states: bool = False,
               notes: bool = True) -> str:
    """The whole picture as an SVG document. `comments[i]`: the pcapng comments to show
    with row i (the caller leaves out those equal to the note); `states`: add the RFC
    9293 state diagram, with both sides' paths and final states, on the right; `notes`
    off: no explanations beside the rows (the page shows them in its panel and list)."""
    comments = comments or [() for _ in rows]
    laid: list[tuple[LadderRow, int, list[str]]] = []
    y = TOP
    for row, extra in zip(rows, comments, strict=True):
        lines = _note_lines(row, extra) if notes else []
        laid.append((row, y, lines))
        y += _height(len(lines), row.kind)
    bottom = y + 10
    first_close = next((ry for r, ry, _ in laid if r.view and {"FIN", "RST"} & set(r.view.flags)),
                       None)
    height = bottom + 30 + 30 * len(header.conclusion) + 20
    main = WIDTH if notes else NOTE_X - 40
    width = main + (DIAGRAM_W + 40 if states else 0)
    if states:
        height = max(height, TOP + DIAGRAM_H + 60)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" font-family={quoteattr(FONT)} '
           f'role="group" aria-label="{markup(header.title)}">',
           f"<title>{markup(header.title)}: the ladder of client {escape(header.client)} "
           f"and server {escape(header.server)}</title>", _defs(),
           f'<rect width="{width}" height="{height}" fill="white"/>', *_head(header, notes)]
    if first_close is not None:
        out.append(f'<g class="close-band"><title>the close: from the first FIN or RST'
                   f'</title><rect x="{TIME_X + 10}" y="{first_close}" '
                   f'width="{main - TIME_X - 20}" height="{bottom - first_close}" '
                   f'fill="#fef3c7" opacity="0.6"/><text x="{TIME_X + 16}" '
                   f'y="{first_close + 18}" font-size="15" font-weight="bold" '
                   f'fill="#b45309">the close</text></g>')
    for x in (CLIENT_X, SERVER_X):
        out.append(f'<line x1="{x}" y1="152" x2="{x}" y2="{bottom}" stroke="#9ca3af" '
                   f'stroke-width="3"/>')
    shown_states: dict[str, str] = {}
    packets = 0
    for row, ry, lines in laid:
        out.append(_row(row, packets, ry, lines, shown_states, main))
        packets += row.kind == PACKET
    for n, sentence in enumerate(header.conclusion):
        out.append(f'<text x="30" y="{bottom + 34 + 30 * n}" font-size="20" '
                   f'fill="#111827">• {escape(sentence)}</text>')
    if states:
        last = next((r for r in reversed(rows) if r.kind == PACKET), None)
        final = {"client": last.client, "server": last.server} if last else {}
        out.append(state_diagram_svg(rows, final, x=main + 20, y=TOP))
    out.append("</svg>")
    return "\n".join(out) + "\n"
