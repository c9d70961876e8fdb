"""Workshop presentation of one connection: `--step` (one segment per key press, the
states in letters big enough for the back of the room) and `--speed X` (the ladder's
rows played back with the capture's own timing).

`--step` has the keys of `less` for long connections (g/G first/last, f/F next/previous
FIN or RST, s next state change, :N Enter frame N, ? the keys), shows each segment's
frame number, sizes the letters to the terminal, redraws on resize and leaves the last
slide on the screen. The key handling (`Stepper`, `step_key`, `split_keys`) is pure, so
it is tested without a terminal; only `run_stepper` and its helpers touch the TTY.
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tcptrace.errors import TcptraceError
from tcptrace.model import Connection, PacketView, Verdict
from tcptrace.render.console import ascii_only
from tcptrace.render.ladder import (
    ARROW_WIDTH,
    UNICODE,
    Glyphs,
    arrow,
    conclusion_lines,
    glyphs_for,
    header_line,
    ladder_rows,
    plan_layout,
    row_lines,
    state_text,
    to_ascii,
)
from tcptrace.render.table import shown_comments
from tcptrace.untrusted import shown

NEXT_KEYS = frozenset({"\r", "\n", " ", "n", "\x1b[C", "\x1b[B", "\x1bOC", "\x1bOB", "\x1b[6~"})
BACK_KEYS = frozenset({"b", "p", "\x7f", "\x1b[D", "\x1b[A", "\x1bOD", "\x1bOA", "\x1b[5~"})
QUIT_KEYS = frozenset({"q", "Q", "\x1b", "\x04", ""})    # "": stdin closed
# Home and End differ by terminal: xterm (both cursor modes), then tmux/screen/rxvt.
FIRST_KEYS = frozenset({"g", "<", "\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~"})
LAST_KEYS = frozenset({"G", ">", "\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"})
ENTER_KEYS = frozenset({"\r", "\n"})
ERASE_KEYS = frozenset({"\x7f", "\x08"})
VERDICT_HELP = "Enter/q: quit   b: back   ?: keys"
HELP = "Enter: next  b: back  g/G: first/last  f: FIN/RST  ?: keys  q: quit"
SHORT_HELP = "Enter: next  b: back  ?: keys  q: quit"
KEY_HELP = (
    ("Enter  space  n  → ↓  PgDn", "next segment; after the last, the verdict; then quit"),
    ("b  p  Backspace  ← ↑  PgUp", "previous segment"),
    ("g  Home", "first segment"),
    ("G  End", "last segment (the verdict is one more step)"),
    ("f  /  F", "next / previous segment carrying FIN or RST"),
    ("s", "next segment where either side's state changes"),
    (":N  Enter", "frame N, the capture's own numbering (as tshark's frame.number); "
                  "if this connection has no frame N, the next one after it"),
    ("?", "this list"),
    ("q  Esc", "quit; the last slide stays on the screen"),
)

# What the stepper's own text draws with, for an output that cannot carry it.
_ASCII_TEXT = str.maketrans({"·": "|", "→": "Right", "↓": "Down", "←": "Left", "↑": "Up",
                             "◀": "<", "▏": "_", "⋯": "...", "•": "*"})

MAX_WAIT = 2.0          # s: --speed never waits longer than this between two rows
MAX_SCALE = 6           # big letters: at most 6x the 5-pixel font
ESC_WAIT = 0.05         # s: how long the rest of an escape sequence may take to arrive


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


def _escape_length(chunk: str, i: int) -> int:
    """Length of the key starting at chunk[i]: a CSI (ESC [ digits final) or SS3
    (ESC O x) sequence is one key; an incomplete one is its ESC alone."""
    if chunk.startswith("\x1bO", i) and i + 2 < len(chunk):
        return 3
    if chunk.startswith("\x1b[", i):
        j = i + 2
        while j < len(chunk) and chunk[j] in "0123456789;":
            j += 1
        if j < len(chunk):
            return j + 1 - i
    return 1


def split_keys(chunk: str) -> list[str]:
    """One read may carry several key presses (typing ahead, a held key): each counts.
    An escape sequence (arrows, Home, End, PgUp/PgDn) is one key."""
    keys, i = [], 0
    while i < len(chunk):
        size = _escape_length(chunk, i)
        keys.append(chunk[i:i + size])
        i += size
    return keys


def incomplete_escape(chunk: str) -> bool:
    """Whether `chunk` ends part-way through an escape sequence: a held arrow key can
    fill a read up to the middle of one, and its lone ESC would otherwise quit."""
    tail = chunk[chunk.rfind("\x1b"):] if "\x1b" in chunk else ""
    return tail in ("\x1b", "\x1bO") or (
        tail.startswith("\x1b[") and all(ch in "0123456789;" for ch in tail[2:]))


# -- jumps --------------------------------------------------------------------------

def frame_of(view: PacketView) -> int | None:
    return view.segment.frame if view.segment is not None and view.segment.frame else None


def _closes(view: PacketView) -> bool:
    return "FIN" in view.flags or "RST" in view.flags


def next_close(views: list[PacketView], pos: int) -> int | None:
    return next((i for i in range(pos + 1, len(views)) if _closes(views[i])), None)


def prev_close(views: list[PacketView], pos: int) -> int | None:
    return next((i for i in range(min(pos, len(views)) - 1, -1, -1)
                 if _closes(views[i])), None)


def next_change(views: list[PacketView], pos: int) -> int | None:
    """The next segment after which a side is in another state than before it."""
    return next((i for i in range(max(pos + 1, 1), len(views))
                 if (views[i].client_state, views[i].server_state)
                 != (views[i - 1].client_state, views[i - 1].server_state)), None)


def frame_index(views: list[PacketView], frame: int) -> int | None:
    """The segment with capture frame `frame`, else the one with the nearest frame
    after it (other connections' frames are not in this one), else None."""
    found = [(f, i) for i, v in enumerate(views) if (f := frame_of(v)) and f >= frame]
    return min(found)[1] if found else None


@dataclass
class Stepper:
    """Where `--step` is and what it shows, changed one key at a time (no terminal:
    the tests drive it directly). `typed` is the frame number typed after `:`."""

    views: list[PacketView]
    pos: int = 0
    typed: str | None = None
    help: bool = False
    message: str = ""

    def press(self, key: str) -> bool:
        """Apply one key; False when it quits."""
        self.message = ""
        if self.help:                   # any key closes the help, and does nothing else
            self.help = False
        elif self.typed is not None:
            self._type(key, self.typed)
        elif key == "?":
            self.help = True
        elif key == ":":
            self.typed = ""
        elif key in FIRST_KEYS:
            self.pos = 0
        elif key in LAST_KEYS:
            self.pos = len(self.views) - 1
        elif key in ("f", "F", "s"):
            self._jump(key)
        else:
            pos = step_key(self.pos, key, len(self.views))
            if pos is None:
                return False
            self.pos = pos
        return True

    def _jump(self, key: str) -> None:
        find, missing = {"f": (next_close, "no FIN or RST after this segment"),
                         "F": (prev_close, "no FIN or RST before this segment"),
                         "s": (next_change, "no state change after this segment")}[key]
        target = find(self.views, self.pos)
        if target is None:
            self.message = missing
        else:
            self.pos = target

    def _type(self, key: str, typed: str) -> None:
        """A key while `:N` is typed (`typed` so far): digits, Backspace, Enter to go,
        anything else (Esc) gives up."""
        if key.isdigit() and len(typed) < 12:
            self.typed = typed + key
        elif key in ERASE_KEYS and typed:
            self.typed = typed[:-1]
        elif key in ENTER_KEYS and typed:
            self.goto_frame(int(typed))
            self.typed = None
        else:
            self.typed = None

    def goto_frame(self, frame: int) -> None:
        target = frame_index(self.views, frame)
        frames = [f for v in self.views if (f := frame_of(v))]
        if target is None:
            last = f" (its last is frame {max(frames)})" if frames else ""
            self.message = f"no frame {frame} or later in this connection{last}"
            return
        self.pos = target
        if frame_of(self.views[target]) != frame:
            self.message = (f"frame {frame} is not in this connection: "
                            f"frame {frame_of(self.views[target])} is the next one")

    def bottom(self) -> str:
        """The line at the bottom: the frame number being typed, else what the last
        key could not do, else the keys."""
        if self.typed is not None:
            return f"frame: :{self.typed}▏  (Enter: go, Esc: cancel)"
        return self.message or HELP


# -- big letters --------------------------------------------------------------------

# A 5-pixel-high font for the state names, drawn two pixel rows per line with half
# blocks: 3 lines of text at scale 1, readable on a projector without changing the
# font size; bigger terminals get each pixel scaled up.
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


def plain(text: str, ascii: bool) -> str:
    return to_ascii(text.translate(_ASCII_TEXT)) if ascii else text


def big_lines(word: str, scale: int = 1, ascii: bool = False) -> list[str] | None:
    """`word` in the big font, each pixel `scale` columns wide and high, as
    ceil(5 * scale / 2) lines of text (`ascii`: 5 * scale lines of '#', as half blocks
    are not ASCII); None if it has a letter the font lacks."""
    if not word or any(ch not in _FONT for ch in word):
        return None
    rows = [" ".join(_FONT[ch][r] for ch in word) for r in range(5)]
    rows = ["".join(px * scale for px in row) for row in rows for _ in range(scale)]
    if ascii:
        return rows
    if len(rows) % 2:
        rows.append(" " * len(rows[0]))
    return ["".join(_HALF[a, b] for a, b in zip(rows[r], rows[r + 1], strict=True))
            for r in range(0, len(rows), 2)]


def big_width(word: str, scale: int = 1) -> int:
    lines = big_lines(word, scale)     # the ASCII letters are as wide
    return len(lines[0]) if lines else len(word)


def letter_scale(views: list[PacketView], width: int, height: int,
                 ascii: bool = False) -> int:
    """The one letter size for the whole connection (letters that change size from
    slide to slide are hard to follow): the largest whose widest pair of states fits
    `width`, stacked if not side by side, in under half of `height`. 0: even scale 1
    is too wide, the states are plain text."""
    pairs = {(v.client_state, v.server_state) for v in views}
    for scale in range(MAX_SCALE, 0, -1):
        letter = big_lines("A", scale, ascii)
        assert letter is not None       # "A" is in the font
        tall = len(letter)
        side = all(big_width(c, scale) + big_width(s, scale) + 4 <= width for c, s in pairs)
        fits = all(max(big_width(c, scale), big_width(s, scale)) <= width for c, s in pairs)
        rows = 1 + tall if side else 3 + 2 * tall
        if fits and (rows <= height * 0.45 or scale == 1):
            return scale
    return 0


def _big_style(state: str) -> str:
    # The ladder dims CLOSED; bold+dim is faint on a projector, so big letters are bold.
    style = str(state_text(state).style or "")
    return "bold" if style == "dim" else f"bold {style}"


def big_state(side: str, state: str, changed: bool, scale: int = 1,
              ascii: bool = False) -> Text:
    style = _big_style(state)
    text = Text(f"{side}" + ("  (changed)" if changed else ""), style="bold" if changed else "dim")
    lines = big_lines(state, scale, ascii) if scale else None
    if lines is None:
        text.append(f"\n{state}", style=style)
    for line in lines or ():
        text.append("\n" + line, style=style)
    return text


# -- --step screens -----------------------------------------------------------------

def _inner(console: Console) -> int:
    return console.width - 6                    # panel borders and padding


def _states(client: Text, server: Text, inner: int) -> RenderableType:
    if _width(client) + _width(server) + 4 <= inner:
        grid = Table.grid(padding=(0, 4))
        grid.add_row(client, server)
        return grid
    return Group(client, Text(), server)


def comment_lines(view: PacketView, ascii: bool = False) -> list[Text]:
    """pcapng comments, each shown once: one that repeats the note is left out, and one
    that extends it (`close --save` adds the kernel's reason) shows only what it adds."""
    out = []
    for comment in shown_comments(view):
        if view.note and comment.startswith(view.note):
            extra = comment[len(view.note):].lstrip(" ;,:—-")
            if extra:
                out.append(Text(plain(f"pcapng comment adds: {shown(extra)}", ascii),
                                "italic"))
        else:
            out.append(Text(plain(f"pcapng comment: {shown(comment)}", ascii), "italic"))
    return out


def segment_screen(console: Console, conn: Connection, views: list[PacketView],
                   pos: int, bottom: str = HELP, fill: bool = True,
                   scale: int | None = None) -> Panel:
    """Segment `pos`, big; below it, as many of the ladder's rows up to it as fit.
    `fill`: as tall as the terminal, `bottom` on its last line."""
    view, inner = views[pos], _inner(console)
    ascii, glyphs = ascii_only(console), glyphs_for(console)
    before = views[pos - 1] if pos else None
    if scale is None:
        scale = letter_scale(views, inner, console.height, ascii)
    sides = [big_state(side, state, before is not None and state != old, scale, ascii)
             for side, state, old in (
                 ("client", view.client_state, before and before.client_state),
                 ("server", view.server_state, before and before.server_state))]
    ends = Text(plain(f"client {conn.client}  ·  server {conn.server}", ascii), "dim")
    if conn.roles_guessed:
        ends.append(plain(f"\nroles guessed: {conn.roles_guessed}", ascii), "yellow")
    parts: list[RenderableType] = [
        ends, arrow(view, ARROW_WIDTH, glyphs), Text(), _states(sides[0], sides[1], inner), Text(),
        Text(plain(view.note, ascii), style="bold")]
    if view.tags:
        parts.append(Text(f"[{', '.join(view.tags)}]", style="dim"))
    parts += comment_lines(view, ascii)
    used = len(console.render_lines(Group(*parts), console.options.update_width(inner)))
    room = console.height - used - 6            # borders, padding, the blank line
    if room > 0:
        parts += [Text(), _ladder_so_far(views, pos, room, inner, glyphs)]
    frame = frame_of(view)
    title = (f"segment {pos + 1} of {len(views)}" + (f"  ·  frame {frame}" if frame else "")
             + f"  ·  {view.t * 1000:.3f} ms")
    if bottom == HELP and cell_len(HELP) > inner:
        bottom = SHORT_HELP
    return Panel(Group(*parts), title=plain(title, ascii), subtitle=plain(bottom, ascii),
                 padding=(1, 2), box=glyphs.box, height=console.height if fill else None)


def _width(text: Text) -> int:
    return max(cell_len(line) for line in text.plain.split("\n"))


def _ladder_so_far(views: list[PacketView], pos: int, rows: int, inner: int = 200,
                   glyphs: Glyphs = UNICODE) -> Table:
    """The last `rows` ladder rows up to segment `pos`, one line each, `pos` marked;
    columns are left out, least useful first, until the rest fits `inner` uncut (at 80
    columns there is no room for the time and the marker, narrower not for states)."""
    states = 12 + 1 + ARROW_WIDTH + 1 + 12 <= inner
    width = (12 + 1 + ARROW_WIDTH + 1 + 12) if states else ARROW_WIDTH
    timed = states and width + 10 <= inner
    marked = width + (10 if timed else 0) + 6 <= inner
    grid = Table.grid(padding=(0, 1))
    for column in ([9] if timed else []) + ([12, ARROW_WIDTH, 12] if states else [ARROW_WIDTH]):
        grid.add_column(width=column, no_wrap=True)
    if marked:
        grid.add_column(no_wrap=True)
    for i in range(max(0, pos - rows + 1), pos + 1):
        v = views[i]
        cells = [arrow(v, ARROW_WIDTH, glyphs)]
        if states:
            cells = [state_text(v.client_state), *cells, state_text(v.server_state)]
        if timed:
            cells.insert(0, Text(f"{v.t * 1000:9.3f}"))
        if marked:
            cells.append(Text(f"{glyphs.left} now" if i == pos else ""))
        grid.add_row(*cells, style="" if i == pos else "dim")
    return grid


def verdict_screen(conn: Connection, views: list[PacketView], verdict: Verdict,
                   console: Console | None = None, fill: bool = True,
                   bottom: str = VERDICT_HELP) -> Panel:
    last, ascii = views[-1], console is not None and ascii_only(console)
    glyphs = glyphs_for(console) if console is not None else UNICODE
    scale = letter_scale(views, _inner(console), console.height, ascii) if console else 1
    states = Group(big_state("client", last.client_state, False, scale, ascii), Text(),
                   big_state("server", last.server_state, False, scale, ascii))
    lines = [Text(plain(f"• {line}", ascii), style="bold")
             for line in conclusion_lines(verdict)]
    return Panel(Group(states, Text(), *lines), title=f"the end: {len(views)} segments",
                 subtitle=bottom, padding=(1, 2), box=glyphs.box,
                 height=console.height if console is not None and fill else None)


def help_screen(console: Console) -> Panel:
    ascii = ascii_only(console)
    grid = Table.grid(padding=(0, 3))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(ratio=1)
    for keys, what in KEY_HELP:
        grid.add_row(plain(keys, ascii), plain(what, ascii))
    return Panel(grid, title="--step: keys, as in less", subtitle="any key: back",
                 padding=(1, 2), box=glyphs_for(console).box, height=console.height)


def slide(console: Console, conn: Connection, views: list[PacketView], verdict: Verdict,
          stepper: Stepper, fill: bool = True) -> Panel:
    """What the stepper shows now; `fill=False`: at its own height, for the normal
    screen after quitting."""
    if stepper.help and fill:
        return help_screen(console)
    bottom = stepper.bottom()
    if stepper.pos >= len(views):
        return verdict_screen(conn, views, verdict, console, fill,
                              VERDICT_HELP if bottom == HELP else bottom)
    return segment_screen(console, conn, views, stepper.pos, bottom, fill)


def require_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise TcptraceError("--step needs a terminal (stdin and stdout must be a TTY); "
                            "use --speed X or the plain ladder when piping")


@contextmanager
def resize_wakeup() -> Iterator[int]:
    """A file descriptor that becomes readable when the terminal is resized: SIGWINCH
    would not interrupt the blocking read of the keys (PEP 475 retries it), so the
    signal wakes a select() through signal.set_wakeup_fd instead."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    os.set_blocking(read_end, False)
    old_handler = signal.signal(signal.SIGWINCH, lambda *_: None)
    old_fd = signal.set_wakeup_fd(write_end)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGWINCH, old_handler)
        os.close(read_end)
        os.close(write_end)


def read_keys(fd: int, wake: int, decoder) -> list[str] | None:
    """The keys typed (all of them: typing ahead counts), or None when the terminal
    was resized. An escape sequence cut by the end of a read is completed first."""
    ready, _, _ = select.select([fd, wake], [], [])
    if wake in ready:
        try:
            os.read(wake, 512)              # the signal numbers: only "it happened" counts
        except BlockingIOError:
            pass
        return None
    chunk = decoder.decode(os.read(fd, 1024))
    if not chunk and not decoder.buffer:
        return [""]                         # end of input: quit
    while incomplete_escape(chunk) and select.select([fd], [], [], ESC_WAIT)[0]:
        chunk += decoder.decode(os.read(fd, 1024))
    return split_keys(chunk)


def _fit_to_terminal(console: Console) -> None:
    # The console was sized when the command started; the stepper follows the window.
    size = os.get_terminal_size(sys.stdout.fileno())
    console.size = (size.columns, size.lines)


def run_stepper(console: Console, conn: Connection, views: list[PacketView],
                verdict: Verdict) -> None:
    """Step through the segments on the alternate screen, then leave the last slide on
    the normal screen. The terminal is put in cbreak mode (single keys, no echo, Ctrl-C
    still interrupts) and always restored."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    stepper = Stepper(views)
    leave_slide = False
    try:
        tty.setcbreak(fd)
        with resize_wakeup() as wake, console.screen(hide_cursor=True):
            _fit_to_terminal(console)
            _step_loop(console, conn, views, verdict, stepper, fd, wake)
        leave_slide = True
    except KeyboardInterrupt:
        leave_slide = True                  # Ctrl-C quits too: the slide stays as with q
        raise
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if leave_slide:                     # not after an error: its message matters more
            _leave_slide(console, conn, views, verdict, stepper)


def _leave_slide(console: Console, conn: Connection, views: list[PacketView],
                 verdict: Verdict, stepper: Stepper) -> None:
    """The slide the stepper ended on, on the normal screen (the alternate one is gone),
    two lines shorter than the terminal so that the shell's prompt does not scroll its
    top border away."""
    stepper.help, stepper.typed, stepper.message = False, None, ""
    console.size = (console.width, max(console.height - 2, 12))
    console.print(slide(console, conn, views, verdict, stepper, fill=False))


def _step_loop(console: Console, conn: Connection, views: list[PacketView],
               verdict: Verdict, stepper: Stepper, fd: int, wake: int) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        console.update_screen(slide(console, conn, views, verdict, stepper))
        keys = read_keys(fd, wake, decoder)
        if keys is None:                    # resized: the old frame may have reflowed
            _fit_to_terminal(console)
            console.clear()
        for key in keys or ():
            if not stepper.press(key):
                return


# -- --speed ------------------------------------------------------------------------

def waits(views: list[PacketView], speed: float,
          cap: float = MAX_WAIT) -> list[tuple[float, float]]:
    """For each row: (seconds to wait before showing it, the capture's own gap / speed).
    The first is different from the second only when the cap cut it."""
    out = []
    prev: PacketView | None = None
    for view in views:
        gap = 0.0 if prev is None else max(view.t - prev.t, 0.0) / speed
        out.append((min(gap, cap), gap))
        prev = view
    return out


def play(console: Console, conn: Connection, views: list[PacketView], verdict: Verdict,
         speed: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Print the ladder row by row, waiting the capture's gaps divided by `speed`. The
    rows are the ladder's own (frame numbers, explanations under the arrow when the
    width asks for it), laid out once for the whole connection so they line up."""
    ascii, glyphs = ascii_only(console), glyphs_for(console)
    console.print(f"Playing {len(views)} segments at {speed:g}x the capture's speed "
                  f"(waits capped at {MAX_WAIT:g} s)", style="dim")
    kept = [replace(v, comments=shown_comments(v)) for v in views]
    rows = ladder_rows(kept)
    layout = plan_layout(rows, console.width, glyphs)
    console.print(header_line(layout))
    for row, (wait, gap) in zip(rows, waits(views, speed), strict=True):
        if wait < gap:
            console.print(Text(" " * layout.arrow_start
                               + plain(f"⋯ {gap * speed:.3f} s in the capture; waiting "
                                       f"{wait:g} s (capped)", ascii), style="dim"))
        if wait > 0:
            sleep(wait)
        for line in row_lines(console, row, layout):
            console.print(line)
    console.print()
    for sentence in conclusion_lines(verdict):
        console.print(plain(f"• {sentence}", ascii))
