"""The plain data model every part of tcptrace shares.

Capture and file readers produce `Segment`s; `ss` and kernel tracepoints produce
`StateObservation`s and `Transition`s; analysis turns one connection's segments into
`PacketView`s (the ladder rows) and a `Verdict`. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# TCP header flag bits, as on the wire.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

# The order of flag names in JSON and on the ladder (the tcptrace/1 contract).
FLAG_ORDER = (("SYN", SYN), ("FIN", FIN), ("RST", RST), ("PSH", PSH),
              ("ACK", ACK), ("URG", URG), ("ECE", ECE), ("CWR", CWR))


class TcpState(StrEnum):
    """RFC 9293 state names, hyphenated; CLOSED also means "the socket is gone". A str:
    it compares equal to its name ("TIME-WAIT") and prints and serialises as it."""

    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"
    CLOSED = "CLOSED"
    UNKNOWN = "?"       # not pinned down yet (capture started mid-connection)


def flag_names(flags: int) -> list[str]:
    return [name for name, bit in FLAG_ORDER if flags & bit]


def format_endpoint(ip: str, port: int | str) -> str:
    """ip:port ([ip]:port for IPv6); `port` may be "*" for any."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(slots=True)
class Segment:
    """One TCP segment as seen on the wire (absolute numbers, no interpretation)."""

    t: float            # capture timestamp, seconds since the epoch
    src: str            # source IP address, text form
    sport: int
    dst: str
    dport: int
    flags: int          # TCP flag bits (FIN, SYN, ... above)
    seq: int            # absolute sequence number
    ack: int            # absolute acknowledgment number (meaningful when ACK is set)
    length: int         # payload bytes, from the IP total length (not the captured length)
    win: int            # raw 16-bit window field (unscaled)
    wscale: int | None = None   # window-scale option, SYN segments only
    mss: int | None = None      # MSS option, SYN segments only
    vlan: tuple[int, ...] = ()  # 802.1Q tags, outermost first
    frame: int = 0              # 1-based record number in the capture
    comments: tuple[str, ...] = ()  # pcapng packet comments
    ip_id: int | None = None    # IPv4 ID: a capture's copy of a frame repeats it
    checksum: int | None = None  # TCP checksum, when captured

    def has(self, bit: int) -> bool:
        return bool(self.flags & bit)

    @property
    def src_endpoint(self) -> str:
        return format_endpoint(self.src, self.sport)

    @property
    def dst_endpoint(self) -> str:
        return format_endpoint(self.dst, self.dport)

    @property
    def seq_space(self) -> int:
        """Sequence numbers the segment occupies: payload plus one each for SYN and FIN."""
        return self.length + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


@dataclass(slots=True)
class StateObservation:
    """Both sides' states as `ss` reported them at one moment of a live run."""

    t: float                    # seconds since the epoch (same clock as Segment.t)
    after: str                  # what had just happened, e.g. "client shutdown(SHUT_WR)"
    client: str                 # RFC 9293 name, or CLOSED when the socket is gone
    server: str
    source: str = "ss"
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # side -> ss to_json()


@dataclass(slots=True)
class Transition:
    """One state change of one side, from the kernel's sock:inet_sock_set_state."""

    t: float
    side: str                   # "client" or "server"
    old: str
    new: str
    source: str = "kernel"


@dataclass(slots=True)
class KernelEvent:
    """Another kernel fact worth a row: an RST sent or received, with its reason."""

    t: float
    side: str
    kind: str                   # "send_reset" | "receive_reset"
    reason: str | None = None


@dataclass(slots=True)
class AppEvent:
    """Something the application itself did or was told (a syscall, a Node event)."""

    t: float
    side: str
    what: str


@dataclass(slots=True)
class PacketView:
    """A segment as the ladder shows it: relative numbers, states after it, why it was sent."""

    t: float                    # seconds since the connection's first segment
    sender: str                 # "client" or "server"
    flags: list[str]
    seq: int                    # relative to the sender's initial sequence number
    ack: int                    # relative to the receiver's initial sequence number
    length: int
    win: int                    # window in bytes (scaled when the scale is known)
    note: str                   # one line: why this segment was sent
    client_state: str           # each side's state after this segment
    server_state: str
    tags: list[str] = field(default_factory=list)   # retransmission, zero-window, ...
    comments: tuple[str, ...] = ()
    segment: Segment | None = None


@dataclass(slots=True)
class Verdict:
    close: str                  # fin | rst | refused | half-closed | unanswered | open
    first_closer: str | None    # side that sent the first FIN or RST
    rst_from: str | None        # client | server | both | None
    simultaneous: bool
    time_wait: str | None       # client | server | both | None
    final: dict[str, str]       # {"client": state, "server": state}
    conn_state: str = ""        # Zeek's conn_state
    history: str = ""           # Zeek's history
    one_direction: bool = False  # one side unseen; its segments inferred from its ACKs


@dataclass(slots=True)
class Connection:
    """One TCP connection: its endpoints, roles, and its segments in capture order."""

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    segments: list[Segment] = field(default_factory=list)
    vlan: tuple[int, ...] = ()
    roles_guessed: str | None = None  # why the roles are a guess, when no SYN was seen
    encap: tuple[str, ...] = ()  # tunnels and labels it travelled in, outermost first

    @property
    def client(self) -> str:
        return format_endpoint(self.client_ip, self.client_port)

    @property
    def server(self) -> str:
        return format_endpoint(self.server_ip, self.server_port)

    def side_of(self, seg: Segment) -> str:
        """Which side sent `seg`: ports and addresses together, so 127.0.0.1 on both
        ends still tells the two halves apart."""
        if (seg.src, seg.sport) == (self.client_ip, self.client_port):
            return "client"
        return "server"
