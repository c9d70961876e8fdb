"""`tcptrace diagnose`: the close pathologies a capture proves, grouped by kind.

The findings are the engine's (`engine/src/diagnose.rs`: one rule per kind, with the
frames that prove it); this module only names them, says in words what each usually
means and what to change, and keeps the worst examples of each kind while the capture
streams past (memory follows the kinds, not the connections).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from tcptrace import engine
from tcptrace.engine import Progress, Scan
from tcptrace.model import Connection, PacketView, format_endpoint


@dataclass(frozen=True, slots=True)
class Rules:
    """The thresholds, in seconds of capture time (the engine's `Rules`, same defaults)."""

    idle: float = 1.0           # quiet before a FIN that makes a close idle
    close_wait: float = 5.0     # CLOSE-WAIT held this long to the end of the capture
    zero_window: float = 1.0    # a probed zero window held this long

    def astuple(self) -> tuple[float, float, float]:
        return (self.idle, self.close_wait, self.zero_window)


@dataclass(frozen=True, slots=True)
class KindText:
    title: str
    meaning: str    # what it usually means ("consistent with" where the wire can't tell)
    fix: str        # what to change


KINDS: dict[str, KindText] = {
    "keep-alive-race": KindText(
        "keep-alive race (idle close)",
        "A closed a connection that had been idle; B, not yet aware, sent a request on "
        "it; A's kernel answered with RST. B's request is lost: B reads EOF instead of "
        "a response (HTTP clients report a reset; Node: ECONNRESET, socket hang up) and "
        "its next write fails (on Linux EPIPE when B's kernel had the FIN, as on "
        "loopback; ECONNRESET when the RST overtakes a lost FIN): consistent with B's "
        "idle timeout being longer than A's.",
        "make B's idle timeout shorter than A's (client pool < server keep-alive), or "
        "retry idempotent requests that fail on a reused connection"),
    "write-after-close": KindText(
        "write after the peer closed",
        "A closed fully (its FIN, then an RST for B's later data) while B went on "
        "writing: B gets EPIPE or ECONNRESET on a later call.",
        "B must read the EOF (the FIN) and stop writing; A should shutdown(SHUT_WR) and "
        "read to EOF before close() if B may still send"),
    "abort-with-unread-data": KindText(
        "abort with unread data",
        "A reset the connection without sending a FIN, after B's data had reached it, "
        "and never answered that data: consistent with close() while received data was "
        "unread (RFC 2525 2.17) or an abortive close (SO_LINGER 0). B's next call gets "
        "ECONNRESET. When B's data came after a long quiet, it is consistent with the "
        "keep-alive race's other form: B's request reached A just as A closed the idle "
        "connection.",
        "read (or drain) what the peer sent before close(); use shutdown(SHUT_WR) then "
        "read to EOF for a graceful close; drop SO_LINGER 0 unless an RST is intended"),
    "half-open-connection": KindText(
        "half-open connection (the peer had no connection)",
        "A answered B's segment with an RST that carries no ACK, the reset a host sends "
        "for a segment it has no connection for (an abort by close() or SO_LINGER 0 "
        "carries ACK): A had lost the connection while B still held it, the half-open "
        "connection of RFC 9293 3.5.2. Consistent with A's host restarting, its socket "
        "discarded without a FIN or RST, or the connection's state dropped by a NAT, "
        "firewall or load balancer between them, or an RST forged by a middlebox; "
        "also with an abort by a stack that sends it without ACK (Linux's carries ACK, "
        "not every stack's does). B gets ECONNRESET on its next call.",
        "find where A's state went: a restart (uptime, logs), a NAT or load balancer idle "
        "timeout shorter than the connection's idle time (enable TCP keepalive below it), "
        "a failover; B should reconnect and retry idempotent requests"),
    "close-wait-leak": KindText(
        "CLOSE-WAIT leak",
        "The peer's FIN was acknowledged and this side never sent its own FIN, nor "
        "anything else, to the end of the capture: its application read EOF (or never "
        "read) and never called close(); consistent with a leaked socket, or a "
        "half-close left open on purpose. Its peer waits in FIN-WAIT-2 meanwhile (Linux "
        "drops an orphaned FIN-WAIT-2 after tcp_fin_timeout, 60 s; the CLOSE-WAIT "
        "socket stays until its application closes it).",
        "close the socket when read() returns 0 (EOF); look for missing close() on "
        "error paths; `ss -tan state close-wait` counts them live"),
    "unacked-fin": KindText(
        "FIN never acknowledged (stuck FIN-WAIT-1 / LAST-ACK)",
        "This side sent its FIN again and again and no ACK came back: consistent with "
        "the peer gone (host down or unplugged) or a firewall or path dropping its "
        "segments.",
        "check the peer and the path (firewall state timeouts); the kernel gives up "
        "after tcp_orphan_retries / tcp_retries2"),
    "zero-window-stall": KindText(
        "zero-window stall",
        "This side advertised a zero window for a long time while the peer probed it: "
        "its application stopped reading (blocked, slow or stuck).",
        "find why the reader does not read (a blocked thread, a full downstream); "
        "bound the writer's wait with a timeout"),
    "refused": KindText(
        "refused (nothing listening)",
        "A SYN was answered by an RST: no socket listened on that port (the service is "
        "down or restarting), or a firewall rejects with RST.",
        "start the service or fix the address or port; clients should back off between "
        "reconnects"),
    "unanswered-syn": KindText(
        "unanswered SYN",
        "SYNs got no reply at all: consistent with a firewall dropping them or a host "
        "that is down or unreachable; the retry times show the client's backoff.",
        "check firewalls and routes to the server; lower the client's connect timeout "
        "if it hangs too long"),
    "time-wait-assassination": KindText(
        "TIME-WAIT assassination (RFC 1337)",
        "An RST reached a side in TIME-WAIT at its expected sequence number and ended "
        "TIME-WAIT early: consistent with the peer answering a stray or late segment's "
        "ACK with RST, or an injected RST. The 4-tuple is free again at once, so an old "
        "duplicate could be taken into a new connection.",
        "set net.ipv4.tcp_rfc1337=1 (Linux then ignores RSTs in TIME-WAIT); find what "
        "sent the stray segment"),
    "time-wait-reuse": KindText(
        "4-tuple reused during TIME-WAIT",
        "A new SYN on the same addresses and ports came while a side of the previous "
        "connection was still in TIME-WAIT (60 s on Linux): consistent with "
        "tcp_tw_reuse on the client, or the TIME-WAIT side accepting a SYN with a "
        "higher sequence number (RFC 6191).",
        "usually harmless; if connections are refused or reset, use more source ports "
        "or pooled connections instead of rapid reconnects on one port"),
}
ORDER = tuple(KINDS)


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding on one connection, with the frames that prove it."""

    kind: str
    stream: int
    client: str
    server: str
    side: str               # the side the finding is about (A, or who waits)
    frames: tuple[int, ...]
    t: float                # capture time of the first proving frame
    seconds: float
    count: int
    pattern: tuple[float, ...]   # SYN retry times since the first
    other_stream: int | None
    quiet: float            # seconds without payload before A's FIN or B's data

    @property
    def peer(self) -> str:
        return "server" if self.side == "client" else "client"

    def endpoint(self, side: str) -> str:
        return self.client if side == "client" else self.server

    @property
    def weight(self) -> float:
        """How bad, to pick the worst examples: time first, then counts."""
        return self.seconds + self.count


@dataclass(frozen=True, slots=True)
class PortTally:
    """Refused or unanswered attempts at one server endpoint."""

    kind: str
    server: str
    connections: int
    syns: int
    clients: int
    first: float
    last: float
    streams: tuple[int, ...]


@dataclass
class Diagnosis:
    path: str
    rules: Rules
    connections: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    worst: dict[str, list[Finding]] = field(default_factory=dict)
    ports: list[PortTally] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def findings_of(raw) -> list[Finding]:
    """The engine's findings of one connection record, named."""
    tuples = engine.findings_of(raw)
    if not tuples:
        return []
    _, (cip, cport), (sip, sport), *_ = raw.fields()
    client, server = format_endpoint(cip, cport), format_endpoint(sip, sport)
    return [_finding(t, raw.stream, client, server) for t in tuples]


def _finding(t, stream: int, client: str, server: str) -> Finding:
    kind, side, frames, at, seconds, count, pattern, other, quiet = t
    return Finding(kind, stream, client, server, side, tuple(frames), at, seconds, count,
                   tuple(pattern), other, quiet)


def port_tally(t) -> PortTally:
    kind, (ip, port), connections, syns, clients, first, last, streams = t
    return PortTally(kind, format_endpoint(ip, port), connections, syns, clients, first,
                     last, tuple(streams))


def scan_findings(scan: Scan) -> Iterator[Finding]:
    """Every finding of every connection, as the engine hands connections over."""
    for stream, client, server, tuples in scan.findings():
        client_text, server_text = format_endpoint(*client), format_endpoint(*server)
        for t in tuples:
            yield _finding(t, stream, client_text, server_text)


def diagnose(path: str | os.PathLike[str], rules: Rules = Rules(), top: int = 3,
             progress: Progress | None = None,
             each: Callable[[Finding], None] | None = None) -> Diagnosis:
    """One streaming pass: counts per kind, the `top` worst examples of each, refused
    and unanswered attempts per port; `each` sees every finding as it is found."""
    scan = Scan(path, progress=progress, rules=rules.astuple())
    heaps: dict[str, list[tuple[float, int, Finding]]] = {}
    n = 0
    for f in scan_findings(scan):
        if each is not None:
            each(f)
        heap = heaps.setdefault(f.kind, [])
        n += 1
        item = (f.weight, -n, f)       # ties: the earliest found stays
        if len(heap) < top:
            heapq.heappush(heap, item)
        else:
            heapq.heappushpop(heap, item)
    scan.require_connections()
    counts, ports = scan.tally()
    worst = {k: [f for _, _, f in sorted(h, reverse=True)] for k, h in heaps.items()}
    return Diagnosis(os.fspath(path), rules, scan.connections, dict(counts), worst,
                     [port_tally(p) for p in ports], scan.warnings)


def json_record(f: Finding) -> dict:
    """One finding as a `tcptrace/1` JSON Lines record."""
    return {"schema": "tcptrace/1", "command": "diagnose", "kind": f.kind,
            "scope": "connection", "stream": f.stream, "client": f.client,
            "server": f.server, "side": f.side,
            "frames": list(f.frames), "t": round(f.t, 6), "seconds": round(f.seconds, 6),
            "count": f.count, "pattern": [round(x, 6) for x in f.pattern],
            "other_stream": f.other_stream, "quiet": round(f.quiet, 6)}


def port_record(p: PortTally) -> dict:
    """Refused or unanswered attempts at one port, as a JSON Lines record."""
    return {"schema": "tcptrace/1", "command": "diagnose", "kind": p.kind,
            "scope": "port", "server": p.server, "connections": p.connections,
            "syns": p.syns, "clients": p.clients, "first": round(p.first, 6),
            "last": round(p.last, 6), "streams": list(p.streams)}


def _frames(frames: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in frames)


def describe(f: Finding, idle: float = 1.0) -> str:
    """What the proving frames show, in one sentence with the frame numbers; `idle`:
    the quiet time that makes B's data a new request on an idle connection (`--idle`,
    `Rules.idle` by default)."""
    a, b = f"{f.side} {f.endpoint(f.side)}", f"the {f.peer}"
    fr = f.frames
    match f.kind:
        case "keep-alive-race" | "write-after-close" if len(fr) == 3:
            quiet = f"after {f.seconds:.3g} s without data" if f.kind == "keep-alive-race" \
                else "while data was flowing"
            return (f"{a} sent FIN (frame {fr[0]}) {quiet}; {b} sent data after it "
                    f"(frame {fr[1]}); {f.side} answered with RST (frame {fr[2]})")
        case "abort-with-unread-data":
            text = (f"{a} sent RST without FIN (frame {fr[-1]}) {f.seconds:.3g} s after "
                    f"{b}'s data (frame {fr[0]}), which it never answered")
            if f.quiet >= idle:
                text += (f"; that data came after {f.quiet:.3g} s without data: consistent "
                         f"with a keep-alive race in its ECONNRESET form ({f.side} closed "
                         f"the idle connection with the new request unread)")
            return text
        case "half-open-connection":
            return (f"{a} answered {b}'s segment (frame {fr[0]}) with an RST without ACK "
                    f"(frame {fr[-1]}): it had no connection for it")
        case "close-wait-leak":
            return (f"{a} acknowledged {f.peer}'s FIN (frames {_frames(fr)}) and sent "
                    f"no FIN for the {f.seconds:.3g} s left in the capture")
        case "unacked-fin":
            return (f"{a} sent its FIN {f.count} times over {f.seconds:.3g} s (frames "
                    f"{_frames(fr)}) and no ACK of it came back")
        case "zero-window-stall":
            return (f"{a} advertised a zero window for {f.seconds:.3g} s while {f.peer} "
                    f"sent {f.count} window probes (frames {_frames(fr)})")
        case "refused" | "unanswered-syn":
            tries = (" (" + ", ".join(f"+{x:.3g} s" for x in f.pattern) + ")"
                     if f.count > 1 else "")
            answer = "answered by RST" if f.kind == "refused" else "never answered"
            return (f"client {f.client} sent {f.count} SYN{'s' if f.count != 1 else ''} "
                    f"to {f.server}{tries}, {answer} (frames {_frames(fr)})")
        case "time-wait-assassination":
            return (f"an RST (frame {fr[-1]}) ended {a}'s TIME-WAIT after "
                    f"{f.seconds:.3g} s (entered at frame {fr[0]})")
        case "time-wait-reuse":
            return (f"a new SYN (frame {fr[-1]}, stream {f.other_stream}) reused the "
                    f"4-tuple {f.seconds:.3g} s after {a} entered TIME-WAIT (frame {fr[0]})")
    return f"{f.kind}: frames {_frames(fr)}"


FINDING_TAG = "finding:"


def marked(views: list[PacketView], found: list[Finding]) -> list[PacketView]:
    """The ladder's rows with `finding:KIND` added to the tags of each segment that
    proves a finding (copies: the views themselves are left as they were)."""
    kinds_at: dict[int, list[str]] = {}
    for f in found:
        for frame in f.frames:
            kinds_at.setdefault(frame, []).append(FINDING_TAG + f.kind)
    out = []
    for v in views:
        extra = kinds_at.get(v.segment.frame, []) if v.segment else []
        out.append(replace(v, tags=[*v.tags, *extra]) if extra else v)
    return out


def live_findings(conn: Connection, stream: int = 0) -> list[Finding]:
    """What the rules find in a live connection (the capture ends at its last segment)."""
    return [_finding(t, stream, conn.client, conn.server)
            for t in engine.diagnose_segments(conn)]
