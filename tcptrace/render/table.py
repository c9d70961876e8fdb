"""What `tcptrace replay` prints around the ladder: the connections table of a capture
with several connections and the header above one connection's ladder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tcptrace.engine import plain_table
from tcptrace.model import Connection, PacketView, Verdict
from tcptrace.render.ladder import (
    UNICODE,
    Glyphs,
    close_part,
    glyphs_for,
    header_panel,
    print_wrapped,
    render_connection,
    state_text,
    text_for,
)
from tcptrace.replay import Listing
from tcptrace.untrusted import shown

HEADER = ("stream", "client", "server", "vlan", "tunnel", "segs", "how it closed",
          "first closer", "client final", "server final", "conn_state")
VLAN = HEADER.index("vlan")
TUNNEL = HEADER.index("tunnel")     # tunnels and MPLS labels (engine: encap.rs)
RIGHT = ("stream", "segs")
# When the table is wider than the console, whole columns are left out, these first
# (one group at a time): Zeek's code (also in `summary`), then both final states,
# then the first closer. Stream, endpoints, VLAN tags, segments and how it closed
# always stay: without them no row can be found again with --stream N. They are the
# table's last columns, so the plain table (engine-made) drops them by cutting lines.
DROP_ORDER = (("conn_state",), ("client final", "server final"), ("first closer",))
# Beyond this many rows the table is written as plain aligned text: rich lays out a
# table cell by cell (about a second per thousand rows), and nobody reads colours in a
# hundred thousand lines.
PLAIN_ROWS = 2000

# Zeek's conn_state codes (its conn.log documentation), for the table's legend.
ZEEK_STATES = {
    "S0": "a SYN, no reply", "S1": "established, not closed",
    "SF": "established and closed normally (FINs)", "REJ": "SYN answered by RST (refused)",
    "S2": "established; only the client tried to close", "S3":
    "established; only the server tried to close", "RSTO": "established, client sent RST",
    "RSTR": "established, server sent RST", "RSTOS0": "client sent SYN then RST, no SYN-ACK",
    "RSTRH": "server sent SYN-ACK then RST, no SYN seen", "SH": "client sent SYN then FIN, "
    "no SYN-ACK", "SHR": "server sent SYN-ACK then FIN, no SYN seen",
    "OTH": "no SYN seen: midstream traffic"}


def _row_cells(listing: Listing) -> tuple[tuple[str, ...], list[list[str]]]:
    """Header and rows as strings (the engine's cells), the VLAN and tunnel columns
    only when some connection has a tag or a tunnel."""
    rows = [row.cells for row in listing.rows]
    shown = [i for i in range(len(HEADER))
             if i not in (VLAN, TUNNEL) or any(cells[i] != "-" for cells in rows)]
    return tuple(HEADER[i] for i in shown), [[c[i] for i in shown] for c in rows]


def _span(widths: dict[str, int]) -> int:
    return sum(widths.values()) + 2 * (len(widths) - 1)


def _drop(widths: dict[str, int], width: int) -> tuple[dict[str, int], list[str]]:
    """Whole columns left out in DROP_ORDER until the table fits `width` (or only the
    ones that always stay are left)."""
    kept = dict(widths)
    for group in DROP_ORDER:
        if _span(kept) <= width:
            break
        kept = {c: w for c, w in kept.items() if c not in group}
    return kept, [c for c in widths if c not in kept]


def fit_columns(widths: dict[str, int], width: int) -> tuple[list[str], list[str], bool]:
    """(columns kept, columns left out, endpoints stacked). When even the columns that
    always stay are too wide, the client and the server share one column, one above
    the other, and columns are left out again for that narrower table."""
    kept, dropped = _drop(widths, width)
    if _span(kept) <= width:
        return list(kept), dropped, False
    merged = {c: (max(w, widths["server"]) if c == "client" else w)
              for c, w in widths.items() if c != "server"}
    kept, dropped = _drop(merged, width)
    names = [c for c in widths if c in kept or c == "server"]
    return names, dropped, True


def connections_table(listing: Listing, width: int = 1000,
                      glyphs: Glyphs = UNICODE) -> tuple[Table, list[str], int]:
    """The table for `width` columns, the columns left out, and the width that shows
    them all."""
    header, rows = _row_cells(listing)
    widths = {name: max([len(name)] + [len(c[i]) for c in rows])
              for i, name in enumerate(header)}
    kept, dropped, stacked = fit_columns(widths, width)
    table = Table(box=None, pad_edge=False, header_style="bold")
    names = [n for n in kept if not (stacked and n == "server")]
    for name in names:
        title = f"client {glyphs.to} server" if stacked and name == "client" else name
        table.add_column(title, justify="right" if name in RIGHT else "left",
                         no_wrap=name != "how it closed", overflow="fold")
    index = {name: header.index(name) for name in names}
    for cells in rows:
        # Text, never markup: "[fd00::1]:80" would read as a rich style tag.
        styled = [state_text(cells[i]) if n.endswith(" final") else Text(cells[i])
                  for n, i in index.items()]
        if stacked:
            client = names.index("client")
            styled[client] = Text(f"{cells[index['client']]}\n{cells[header.index('server')]}")
        table.add_row(*styled)
    return table, dropped, _span(widths)


def _fit_plain(text: str, shown: list[str], width: int) -> tuple[str, list[str], int]:
    """The engine's plain table cut to `width`: the columns to leave out are its last
    ones (DROP_ORDER), so each line is cut where the first of them starts; if the
    kept ones are still too wide, the server and what follows go on a second line
    under the client."""
    head = text[:text.find("\n")]
    starts = {name: head.find(name) for name in shown}   # every name is unique in head
    widths = {a: starts[b] - starts[a] - 2 for a, b in pairwise(shown)}
    widths[shown[-1]] = len(head) - starts[shown[-1]]
    kept, dropped = _drop(widths, width)
    stacked = _span(kept) > width
    lines = text.split("\n")
    if dropped:
        cut = min(starts[name] for name in dropped)
        lines = [line[:cut].rstrip() for line in lines]
    if stacked:
        split, indent = starts["server"], " " * starts["client"]
        lines = [f"{line[:split].rstrip()}\n{indent}{line[split:]}" if line else line
                 for line in lines]
    return "\n".join(lines), dropped, _span(widths)


def write_plain_table(out, listing: Listing, width: int = 1000) -> tuple[list[str], int]:
    """The connections table as aligned plain text, laid out by the engine in one
    string (a hundred thousand rows in Python cost more than reading the capture),
    then fitted to `width`. Returns the columns left out and the width for all."""
    right = [HEADER.index(name) for name in RIGHT]
    text = plain_table([row.raw for row in listing.rows], HEADER, right, [VLAN, TUNNEL])
    shown = [name for name in HEADER if name in text[:text.find("\n")]]
    fitted, dropped, full = _fit_plain(text, shown, width)
    out.write(fitted)
    return dropped, full


def _zeek_codes(listing: Listing) -> list[str]:
    """The conn_state codes the table shows, in ZEEK_STATES order."""
    codes = {row.raw.verdict[7] for row in listing.rows}
    return [code for code in ZEEK_STATES if code in codes]


def render_listing(console: Console, listing: Listing, legend: bool = True) -> None:
    n, g = len(listing.rows), glyphs_for(console)
    print_wrapped(console, f"tcptrace replay {shown(listing.path)}   {n:,} TCP connections", g)
    console.print()
    if n > PLAIN_ROWS:
        console.file.flush()
        dropped, full = write_plain_table(console.file, listing, console.width)
    else:
        table, dropped, full = connections_table(listing, console.width, g)
        console.print(table)
    console.print()
    if any(row.roles_guessed for row in listing.rows):
        print_wrapped(console, "* no SYN seen: which side is the client is a guess "
                      "(--stream N says how it was guessed)", g)
    if dropped:
        print_wrapped(console, f"Left out at {console.width} columns: {', '.join(dropped)} "
                      f"(--width {full} shows every column)", g)
    print_wrapped(console, f"Show one connection's ladder: tcptrace replay {shown(listing.path)} "
                  f"--stream N  (N = 0..{n - 1}); --step to walk through it", g)
    if legend and "conn_state" not in dropped:
        console.print()
        print_wrapped(console, "conn_state (Zeek's codes):", g, style="dim")
        for code in _zeek_codes(listing):
            print_wrapped(console, ZEEK_STATES[code], g, f"  {code:<6}  ", style="dim")


def replay_header(path: str, index: int, count: int, conn: Connection,
                  glyphs: Glyphs = UNICODE) -> Panel:
    where = f"   stream {index} of {count} (0..{count - 1})" if count > 1 else ""
    lines = [Text.assemble(("tcptrace replay ", "bold"), text_for(glyphs, shown(path), "bold cyan"),
                           where),
             Text(f"client {conn.client}  {glyphs.to}  server {conn.server}"
                  + (f"   VLAN {'.'.join(map(str, conn.vlan))}" if conn.vlan else ""))]
    if conn.encap:
        lines.append(Text(f"in {' / '.join(conn.encap)}"))
    if conn.roles_guessed:
        lines.append(text_for(glyphs, f"Roles guessed ({conn.roles_guessed})", "yellow"))
    lines.append(Text("States inferred from the segments, as seen from a capture point "
                      "next to both ends", style="dim"))
    return header_panel(glyphs, lines)


def shown_comments(view: PacketView) -> tuple[str, ...]:
    """The pcapng comments worth showing: `tcptrace close --save` stores each row's
    note as its comment, so a comment equal to today's note is not repeated."""
    return tuple(c for c in view.comments if c != view.note)


def render_replay(console: Console, path: str, index: int, count: int, conn: Connection,
                  views: list[PacketView], verdict: Verdict, legend: bool = True,
                  only_close: bool = False, findings: Sequence[str] = ()) -> None:
    """One connection's header and ladder; `only_close`: from just before the first
    FIN or RST (ladder.close_part), saying how many segments that leaves out."""
    console.print(replay_header(path, index, count, conn, glyphs_for(console)))
    views = [replace(v, comments=shown_comments(v)) for v in views]
    skipped = 0
    if only_close:
        views, skipped = close_part(views)
    render_connection(console, conn, views, verdict, legend=legend, skipped=skipped,
                      findings=findings)
