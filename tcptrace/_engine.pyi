"""Types of the Rust engine's Python face (engine/src/python.rs), for mypy and readers.

Only tcptrace/engine.py imports this module; everything else goes through it.
"""

from collections.abc import Sequence
from typing import Protocol

# (close, first_closer, rst_from, simultaneous, time_wait, client final, server final,
#  conn_state, history, one_direction)
VerdictTuple = tuple[str, str | None, str | None, bool, str | None, str, str, str, str, bool]
# (packets, bytes, retransmissions, zero_windows, window_probes, capture_duplicates,
#  inferred)
SentTuple = tuple[int, int, int, int, int, int, int]
# (t, src, sport, dst, dport, flags, seq, ack, length, win,
#  (wscale, mss, vlan, frame, ip_id, checksum), comments)
SegmentTuple = tuple[float, str, int, str, int, int, int, int, int, int,
                     tuple[int | None, int | None, list[int], int, int | None, int | None],
                     list[str]]
# (t, sender, flags, seq, ack, length, win, client_state, server_state, tags, acked, delay)
StepTuple = tuple[float, str, int, int, int, int, int, str, str, int, int, float]
DetailTuple = tuple[list[SegmentTuple], list[StepTuple], tuple[str, str]]
# (kind, side, frames, t, seconds, count, SYN pattern, other stream, quiet)
FindingTuple = tuple[str, str, list[int], float, float, int, list[float], int | None, float]
# (kind, (server ip, port), connections, SYNs, clients, first, last, example streams)
PortTuple = tuple[str, tuple[str, int], int, int, int, float, float, list[int]]
RulesTuple = tuple[float, float, float]     # idle, close_wait, zero_window (seconds)

TAG_NAMES: list[str]


class CaptureError(Exception): ...


class SegmentLike(Protocol):
    """What analyse_segments and scan_segments read of a segment (model.Segment)."""

    t: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int
    length: int
    win: int
    wscale: int | None
    mss: int | None
    vlan: tuple[int, ...]
    frame: int
    comments: tuple[str, ...]
    ip_id: int | None
    checksum: int | None


class Connection:
    """One connection the engine is done with."""

    @property
    def stream(self) -> int: ...
    @property
    def roles_guessed(self) -> str | None: ...
    @property
    def packets(self) -> int: ...
    @property
    def verdict(self) -> VerdictTuple: ...
    def fields(self) -> tuple[int, tuple[str, int], tuple[str, int], list[int],
                              str | None, float, float, int, VerdictTuple, SentTuple,
                              SentTuple]: ...
    def cells(self) -> list[str]: ...
    @property
    def encap(self) -> list[str]: ...
    def detail(self) -> DetailTuple | None: ...
    def json_line(self) -> str: ...
    def findings(self) -> list[FindingTuple]: ...


class Scan:
    """A capture read once, front to back."""

    def __init__(self, path: str, linger: float, keep: int | None = None,
                 rules: RulesTuple | None = None,
                 vxlan_ports: list[int] = ...) -> None: ...
    def tally(self) -> tuple[list[tuple[str, int]], list[PortTuple]]: ...
    def next_findings(self, n: int, records: int
                      ) -> list[tuple[int, tuple[str, int], tuple[str, int],
                                      list[FindingTuple]]]: ...
    def next_batch(self, n: int, records: int) -> list[Connection]: ...
    def next_json_lines(self, n: int, records: int) -> tuple[bytes, int]: ...
    @property
    def exhausted(self) -> bool: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def bytes_read(self) -> int: ...
    @property
    def records(self) -> int: ...
    @property
    def segments(self) -> int: ...
    @property
    def connections(self) -> int: ...
    @property
    def peak_open(self) -> int: ...
    @property
    def skipped(self) -> list[tuple[str, int]]: ...


def decode_frames(frames: Sequence[tuple[float, bytes]],
                  linktype: int = 1) -> list[SegmentTuple]: ...
def analyse_frames(frames: Sequence[tuple[float, bytes]], client_ip: str, client_port: int,
                   linktype: int = 1) -> tuple[DetailTuple, VerdictTuple]: ...
def analyse_segments(segments: Sequence[SegmentLike], client_ip: str,
                     client_port: int) -> tuple[DetailTuple, VerdictTuple]: ...
def scan_segments(segments: Sequence[SegmentLike], linger: float) -> list[Connection]: ...
def plain_table(rows: Sequence[Connection], header: Sequence[str], right: Sequence[int],
                optional: Sequence[int]) -> str: ...


def diagnose_segments(segments: Sequence[SegmentLike], client_ip: str, client_port: int,
                      rules: RulesTuple | None = None) -> list[FindingTuple]: ...
