"""Workshop presentation of one connection: `--step` (one segment per key press, the
states in letters big enough for the back of the room) and `--speed X` (the ladder's
rows played back with the capture's own timing).

The key handling is a pure function (`step_key`) so it is tested without a terminal;
only `run_stepper` touches the TTY.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tcptrace.errors import TcptraceError
from tcptrace.model import Connection, PacketView, Verdict
from tcptrace.render.ladder import ARROW_WIDTH, arrow, conclusion_lines, state_text
from tcptrace.render.table import shown_comments

NEXT_KEYS = frozenset({"\r", "\n", " ", "n", "\x1b[C", "\x1b[B", "\x1bOC", "\x1bOB"})
BACK_KEYS = frozenset({"b", "p", "\x7f", "\x1b[D", "\x1b[A", "\x1bOD", "\x1bOA"})
QUIT_KEYS = frozenset({"q", "Q", "\x1b", "\x04", ""})    # "": stdin closed
HELP = "Enter/space: next   b: back   q: quit"

MAX_WAIT = 2.0          # s: --speed never waits longer than this between two rows


def step_key(pos: int, key: str, last: int) -> int | None:
    """The stepper's next screen from screen `pos` on `key`, or None to quit. Screens
    0..last-1 are the segments and `last` the verdict; next on the verdict quits, back
    on the first segment stays, any other key changes nothing."""
    if key in QUIT_KEYS:
        return None
    if key in NEXT_KEYS:
        return pos + 1 if pos < last else None
    if key in BACK_KEYS:
        return max(pos - 1, 0)
    return pos


def split_keys(chunk: str) -> list[str]:
    """One read may carry several key presses (typing ahead, a held key): each counts.
    An arrow key's escape sequence is one key (right/down: next, left/up: back)."""
    keys, i = [], 0
    while i < len(chunk):
        if chunk.startswith(("\x1b[", "\x1bO"), i) and i + 2 < len(chunk):
            keys.append(chunk[i:i + 3])     # an arrow key: NEXT_KEYS/BACK_KEYS know them
            i += 3
        else:
            keys.append(chunk[i])
            i += 1
    return keys


# -- big letters --------------------------------------------------------------------

# A 5-pixel-high font for the state names, drawn two pixel rows per line with half
# blocks: 3 lines of text, readable on a projector without changing the font size.
_FONT = {
    "A": (" ## ", "#  #", "####", "#  #", "#  #"), "B": ("### ", "#  #", "### ", "#  #", "### "),
    "C": (" ###", "#   ", "#   ", "#   ", " ###"), "D": ("### ", "#  #", "#  #", "#  #", "### "),
    "E": ("####", "#   ", "### ", "#   ", "####"), "F": ("####", "#   ", "### ", "#   ", "#   "),
    "G": (" ###", "#   ", "# ##", "#  #", " ###"), "H": ("#  #", "#  #", "####", "#  #", "#  #"),
    "I": ("###", " # ", " # ", " # ", "###"), "K": ("#  #", "# # ", "##  ", "# # ", "#  #"),
    "L": ("#   ", "#   ", "#   ", "#   ", "####"), "O": (" ## ", "#  #", "#  #", "#  #", " ## "),
    "M": ("#   #", "## ##", "# # #", "#   #", "#   #"),
    "N": ("#   #", "##  #", "# # #", "#  ##", "#   #"),
    "R": ("### ", "#  #", "### ", "# # ", "#  #"), "S": (" ###", "#   ", " ## ", "   #", "### "),
    "T": ("###", " # ", " # ", " # ", " # "), "V": ("#   #", "#   #", "#   #", " # # ", "  #  "),
    "W": ("#   #", "#   #", "# # #", "## ##", "#   #"),
    "Y": ("#   #", " # # ", "  #  ", "  #  ", "  #  "),
    "1": (" # ", "## ", " # ", " # ", "###"), "2": ("### ", "   #", " ## ", "#   ", "####"),
    "-": ("   ", "   ", "###", "   ", "   "), "?": ("### ", "   #", " ## ", "    ", " #  "),
}
_HALF = {("#", "#"): "█", ("#", " "): "▀", (" ", "#"): "▄", (" ", " "): " "}


def big_lines(word: str) -> list[str] | None:
    """`word` in the big font as 3 lines of text; None if it has a letter the font lacks."""
    if not word or any(ch not in _FONT for ch in word):
        return None
    rows = [" ".join(_FONT[ch][r] for ch in word) for r in range(5)]
    rows.append(" " * len(rows[0]))
    return ["".join(_HALF[a, b] for a, b in zip(rows[r], rows[r + 1])) for r in (0, 2, 4)]


def big_state(side: str, state: str, changed: bool) -> Text:
    style = "bold " + (state_text(state).style or "")
    text = Text(f"{side}" + ("  (changed)" if changed else ""), style="bold" if changed else "dim")
    lines = big_lines(state)
    if lines is None:
        text.append(f"\n{state}", style=style)
    for line in lines or ():
        text.append("\n" + line, style=style)
    return text


# -- --step screens -----------------------------------------------------------------

def segment_screen(console: Console, conn: Connection, views: list[PacketView],
                   pos: int) -> Panel:
    """Segment `pos`, big; below it, as many of the ladder's rows up to it as fit."""
    view = views[pos]
    before = views[pos - 1] if pos else None
    client = big_state("client", view.client_state,
                       before is not None and before.client_state != view.client_state)
    server = big_state("server", view.server_state,
                       before is not None and before.server_state != view.server_state)
    inner = console.width - 6                   # panel borders and padding
    if _width(client) + _width(server) + 4 <= inner:
        states: RenderableType = Table.grid(padding=(0, 4))
        states.add_row(client, server)
    else:
        states = Group(client, Text(), server)
    ends = Text(f"client {conn.client}  ·  server {conn.server}", style="dim")
    if conn.roles_guessed:
        ends.append(f"\nroles guessed: {conn.roles_guessed}", style="yellow")
    parts: list[RenderableType] = [ends, arrow(view), Text(), states, Text(),
                                   Text(view.note, style="bold")]
    if view.tags:
        parts.append(Text(f"[{', '.join(view.tags)}]", style="dim"))
    for comment in shown_comments(view):
        parts.append(Text(f"pcapng comment: {comment}", style="italic"))
    used = len(console.render_lines(Group(*parts), console.options.update_width(inner)))
    room = console.height - used - 6            # borders, padding, the blank line
    if room > 0:
        parts += [Text(), _ladder_so_far(views, pos, room)]
    title = f"segment {pos + 1} of {len(views)}  ·  {view.t * 1000:.3f} ms"
    return Panel(Group(*parts), title=title, subtitle=HELP, padding=(1, 2))


def _width(text: Text) -> int:
    return max(cell_len(line) for line in text.plain.split("\n"))


def _ladder_so_far(views: list[PacketView], pos: int, rows: int) -> Table:
    """The last `rows` ladder rows up to segment `pos`, one line each, `pos` marked."""
    grid = _grid()
    for i in range(max(0, pos - rows + 1), pos + 1):
        v = views[i]
        grid.add_row(Text(f"{v.t * 1000:9.3f}"), state_text(v.client_state), arrow(v),
                     state_text(v.server_state), Text("◀ now" if i == pos else ""),
                     style="" if i == pos else "dim")
    return grid


def verdict_screen(conn: Connection, views: list[PacketView], verdict: Verdict) -> Panel:
    last = views[-1]
    states = Group(big_state("client", last.client_state, False), Text(),
                   big_state("server", last.server_state, False))
    lines = [Text(f"• {line}", style="bold") for line in conclusion_lines(verdict)]
    return Panel(Group(states, Text(), *lines), title=f"the end: {len(views)} segments",
                 subtitle="Enter/q: quit   b: back", padding=(1, 2))


def require_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise TcptraceError("--step needs a terminal (stdin and stdout must be a TTY); "
                            "use --speed X or the plain ladder when piping")


def run_stepper(console: Console, conn: Connection, views: list[PacketView],
                verdict: Verdict) -> None:
    """Step through the segments on the alternate screen. The terminal is put in
    cbreak mode (single keys, no echo, Ctrl-C still interrupts) and always restored."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        with console.screen(hide_cursor=True) as screen:
            pos: int | None = 0
            while pos is not None:
                screen.update(segment_screen(console, conn, views, pos)
                              if pos < len(views) else verdict_screen(conn, views, verdict))
                for key in split_keys(os.read(fd, 64).decode("utf-8", "replace")):
                    if pos is not None:
                        pos = step_key(pos, key, len(views))
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# -- --speed ------------------------------------------------------------------------

def waits(views: list[PacketView], speed: float,
          cap: float = MAX_WAIT) -> list[tuple[float, float]]:
    """For each row: (seconds to wait before showing it, the capture's own gap / speed).
    The first is different from the second only when the cap cut it."""
    out = []
    for prev, view in zip([None] + views[:-1], views):
        gap = 0.0 if prev is None else max(view.t - prev.t, 0.0) / speed
        out.append((min(gap, cap), gap))
    return out


def _grid() -> Table:
    """Ladder columns with fixed widths, so rows printed one by one line up."""
    grid = Table.grid(padding=(0, 1))
    for width in (9, 12, ARROW_WIDTH, 12):
        grid.add_column(width=width, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    return grid


def _row(cells: list[RenderableType]) -> Table:
    grid = _grid()
    grid.add_row(*cells)
    return grid


def play(console: Console, conn: Connection, views: list[PacketView], verdict: Verdict,
         speed: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Print the ladder row by row, waiting the capture's gaps divided by `speed`."""
    console.print(f"Playing {len(views)} segments at {speed:g}x the capture's speed "
                  f"(waits capped at {MAX_WAIT:g} s)", style="dim")
    console.print(_row([Text("ms", style="dim"), Text("client"), Text(""), Text("server"),
                        Text("why")]))
    for view, (wait, gap) in zip(views, waits(views, speed)):
        if wait < gap:
            console.print(_row([Text(""), Text(""), Text("⋯".center(ARROW_WIDTH), style="dim"),
                                Text(""), Text(f"{gap * speed:.3f} s in the capture; waiting "
                                               f"{wait:g} s (capped)", style="dim")]))
        if wait > 0:
            sleep(wait)
        why = Text(view.note)
        if view.tags:
            why.append(f"  [{', '.join(view.tags)}]", style="dim")
        for comment in shown_comments(view):
            why.append(f"\n  comment: {comment}", style="italic")
        console.print(_row([Text(f"{view.t * 1000:9.3f}", style="dim"),
                            state_text(view.client_state), arrow(view),
                            state_text(view.server_state), why]))
    console.print()
    for line in conclusion_lines(verdict):
        console.print(f"• {line}")
