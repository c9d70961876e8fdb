"""`tcptrace replay`: a capture file in, connection rows or one connection's ladder out.

Memory: listing the connections streams the file once through one cheap observer per
connection (`feed(..., annotate=False)`), keeping no segments, so memory grows with the
number of connections, never with the number of segments. Showing one connection
reads the file a second time and keeps only that connection's segments: the second
pass costs what the first did (about a second per 100,000 packets) and keeps one code
path for small and huge files alike. Only `--json` without `--stream` holds every
segment of every connection, as its output does.

An observer needs the roles before its first segment, and the roles are only final at
the end of the file (a SYN may turn up after the first segment). The listing starts
each observer with the roles known at the connection's first segment; for the rare
connection whose roles change later, it runs a fresh observer in a second pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

from .annotate import relative_views
from .connections import ConnectionGrouper, group_connections
from .decode import decode_segment
from .errors import TcptraceError
from .model import Connection, PacketView, Segment, Verdict
from .observer import ConnectionObserver
from .pcapfile import CaptureReader
from .verdict import classify

# Called now and then while a file is read, with (bytes read, file size).
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 4096   # records between two progress calls: cheap, yet several a second


@dataclass
class ConnectionRow:
    """One line of the connections table."""

    index: int              # 0-based, in order of first appearance (`--stream N`)
    conn: Connection        # endpoints, VLAN stack, roles; no segments
    packets: int
    verdict: Verdict


@dataclass
class Listing:
    path: str
    rows: list[ConnectionRow]
    warnings: list[str]     # where damaged input was skipped or reading stopped


def list_connections(path: str | os.PathLike, progress: Progress | None = None) -> Listing:
    """Every connection's verdict in one streaming pass (two if some roles changed)."""
    reader = CaptureReader(path)
    grouper = ConnectionGrouper(keep_segments=False)
    observers: list[ConnectionObserver] = []
    clients: list[tuple[str, int]] = []     # the client each observer was started with
    for seg in _segments(reader, progress):
        i = grouper.add(seg)
        if i == len(observers):
            clients.append(grouper.roles(i)[0])
            observers.append(ConnectionObserver(*clients[i]))
        observers[i].feed(seg, annotate=False)
    conns = grouper.connections()
    _require(conns, reader)
    stale = {i: ConnectionObserver.for_connection(conn) for i, conn in enumerate(conns)
             if clients[i] != (conn.client_ip, conn.client_port)}
    if stale:
        again = ConnectionGrouper(keep_segments=False)
        for seg in _segments(CaptureReader(path), progress):
            observer = stale.get(again.add(seg))
            if observer is not None:
                observer.feed(seg, annotate=False)
        for i, observer in stale.items():
            observers[i] = observer
    rows = [ConnectionRow(i, conn, observers[i].packets, classify(conn, observers[i]))
            for i, conn in enumerate(conns)]
    return Listing(str(path), rows, reader.warnings)


def check_stream(listing: Listing, index: int) -> None:
    n = len(listing.rows)
    if not 0 <= index < n:
        valid = "0 is the only one" if n == 1 else f"valid: 0..{n - 1}"
        raise TcptraceError(f"--stream {index} is out of range: {listing.path} has {n} TCP "
                            f"connection{'s' if n != 1 else ''} ({valid})")


def load_connection(path: str | os.PathLike, index: int,
                    progress: Progress | None = None) -> Connection:
    """Connection `index` (as numbered by `list_connections`) with all its segments."""
    grouper = ConnectionGrouper(keep_segments=False)
    segments = [seg for seg in _segments(CaptureReader(path), progress)
                if grouper.add(seg) == index]
    conn = grouper.connections()[index]
    conn.segments = segments
    return conn


def load_all(path: str | os.PathLike,
             progress: Progress | None = None) -> tuple[list[Connection], list[str]]:
    """Every connection with its segments (for `--json` of a whole file)."""
    reader = CaptureReader(path)
    conns = group_connections(_segments(reader, progress))
    _require(conns, reader)
    return conns, reader.warnings


def analyse(conn: Connection) -> tuple[list[PacketView], Verdict]:
    """The ladder rows and the verdict, from one observer run."""
    observer = ConnectionObserver.for_connection(conn)
    steps = [observer.feed(seg) for seg in conn.segments]
    return relative_views(conn, observer, steps), classify(conn, observer)


def _segments(reader: CaptureReader, progress: Progress | None) -> Iterator[Segment]:
    """decode.decode_records, with a progress call every PROGRESS_EVERY records."""
    decode = decode_segment
    for rec in reader:
        if progress is not None and not rec.index % PROGRESS_EVERY:
            progress(reader.bytes_read, reader.size)
        seg = decode(rec.linktype, rec.data, rec.orig_len, rec.ts, rec.index, rec.comments)
        if seg is not None:
            yield seg
    if progress is not None:
        progress(reader.size, reader.size)


def _require(conns: list[Connection], reader: CaptureReader) -> None:
    if not conns:
        why = f" ({reader.warnings[0]})" if reader.warnings else ""
        raise TcptraceError(f"no TCP connections in {reader.path}{why}")
