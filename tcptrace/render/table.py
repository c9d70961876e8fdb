"""What `tcptrace replay` prints around the ladder: the connections table of a capture
with several connections, the header above one connection's ladder, and a progress bar
while a big file is read."""

from __future__ import annotations

import time
from dataclasses import replace

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from tcptrace.engine import plain_table
from tcptrace.model import Connection, PacketView, Verdict
from tcptrace.render.ladder import render_connection, state_text
from tcptrace.replay import Listing

# The bar appears at once for a file this big, otherwise once reading has taken SLOW s.
BIG_FILE = 20 << 20
SLOW = 0.5

HEADER = ("stream", "client", "server", "vlan", "segs", "how it closed", "first closer",
          "client final", "server final", "conn_state")
VLAN = HEADER.index("vlan")
# Beyond this many rows the table is written as plain aligned text: rich lays out a
# table cell by cell (about a second per thousand rows), and nobody reads colours in a
# hundred thousand lines.
PLAIN_ROWS = 2000


def _row_cells(listing: Listing) -> tuple[tuple[str, ...], list[list[str]]]:
    """Header and rows as strings (the engine's cells), the VLAN column only when some
    connection has a tag."""
    rows = [row.cells for row in listing.rows]
    if any(cells[VLAN] != "-" for cells in rows):
        return HEADER, rows
    return HEADER[:VLAN] + HEADER[VLAN + 1:], [c[:VLAN] + c[VLAN + 1:] for c in rows]


def connections_table(listing: Listing) -> Table:
    header, rows = _row_cells(listing)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in header:
        table.add_column(name, justify="right" if name in ("stream", "segs") else "left",
                         no_wrap=name in ("client", "server", "client final", "server final"))
    finals = [header.index("client final"), header.index("server final")]
    for cells in rows:
        styled = [state_text(c) if i in finals else c for i, c in enumerate(cells)]
        table.add_row(*styled)
    return table


def write_plain_table(out, listing: Listing) -> None:
    """The connections table as aligned plain text, laid out by the engine in one
    string (a hundred thousand rows in Python cost more than reading the capture)."""
    right = [HEADER.index("stream"), HEADER.index("segs")]
    out.write(plain_table([row.raw for row in listing.rows], HEADER, right, [VLAN]))


def render_listing(console: Console, listing: Listing) -> None:
    n = len(listing.rows)
    console.print(Text.assemble(("tcptrace replay ", "bold"), (listing.path, "bold cyan"),
                                f"   {n:,} TCP connections"))
    console.print()
    if n > PLAIN_ROWS:
        console.file.flush()
        write_plain_table(console.file, listing)
    else:
        console.print(connections_table(listing))
    console.print()
    if any(row.roles_guessed for row in listing.rows):
        console.print("* no SYN seen: which side is the client is a guess "
                      "(--stream N says how it was guessed)")
    console.print(f"Show one connection's ladder: tcptrace replay {listing.path} "
                  f"--stream N  (N = 0..{n - 1}); --step to walk through it")


def replay_header(path: str, index: int, count: int, conn: Connection) -> Panel:
    lines = [Text.assemble(("tcptrace replay ", "bold"), (path, "bold cyan"),
                           f"   stream {index} of {count} (0..{count - 1})" if count > 1 else ""),
             Text(f"client {conn.client}  →  server {conn.server}"
                  + (f"   VLAN {'.'.join(map(str, conn.vlan))}" if conn.vlan else ""))]
    if conn.roles_guessed:
        lines.append(Text(f"Roles guessed ({conn.roles_guessed})", style="yellow"))
    lines.append(Text("States inferred from the segments, as seen from a capture point "
                      "next to both ends", style="dim"))
    return Panel(Group(*lines), expand=False)


def shown_comments(view: PacketView) -> tuple[str, ...]:
    """The pcapng comments worth showing: `tcptrace close --save` stores each row's
    note as its comment, so a comment equal to today's note is not repeated."""
    return tuple(c for c in view.comments if c != view.note)


def render_replay(console: Console, path: str, index: int, count: int, conn: Connection,
                  views: list[PacketView], verdict: Verdict) -> None:
    console.print(replay_header(path, index, count, conn))
    views = [replace(v, comments=shown_comments(v)) for v in views]
    render_connection(console, conn, views, verdict)


def show_progress(size: int, elapsed: float) -> bool:
    return size > BIG_FILE or elapsed > SLOW


class ReadProgress:
    """A transient bar on stderr while a file is read, for reads that take more than a
    moment; never when stderr is not a terminal (a bar in a log is noise). Call it with
    (bytes read, size); use as a context manager so the bar is removed at the end."""

    def __init__(self, console: Console, label: str):
        self.console, self.label = console, label
        self.start = time.monotonic()
        self._bar: Progress | None = None
        self._task = None

    def __call__(self, done: int, size: int) -> None:
        if self._bar is None:
            if not (self.console.is_terminal
                    and show_progress(size, time.monotonic() - self.start)):
                return
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 DownloadColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=size)
        self._bar.update(self._task, completed=done)

    def __enter__(self) -> "ReadProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
