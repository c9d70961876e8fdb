"""The engine's Python face: the one way every command reaches `tcptrace._engine`.

The engine (Rust, `engine/`) reads captures, decodes segments, groups connections,
runs the RFC 9293 observer for both endpoints with Zeek's tracker beside it, and
decides each connection's verdict. This module only names what it hands back, as the
plain data of `model.py`, and turns its errors into `TcptraceError`:

- `Scan`: a capture file (or `-`, standard input, or a FIFO) read once, front to
  back; iterate it for `ConnectionSummary`s in the order connections are done with.
- `analyse_frames`: a live connection's frames, with its client known, as ladder steps
  and a verdict (`close`); `decode_frames`: the segments among live frames
  (`backpressure`).
"""

from __future__ import annotations

import gc
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from tcptrace import _engine
from tcptrace.errors import TcptraceError
from tcptrace.model import Connection, Segment, TcpState, Verdict

# Capture time after which a connection whose sides are both CLOSED or TIME-WAIT is
# done with (Linux keeps TIME-WAIT 60 s); a later segment starts a new connection.
LINGER = 60.0
BATCH = 1024            # connections handed over per call into the engine, at most
RECORDS = 1 << 14       # records read per call at most: progress is shown in between

# Tag bits of Step.tags, in the engine's order (observer.rs).
TAG_NAMES: tuple[str, ...] = tuple(_engine.TAG_NAMES)
_TAG = {name: 1 << i for i, name in enumerate(TAG_NAMES)}
MID_CONNECTION = _TAG["mid-connection"]
RETRANSMISSION = _TAG["retransmission"]
OUT_OF_ORDER = _TAG["out-of-order"]
DUP_ACK = _TAG["duplicate-ack"]
ZERO_WINDOW = _TAG["zero-window"]
WINDOW_UPDATE = _TAG["window-update"]
WINDOW_FULL = _TAG["window-full"]
WINDOW_PROBE = _TAG["window-probe"]
KEEP_ALIVE = _TAG["keep-alive"]
ACK_OF_FIN = _TAG["ack-of-fin"]
DELAYED_ACK = _TAG["delayed-ack"]
SIMULTANEOUS = _TAG["simultaneous-close"]
OUT_OF_WINDOW = _TAG["out-of-window"]
AFTER_CLOSE = _TAG["after-close"]
CAPTURE_DUPLICATE = _TAG["capture-duplicate"]
INFERRED = _TAG["inferred"]

# Called now and then while a file is read, with (bytes read, file size or 0).
Progress = Callable[[int, int], None]


def tag_names(tags: int) -> list[str]:
    return [name for i, name in enumerate(TAG_NAMES) if tags >> i & 1]


@dataclass(slots=True)
class Step:
    """One segment as the observer saw it: relative numbers (seq to the sender's ISN,
    ack to the receiver's), window in bytes (scaled once both SYNs are seen), both
    states after the segment, tag bits, sequence space newly acknowledged, and for a
    delayed ACK the seconds since the data arrived."""

    t: float
    sender: str
    flags: int
    seq: int
    ack: int
    length: int
    win: int
    client_state: str
    server_state: str
    tags: int
    acked: int
    delay: float
    segment: Segment


class Sent(NamedTuple):
    """What one side sent, as the observer counts it."""

    packets: int
    bytes: int              # payload, each byte once
    retransmissions: int
    zero_windows: int
    window_probes: int      # persist probes into the peer's zero window
    capture_duplicates: int = 0  # the capture's copies of its frames (not in packets)
    inferred: int = 0       # its segments the capture missed, proved by the peer's ACKs


@dataclass(slots=True)
class ConnectionSummary:
    """How one connection went: the table row, the summary record, and (when the scan
    kept them) its segments and the observer's steps."""

    stream: int             # order of first appearance, from 0 (`--stream N`)
    conn: Connection        # endpoints, roles, VLAN stack; segments only when kept
    first: float            # capture times of its first and last segment
    last: float
    packets: int
    verdict: Verdict
    client: Sent
    server: Sent
    raw: _engine.Connection     # the engine's record (json_line())
    steps: list[Step] | None = None
    initial: tuple[str, str] = (TcpState.UNKNOWN, TcpState.UNKNOWN)  # before the first segment

    def json_line(self) -> str:
        """The `tcptrace/1` summary record, one line (formatted by the engine)."""
        return self.raw.json_line()


def _segment(t: _engine.SegmentTuple) -> Segment:
    ts, src, sport, dst, dport, flags, seq, ack, length, win, \
        (wscale, mss, vlan, frame, ip_id, checksum), comments = t
    return Segment(ts, src, sport, dst, dport, flags, seq, ack, length, win, wscale, mss,
                   tuple(vlan), frame, tuple(comments), ip_id, checksum)


def verdict_of(v: _engine.VerdictTuple) -> Verdict:
    """A Verdict from the engine's verdict tuple."""
    (close, closer, rst_from, simultaneous, time_wait, cfinal, sfinal, conn_state, history,
     one_direction) = v
    return Verdict(close, closer, rst_from, simultaneous, time_wait,
                   {"client": cfinal, "server": sfinal}, conn_state, history, one_direction)


def _steps(segment_tuples: list[_engine.SegmentTuple], step_tuples: list[_engine.StepTuple]
           ) -> tuple[list[Segment], list[Step]]:
    """The captured segments and every step, each with its segment: an inferred step's
    is the engine's reconstruction (frame 0), in no record of the capture."""
    segments = [_segment(s) for s in segment_tuples]
    steps = [Step(*st, seg) for st, seg in zip(step_tuples, segments, strict=True)]
    return [st.segment for st in steps if not st.tags & INFERRED], steps


def summary_of(raw: _engine.Connection) -> ConnectionSummary:
    """A ConnectionSummary from the engine's record."""
    (stream, (cip, cport), (sip, sport), vlan, guessed, first, last, packets, verdict,
     client, server) = raw.fields()
    conn = Connection(cip, cport, sip, sport, [], tuple(vlan), guessed, tuple(raw.encap))
    summary = ConnectionSummary(stream, conn, first, last, packets, verdict_of(verdict),
                                Sent._make(client), Sent._make(server), raw)
    detail = raw.detail()
    if detail is not None:
        segment_tuples, step_tuples, initial = detail
        conn.segments, summary.steps = _steps(segment_tuples, step_tuples)
        summary.initial = initial
    return summary


class Scan:
    """A capture read once, front to back: iterate for every connection's summary, in
    the order connections are done with (see `LINGER`); then `warnings` says where
    damaged input was skipped or reading stopped.

    keep: None (verdicts and counts only: memory follows the connections open at
    once), a stream number (that connection's segments and steps), or "all"."""

    def __init__(self, path: str | os.PathLike[str], linger: float = LINGER,
                 keep: int | Literal["all"] | None = None, progress: Progress | None = None,
                 rules: _engine.RulesTuple | None = None,
                 vxlan_ports: Sequence[int] = ()):
        self.path = os.fspath(path)
        self.size = _size(self.path)
        self.progress = progress
        keep_arg = -1 if keep == "all" else keep
        try:
            self._scan = _engine.Scan(self.path, linger, keep_arg, rules,
                                      list(vxlan_ports))
        except _engine.CaptureError as e:
            raise TcptraceError(str(e)) from None

    def raw(self) -> Iterator[_engine.Connection]:
        """The engine's own records (cheap: for output formatted by the engine)."""
        scan, progress = self._scan, self.progress
        # What callers build from the records makes no reference cycles, so reference
        # counting frees it all; the cyclic collector would only rescan everything a
        # listing keeps, again and again as it piles up (a third of a 100,000-connection
        # listing's time).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            while not scan.exhausted:
                batch = scan.next_batch(BATCH, RECORDS)
                if progress is not None:
                    progress(scan.bytes_read, self.size)
                yield from batch
        finally:
            if was_enabled:
                gc.enable()

    def __iter__(self) -> Iterator[ConnectionSummary]:
        return map(summary_of, self.raw())

    def json_lines(self) -> Iterator[bytes]:
        """Every connection's `tcptrace/1` summary line, formatted by the engine, in
        chunks of many lines of ASCII bytes (the cheap path for `summary --json`)."""
        scan, progress = self._scan, self.progress
        while not scan.exhausted:
            text, _ = scan.next_json_lines(BATCH, RECORDS)
            if progress is not None:
                progress(scan.bytes_read, self.size)
            yield text

    @property
    def warnings(self) -> list[str]:
        return self._scan.warnings

    def findings(self) -> Iterator[tuple[int, tuple[str, int], tuple[str, int],
                                          list[_engine.FindingTuple]]]:
        """(stream, client, server, findings) of every connection with a finding, as
        the engine is done with them (the cheap path for `diagnose`)."""
        scan, progress = self._scan, self.progress
        while not scan.exhausted:
            batch = scan.next_findings(BATCH, RECORDS)
            if progress is not None:
                progress(scan.bytes_read, self.size)
            yield from batch

    def tally(self) -> tuple[list[tuple[str, int]], list[_engine.PortTuple]]:
        """The findings so far: (kind, count) in report order, and refused and
        unanswered attempts per server port (`diagnose.rs` `Tally`)."""
        return self._scan.tally()

    @property
    def connections(self) -> int:
        return self._scan.connections

    @property
    def skipped(self) -> list[tuple[str, int]]:
        """Frames that may hold TCP that the engine could not reach: (why, how many),
        most first (a tunnel or layer it does not understand, a later IP fragment)."""
        return self._scan.skipped

    @property
    def segments(self) -> int:
        return self._scan.segments

    def require_connections(self) -> None:
        """A capture with no TCP connection at all is an error, not an empty listing."""
        if not self.connections:
            why = f" ({self.warnings[0]})" if self.warnings else ""
            raise TcptraceError(f"no TCP connections in {_name(self.path)}{why}")


def _name(path: str) -> str:
    return "standard input" if path == "-" else path


def _size(path: str) -> int:
    """The file's size for a progress bar (0: unknown, as for a pipe); says so when a FIFO
    has no writer yet, since opening it waits for one."""
    if path == "-":
        return 0
    try:
        st = os.stat(path)
    except OSError:
        return 0            # the engine says what is wrong with it
    if stat.S_ISFIFO(st.st_mode):
        if sys.stderr.isatty():
            sys.stderr.write(f"tcptrace: waiting for a writer on the FIFO {path}\n")
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def decode_frames(frames: Sequence[tuple[float, bytes]], linktype: int = 1) -> list[Segment]:
    """The TCP segments among whole captured frames (timestamp, bytes), numbered from 1
    as a file would number them; a live capture on lo delivers Ethernet frames."""
    return [_segment(t) for t in _engine.decode_frames(list(frames), linktype)]


def analyse_frames(frames: Sequence[tuple[float, bytes]], client: tuple[str, int],
                   server: tuple[str, int], linktype: int = 1
                   ) -> tuple[Connection, list[Step], tuple[str, str], Verdict]:
    """A live connection whose client the caller knows: (the connection with its
    segments, the observer's steps, both states before the first segment, verdict)."""
    (segment_tuples, step_tuples, initial), verdict = _engine.analyse_frames(
        list(frames), client[0], client[1], linktype)
    segments, steps = _steps(segment_tuples, step_tuples)
    conn = Connection(client[0], client[1], server[0], server[1], segments)
    return conn, steps, initial, verdict_of(verdict)


def analyse_segments(conn: Connection) -> tuple[list[Step], tuple[str, str], Verdict]:
    """A connection already decoded (its segments and its client known): the observer's
    steps, both states before the first segment, and the verdict."""
    try:
        (segment_tuples, step_tuples, initial), verdict = _engine.analyse_segments(
            conn.segments, conn.client_ip, conn.client_port)
    except _engine.CaptureError as e:
        raise TcptraceError(str(e)) from None
    _, steps = _steps(segment_tuples, step_tuples)
    return steps, initial, verdict_of(verdict)


def group_segments(segments: Sequence[Segment], linger: float = LINGER
                   ) -> list[ConnectionSummary]:
    """Decoded segments grouped into connections as a capture's are (keys, VLAN rule,
    port reuse, roles, lingering), in the order each was done with, each with its
    segments and steps."""
    try:
        raws = _engine.scan_segments(list(segments), linger)
    except _engine.CaptureError as e:
        raise TcptraceError(str(e)) from None
    return [summary_of(raw) for raw in raws]


def plain_table(raws: Sequence[_engine.Connection], header: Sequence[str], right: Sequence[int],
                optional: Sequence[int]) -> str:
    """The connections table of the engine's records (`Scan.raw()`) as aligned plain
    text, laid out by the engine (see python.rs `plain_table`)."""
    return _engine.plain_table(list(raws), list(header), list(right), list(optional))


def findings_of(raw: _engine.Connection) -> list[_engine.FindingTuple]:
    """What the engine's rules found in a connection done with (`diagnose.rs`)."""
    return raw.findings()


def diagnose_segments(conn: Connection, rules: _engine.RulesTuple | None = None
                      ) -> list[_engine.FindingTuple]:
    """What the engine's rules find in one connection already decoded (a live run)."""
    try:
        return _engine.diagnose_segments(conn.segments, conn.client_ip, conn.client_port,
                                         rules)
    except _engine.CaptureError as e:
        raise TcptraceError(str(e)) from None
