"""The annotated ladder: one row per segment, both sides' states beside it, `ss`
snapshots and application events merged in on the same clock.

The ladder is laid out for the console's width, from 80 columns up, and nothing in it
is ever cut: frame numbers, times, state names and every number on an arrow are printed
whole. What gives way is, in order: the arrow's length (down to its longest word; the
numbers move to a second line under the flags), then the "why" column, which moves
under the arrow (a second line per row) when fewer than WHY_BESIDE columns are left
beside it, and wraps. Lines are built here rather than by a rich Table because a table
cannot put one cell under others, and it cuts or folds a cell it runs out of room for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.style import Style
from rich.text import Text

from tcptrace.ladder_model import KERNEL, SS, LadderRow, timeline
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
from tcptrace.render.console import ascii_only
from tcptrace.untrusted import shown

ARROW_WIDTH = 44        # the longest arrow; the stepper draws this one
MIN_LABEL = 16          # room for "server app ◂" and the centred "┄┄ ss ┄┄" labels
WHY_BESIDE = 60         # fewer columns than this left of the arrows: "why" goes under
GAP = "  "

# Colours only help; every fact is also in the text (NO_COLOR and pipes lose them).
_FLAG_STYLE = {"RST": "bold red", "FIN": "bold yellow", "SYN": "bold cyan"}
_STATE_STYLE: dict[str, str] = {TcpState.TIME_WAIT: "magenta", TcpState.CLOSED: "dim",
                TcpState.ESTABLISHED: "green", TcpState.CLOSE_WAIT: "yellow",
                TcpState.FIN_WAIT_1: "yellow", TcpState.FIN_WAIT_2: "yellow",
                TcpState.LAST_ACK: "yellow", TcpState.CLOSING: "yellow"}


@dataclass(frozen=True)
class Glyphs:
    """What the ladder draws with: box-drawing and arrows, or their ASCII stand-ins for
    an output that cannot carry them (PYTHONIOENCODING=ascii, --ascii, a C locale)."""

    line: str = "─"
    right: str = "▶"
    left: str = "◀"
    ss: str = "┄"
    kernel: str = "·"
    client_app: str = "▸"
    server_app: str = "◂"
    bullet: str = "•"
    to: str = "→"
    box: box.Box = box.ROUNDED


UNICODE = Glyphs()
ASCII = Glyphs("-", ">", "<", "~", ".", ">", "<", "*", "->", box.ASCII)
# Characters the notes and events may carry, for an ASCII-only output.
_ASCII_TEXT = str.maketrans({"—": "-", "–": "-", "→": "->", "←": "<-", "µ": "u", "…": "...",
                             "‘": "'", "’": "'", "“": '"', "”": '"', "×": "x", "≤": "<=",
                             "≥": ">="})


def glyphs_for(console: Console) -> Glyphs:
    return ASCII if ascii_only(console) else UNICODE


def to_ascii(text: str) -> str:
    """`text` with every character an ASCII terminal can show (unknown ones as '?')."""
    return text.translate(_ASCII_TEXT).encode("ascii", "replace").decode("ascii")


def text_for(glyphs: Glyphs, text: str, style: str | Style = "") -> Text:
    return Text(to_ascii(text) if glyphs is ASCII else text, style=style)


def state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def arrow_words(view: PacketView) -> list[str]:
    """The arrow's label, word by word: flags, then the relative numbers."""
    words = ["+".join(view.flags) or "(no flags)", f"seq={view.seq}", f"ack={view.ack}"]
    return words + ([f"len={view.length}"] if view.length else [])


def _flag_style(view: PacketView) -> str:
    return next((s for f, s in _FLAG_STYLE.items() if f in view.flags), "bold")


def arrow(view: PacketView, width: int = ARROW_WIDTH, glyphs: Glyphs = UNICODE) -> Text:
    """The segment as one arrow line, `width` wide when the label fits (the stepper's)."""
    return arrow_lines(view, width, glyphs)[0]


def arrow_lines(view: PacketView, width: int, glyphs: Glyphs = UNICODE) -> list[Text]:
    """The arrow, `width` columns, head towards the receiver. A label longer than the
    arrow leaves its later words on lines of their own, under the first."""
    room = max(1, width - 5)            # "─ " + label + " " + fill + head
    lines: list[str] = []
    words = arrow_words(view)
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= room:
            lines[-1] += " " + word
        else:
            lines.append(word)
    style = _flag_style(view)
    body = f" {lines[0]} "
    fill = glyphs.line * max(1, width - len(body) - 2)
    if view.sender == "client":
        first = Text.assemble(glyphs.line, (body, style), fill + glyphs.right)
    else:
        first = Text.assemble(glyphs.left + fill, (body, style), glyphs.line)
    pad = " " * (width - len(body) - 1 if view.sender == "server" else 2)
    return [first] + [Text(pad + rest, style=style) for rest in lines[1:]]


def _ms(t: float) -> str:
    return f"{t * 1000:.3f}"


@dataclass
class Row:
    """One ladder row before layout. `kind` says what the middle column draws: a
    segment's arrow ("packet", with `view`), or a label ("ss", "kernel", "client app",
    "server app")."""

    t: float
    kind: str
    client: Text
    server: Text
    why: Text
    frame: str = ""
    view: PacketView | None = None
    label: str = ""


def _packet_row(t: float, view: PacketView) -> Row:
    why = Text(view.note)
    if view.tags:
        why.append(f"  [{', '.join(view.tags)}]", style="dim")
    for comment in view.comments:
        why.append(f"\n  comment: {shown(comment)}", style="italic")
    frame = str(view.segment.frame) if view.segment and view.segment.frame else ""
    if "inferred" in view.tags:
        frame = "-"         # in no record of the capture
    return Row(t, "packet", state_text(view.client_state), state_text(view.server_state),
               why, frame, view)


def _other_row(row: LadderRow) -> Row:
    if row.kind == SS:
        return Row(row.t, "ss", Text(row.client, style="bold " + _STATE_STYLE.get(row.client, "")),
                   Text(row.server, style="bold " + _STATE_STYLE.get(row.server, "")),
                   Text(row.note, style="blue"), label=row.label)
    if row.kind == KERNEL:
        return Row(row.t, "kernel", state_text(row.client), state_text(row.server),
                   Text(row.note, style="green"))
    # Application calls: a marker on the caller's side of the arrow column.
    return Row(row.t, f"{row.side} app", Text(), Text(), Text(row.note, style="dim italic"))


def ladder_rows(views: list[PacketView], observations: Sequence[StateObservation] = (),
                events: Sequence[AppEvent] = (), transitions: Sequence[Transition] = (),
                kernel_events: Sequence[KernelEvent] = (),
                final: dict[str, str] | None = None) -> list[Row]:
    """Segments, snapshots, kernel facts and application calls on one clock (the plain
    rows of ladder_model.timeline, styled for the terminal)."""
    return [_packet_row(r.t, r.view) if r.view else _other_row(r)
            for r in timeline(views, observations, events, transitions, kernel_events,
                              final)]


@dataclass
class Layout:
    """Column widths for one ladder at one console width (see the module doc)."""

    width: int
    frame: int
    ms: int
    client: int
    arrow: int
    server: int
    why_beside: bool
    glyphs: Glyphs = field(default=UNICODE)

    @property
    def left(self) -> int:
        """Columns up to the end of the server state."""
        return self.frame + self.ms + self.client + self.arrow + self.server + 4 * len(GAP)

    @property
    def arrow_start(self) -> int:
        return self.frame + self.ms + self.client + 3 * len(GAP)


def plan_layout(rows: list[Row], width: int, glyphs: Glyphs = UNICODE) -> Layout:
    views = [r.view for r in rows if r.view]
    words = [w for v in views for w in arrow_words(v)]
    frame = max([len("frame")] + [len(r.frame) for r in rows])
    ms = max([len("ms")] + [len(_ms(r.t)) for r in rows])
    client = max([len("client")] + [len(r.client) for r in rows])
    server = max([len("server")] + [len(r.server) for r in rows])
    natural = max([MIN_LABEL] + [len(" ".join(arrow_words(v))) + 5 for v in views])
    shortest = max([MIN_LABEL] + [len(w) + 5 for w in words])
    fixed = frame + ms + client + server + 4 * len(GAP)
    arrow_w = max(shortest, min(natural, ARROW_WIDTH, width - fixed))
    room = width - fixed - arrow_w - len(GAP)
    longest_why = max([0] + [len(line) for r in rows for line in r.why.plain.split("\n")])
    beside = room >= min(WHY_BESIDE, max(longest_why, 1))
    return Layout(width, frame, ms, client, arrow_w, server, beside, glyphs)


def _label(row: Row, layout: Layout) -> Text:
    g, w = layout.glyphs, layout.arrow
    if row.kind == "ss":
        return Text(f" {row.label} ".center(w, g.ss), style="blue")
    if row.kind == "kernel":
        return Text(" kernel ".center(w, g.kernel), style="green")
    if row.kind == "client app":
        return Text(f"{g.client_app} client app".ljust(w), style="dim")
    return Text(f"server app {g.server_app}".rjust(w), style="dim")


def _cell(text: Text | str, width: int, right: bool = False, style: str = "") -> Text:
    cell = text if isinstance(text, Text) else Text(text, style=style)
    pad = " " * max(0, width - len(cell))
    return Text.assemble(pad, cell) if right else Text.assemble(cell, pad)


def header_line(layout: Layout) -> Text:
    line = Text.assemble(_cell("frame", layout.frame, True), GAP, _cell("ms", layout.ms, True),
                         GAP, _cell("client", layout.client), GAP, " " * layout.arrow, GAP,
                         _cell("server", layout.server), style="dim")
    if layout.why_beside:
        line.append(GAP + "why", style="dim")
    line.rstrip()
    return line


def row_lines(console: Console, row: Row, layout: Layout) -> list[Text]:
    """One row as printed lines, none wider than the layout's width."""
    g = layout.glyphs
    middle = arrow_lines(row.view, layout.arrow, g) if row.view else [_label(row, layout)]
    first = Text.assemble(_cell(row.frame, layout.frame, True, "dim"), GAP,
                          _cell(_ms(row.t), layout.ms, True, "dim"), GAP,
                          _cell(row.client, layout.client), GAP,
                          _cell(middle[0], layout.arrow), GAP, _cell(row.server, layout.server))
    indent = layout.arrow_start + 1
    left = [first] + [Text.assemble(" " * layout.arrow_start, m) for m in middle[1:]]
    # ASCII output keeps the row's colour but not its spans (the text changes length).
    why = text_for(g, row.why.plain, row.why.style) if g is ASCII else row.why
    if layout.why_beside:
        start = layout.left + len(GAP)
        wrapped = why.wrap(console, max(1, layout.width - start), overflow="fold")
        lines = [Text.assemble(_cell(left[i] if i < len(left) else Text(), layout.left), GAP,
                               wrapped[i] if i < len(wrapped) else Text())
                 for i in range(max(len(left), len(wrapped)))]
    else:
        wrapped = why.wrap(console, max(1, layout.width - indent), overflow="fold")
        lines = left + [Text.assemble(" " * indent, w) for w in wrapped]
    for line in lines:
        line.rstrip()
    return lines


def ladder_lines(console: Console, rows: list[Row]) -> list[Text]:
    layout = plan_layout(rows, console.width, glyphs_for(console))
    out = [header_line(layout)]
    for row in rows:
        out += row_lines(console, row, layout)
    return out


# What each tag means, for the legend (the engine's tags, observer.rs).
TAG_MEANINGS = {
    "mid-connection": "the capture starts after the handshake: roles and states are guessed",
    "retransmission": "sequence space sent before, sent again",
    "out-of-order": "data beyond a gap: earlier bytes are still missing",
    "duplicate-ack": "the same ACK again: the receiver is missing data",
    "zero-window": "the receiver's buffer is full: window 0, the sender must stop",
    "window-update": "the receiver's window opens again",
    "window-full": "the sender has filled the receiver's advertised window",
    "window-probe": "a persist probe: has the zero window opened?",
    "keep-alive": "a keep-alive probe (one byte below what was sent)",
    "ack-of-fin": "acknowledges the peer's FIN",
    "delayed-ack": "held back by the receiver's delayed-ACK timer (40 ms+ on Linux)",
    "simultaneous-close": "both FINs crossed on the wire",
    "out-of-window": "outside what the receiver's window allows",
    "after-close": "arrives after that side had closed",
    "capture-duplicate": "the capture recorded the same frame again (same bytes, µs apart): "
                         "not a retransmission, it changes nothing",
    "inferred": "not in the capture: proved by what the other side acknowledges",
}


def legend_lines(rows: list[Row], glyphs: Glyphs = UNICODE) -> list[tuple[str, str]]:
    """(glyph or tag, what it means) for what this ladder draws, each once."""
    g, kinds = glyphs, {r.kind for r in rows}
    out = []
    if "packet" in kinds:
        out.append((f"{g.line}{g.line}{g.right} {g.left}{g.line}{g.line}", "a segment, "
                    "towards its receiver: flags, seq/ack relative to each side's first "
                    "sequence number, len = payload bytes; frame = its number in the capture "
                    "(- for a segment inferred, not captured)"))
    if "ss" in kinds:
        out.append((f"{g.ss * 2} ss {g.ss * 2}", "both sockets' states as `ss` reported "
                    "them after the step named"))
    if "kernel" in kinds:
        out.append((f"{g.kernel * 3} kernel {g.kernel * 3}", "a state change or RST from "
                    "the kernel's own tracepoints"))
    if kinds & {"client app", "server app"}:
        out.append((f"{g.client_app} client app / server app {g.server_app}", "a call the "
                    "application made, or an event it was told of"))
    tags = [t for t in TAG_MEANINGS if any(r.view and t in r.view.tags for r in rows)]
    out += [(f"[{tag}]", TAG_MEANINGS[tag]) for tag in tags]
    out += finding_legend(rows)
    return out


def finding_legend(rows: list[Row]) -> list[tuple[str, str]]:
    """The `finding:KIND` tags `tcptrace diagnose` puts on the segments that prove it."""
    from tcptrace.diagnose import FINDING_TAG, KINDS

    seen = dict.fromkeys(t for r in rows if r.view for t in r.view.tags
                         if t.startswith(FINDING_TAG))
    return [(f"[{t}]", f"proves the finding '{KINDS[t[len(FINDING_TAG):]].title}' "
             "(tcptrace diagnose)") for t in seen]


def print_wrapped(console: Console, text: str, glyphs: Glyphs, first: str = "",
                  style: str = "") -> None:
    """`text` after `first`, wrapped at words to the console's width, later lines
    indented under the text (never cut, never wider than the console)."""
    body = text_for(glyphs, text, style)
    indent = len(first)
    for i, line in enumerate(body.wrap(console, max(1, console.width - indent),
                                       overflow="fold")):
        line.rstrip()
        console.print(Text.assemble(first if i == 0 else " " * indent, line),
                      soft_wrap=True)


def conclusion_lines(verdict: Verdict, observations: Sequence[StateObservation] = (),
                     counts: dict | None = None, closer: str = "client") -> list[str]:
    lines = []
    kind = {"fin": "graceful close (FIN from both sides)", "rst": "abortive close (RST)",
            "refused": "refused (RST in reply to SYN)",
            "half-closed": "half-closed (one side's FIN only)",
            "unanswered": "unanswered (a SYN nobody replied to)",
            "open": "still open at the end (neither side closed)"}[verdict.close]
    gone = [side for side in ("client", "server") if verdict.final[side] == TcpState.CLOSED]
    if verdict.close == "open" and len(gone) == 1:    # a kernel gave up without a segment
        other = "server" if gone[0] == "client" else "client"
        kind = (f"no FIN or RST on the wire, yet the {gone[0]}'s socket is gone and the "
                f"{other}'s is {verdict.final[other]}: half-open")
    who = f", first closer: {verdict.first_closer}" if verdict.first_closer else ""
    lines.append(f"How it ended: {kind}{who}" +
                 (f"; RST sent by {verdict.rst_from}" if verdict.rst_from else "") +
                 ("; the FINs crossed (simultaneous close)" if verdict.simultaneous else ""))
    if verdict.one_direction:
        lines.append("One direction captured: the other side's segments are inferred from "
                     "the ACKs of the side seen (rows tagged [inferred]); how it ended is as "
                     "far as those ACKs prove.")
    if verdict.time_wait:
        timer = ""
        for obs in reversed(observations):
            for side in ("client", "server"):
                d = obs.details.get(side, {})
                if d.get("state") == TcpState.TIME_WAIT and "timer" in d:
                    tw = d["timer"]
                    timer = (f" ({side}: timer:(timewait,{tw['expires']},{tw['retrans']})"
                             " per ss)")
                    break
            if timer:
                break
        if verdict.time_wait == "both":
            lines.append("TIME-WAIT: both sides hold the connection's 4-tuple for 60 s on "
                         f"Linux{timer}: each closed before it saw the other's FIN.")
        else:
            other = "server" if verdict.time_wait == "client" else "client"
            lines.append(f"TIME-WAIT: the {verdict.time_wait} holds the connection's 4-tuple "
                         f"for 60 s on Linux{timer}; the {other} is {verdict.final[other]}.")
    else:
        lines.append(f"TIME-WAIT: none; final states: client {verdict.final['client']}, "
                     f"server {verdict.final['server']}.")
    if counts is not None and counts.get("written"):
        w, d = counts["written"], counts["delivered"]
        peer = "client" if closer == "server" else "server"
        lines.append(f"Bytes the {closer if closer != 'both' else 'client'} had queued at the "
                     f"close: {w:,}; delivered to the {peer} application: "
                     f"{d:,}" + (" (all)" if w == d else f" ({w - d:,} lost)"))
    return lines


def render_connection(console: Console, conn: Connection, views: list[PacketView],
                      verdict: Verdict, observations: Sequence[StateObservation] = (),
                      events: Sequence[AppEvent] = (), counts: dict | None = None,
                      transitions: Sequence[Transition] = (),
                      kernel_events: Sequence[KernelEvent] = (), closer: str = "client",
                      legend: bool = True, skipped: int = 0,
                      findings: Sequence[str] = ()) -> None:
    """The ladder, then how the connection ended, then `findings` (a live run's measured
    facts, `diagnose`'s findings), then (unless `legend` is off) what the ladder's glyphs
    and tags mean. `skipped`: segments left out before the first row (--close)."""
    g = glyphs_for(console)
    rows = ladder_rows(views, observations, events, transitions, kernel_events,
                       verdict.final)
    if skipped:
        print_wrapped(console, f"({skipped:,} earlier segment{'s' if skipped != 1 else ''} "
                      "skipped: the close starts below; without --close for all)", g,
                      style="dim")
    for line in ladder_lines(console, rows):
        console.print(line, soft_wrap=True)
    console.print()
    for sentence in [*conclusion_lines(verdict, observations, counts, closer), *findings]:
        print_wrapped(console, sentence, g, f"{g.bullet} ")
    if legend and rows:
        console.print()
        print_wrapped(console, "Legend (--no-legend to hide):", g, style="dim")
        for key, meaning in legend_lines(rows, g):
            print_wrapped(console, meaning, g, f"  {key}  ", style="dim")


def close_part(views: list[PacketView], before: int = 3) -> tuple[list[PacketView], int]:
    """The close of a connection: from `before` segments ahead of the first FIN or
    RST to the end, and how many segments that leaves out (all shown when there is
    no FIN nor RST)."""
    first = next((i for i, v in enumerate(views) if {"FIN", "RST"} & set(v.flags)), None)
    if first is None:
        return views, 0
    start = max(0, first - before)
    return views[start:], start


def header_panel(glyphs: Glyphs, lines: list[Text]) -> Panel:
    """A framed header whose lines wrap inside the frame, never cut."""
    return Panel(Group(*lines), box=glyphs.box, expand=False)


def render_close(console: Console, run, legend: bool = True,
                 findings: Sequence[str] = ()) -> None:
    """A live close run (live.CloseRun): header, ladder, conclusion."""
    g = glyphs_for(console)
    states = ("states: inferred from the segments on each row; ss after each step"
              + ("; kernel transitions)" if not run.kernel_note else ")"))
    header = [Text.assemble(("tcptrace close --mode ", "bold"), (run.mode.name, "bold cyan"),
                            f"   runtime: {run.runtime}   closer: {run.closer}"),
              *(text_for(g, line) for line in run.what_it_does),
              *([text_for(g, f"Where: {run.where}", "dim")] if run.where else []),
              text_for(g, f"client {run.connection.client}  {g.to}  server "
                       f"{run.connection.server}   ({states}", "dim")]
    console.print(header_panel(g, header))
    if run.kernel_note:
        print_wrapped(console, f"note: {run.kernel_note}; states come from ss only", g,
                      style="dim")
    later = run.later
    render_connection(console, run.connection, run.views, run.verdict, run.observations,
                      run.events, run.bytes, run.transitions, run.kernel_events, run.closer,
                      legend and not later, findings=[*run.findings, *findings])
    for i, more in enumerate(later, 1):
        console.print()
        print_wrapped(console, f"A new connection on the same 4-tuple: client "
                      f"{more.connection.client}  {g.to}  server {more.connection.server}",
                      g, style="bold")
        render_connection(console, more.connection, more.views, more.verdict,
                          more.observations, more.events, None, more.transitions,
                          more.kernel_events, run.closer, legend=legend and i == len(later))
    if run.drops:
        print_wrapped(console, f"warning: the kernel dropped {run.drops} frame(s) of this "
                      "capture (buffer full): the ladder may miss segments", g, style="red")
    if run.mode.retries > 1:
        print_wrapped(console, f"Tries: {run.tries} of at most {run.mode.retries}"
                      + ("" if run.verdict.simultaneous else
                         f"; the FINs never crossed in {run.tries} tries (the last try is "
                         "shown)"), g, f"{g.bullet} ")
