"""`tcptrace replay`: a capture file in, connection rows or one connection's ladder out.

One pass, front to back (so FILE may be `-` or a FIFO): the engine hands over every
connection's verdict and counts, and keeps the segments of the one connection the
ladder may show (`--stream N`, or stream 0 in case the capture holds only one). Memory
follows the connections open at once plus that one connection, never the file size.
`--json` of a whole capture streams: each connection is written as the engine is done
with it (see engine.LINGER), with its segments, and then forgotten.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from tcptrace.annotate import relative_views
from tcptrace.engine import ConnectionSummary, Progress, Scan, summary_of
from tcptrace.errors import TcptraceError
from tcptrace.model import Connection, PacketView, Verdict


class ConnectionRow:
    """One line of the connections table: its cells as the engine wrote them. The
    connection and verdict objects are built only when asked for: a listing of a big
    capture has a hundred thousand rows and shows only their cells."""

    __slots__ = ("index", "raw")

    def __init__(self, raw):
        self.raw = raw                  # the engine's record
        self.index: int = raw.stream    # 0-based, in order of first appearance

    @property
    def cells(self) -> list[str]:
        """stream, client, server (marked * when the roles are a guess), VLAN stack,
        segments, how it closed, first closer, client final, server final, conn_state."""
        return self.raw.cells()

    @property
    def roles_guessed(self) -> bool:
        return self.raw.roles_guessed is not None

    @property
    def conn(self) -> Connection:
        """Endpoints, VLAN stack, roles; no segments."""
        return summary_of(self.raw).conn

    @property
    def verdict(self) -> Verdict:
        return summary_of(self.raw).verdict

    @property
    def packets(self) -> int:
        return self.raw.packets


@dataclass
class Listing:
    path: str
    rows: list[ConnectionRow]
    warnings: list[str]     # where damaged input was skipped or reading stopped
    kept: ConnectionSummary | None  # the connection whose segments were kept
    # Frames that may hold TCP the engine could not reach: (why, how many).
    skipped: list[tuple[str, int]] = field(default_factory=list)


def list_connections(path: str | os.PathLike, keep: int = 0,
                     progress: Progress | None = None,
                     vxlan_ports: Sequence[int] = ()) -> Listing:
    """Every connection's verdict, in order of first appearance, and connection `keep`
    with its segments and steps."""
    scan = Scan(path, keep=keep, progress=progress, vxlan_ports=vxlan_ports)
    rows, kept = [], None
    for raw in scan.raw():
        rows.append(ConnectionRow(raw))
        if raw.stream == keep:
            kept = summary_of(raw)
    scan.require_connections()
    rows.sort(key=lambda row: row.index)
    return Listing(os.fspath(path), rows, scan.warnings, kept, scan.skipped)


def skipped_text(skipped: list[tuple[str, int]]) -> str:
    """'3 frames that may hold TCP were skipped: 2 IP fragments after the first (not
    reassembled), 1 GRE carrying protocol 0x880b not followed'."""
    total = sum(n for _, n in skipped)
    parts = ", ".join(f"{n:,} {why}" for why, n in skipped)
    return (f"{total:,} frame{'s' if total != 1 else ''} that may hold TCP "
            f"{'were' if total != 1 else 'was'} skipped: {parts}")


def kept_stream(listing: Listing, index: int) -> ConnectionSummary:
    """Connection `index` with its segments and steps: the listing must have been made
    with keep=index. An index out of range is the user's error."""
    n = len(listing.rows)
    if not 0 <= index < n:
        valid = "0 is the only one" if n == 1 else f"valid: 0..{n - 1}"
        raise TcptraceError(f"--stream {index} is out of range: {listing.path} has {n} TCP "
                            f"connection{'s' if n != 1 else ''} ({valid})")
    # Streams are numbered 0..n-1, so an index in range was seen; it is kept only if
    # the listing was asked to keep it.
    if listing.kept is None or listing.kept.stream != index:
        raise ValueError(f"the listing of {listing.path} did not keep stream {index}")
    return listing.kept


def analyse(summary: ConnectionSummary) -> tuple[list[PacketView], Verdict]:
    """A kept connection's ladder rows and its verdict."""
    return relative_views(summary.conn, summary.initial, summary.steps or []), summary.verdict


def first_close(listing: Listing) -> int:
    """The stream an export of a capture with several connections shows when none is
    asked for: the first (in order of appearance) that a FIN or RST closed, else 0."""
    return next((row.index for row in listing.rows if row.verdict.close in ("fin", "rst")), 0)
