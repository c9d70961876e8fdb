"""`tcptrace summary`: how every connection in a capture ended, in one streaming pass.

One engine: every connection runs the ConnectionObserver that `replay` runs (through
its `feed_fields` fast path) and gets its verdict from `verdict.classify`. This module
adds only the streaming: reading, grouping, and forgetting finished connections.

Reading: classic pcap records are decoded in place in the reader's buffer; the common
frame (Ethernet, IPv4 without options, TCP) with one struct unpack
(`decode.ETH_IP4_TCP`), any other through `decode.decode_segment`.

Grouping follows connections.py: a connection is keyed on its VLAN stack and its two
endpoints; a SYN with a new ISN after an RST or both FINs starts a new connection (port
reuse); a segment on another VLAN stack joins the connection whose reverse direction it
is while that direction has sent nothing. An untagged IPv4 segment's key is the 12 raw
bytes of its addresses and ports, one dict entry per direction.

Roles: the client is the sender of the first SYN, else the receiver of the first
SYN+ACK, else connections.py's guess from the ports. Until a SYN settles them, a
connection runs two observers, one per possible client, and the roles pick one at the
end: one pass even when the SYN turns up late.

Forgetting: a connection is summarised and its state dropped when both sides are CLOSED
or TIME-WAIT and none of its segments has been seen for `linger` seconds of capture
time; when a SYN reuses its 4-tuple; or at the end of the file. A segment after that
starts a new connection (with guessed roles) where replay, which holds everything, adds
it to the old one. Memory follows the connections open at once, plus those closed in
the last `linger` seconds, never the file size.
"""

from __future__ import annotations

import gc
import os
import socket
import struct
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

from .connections import _guess_server
from .decode import ETH_IP4_TCP, ETHERNET, decode_segment, syn_options
from .errors import TcptraceError
from .model import ACK, FIN, RST, SYN, Connection, Segment, Verdict, format_endpoint
from .observer import CLOSED, TIME_WAIT, ConnectionObserver
from .pcapfile import CaptureReader
from .verdict import classify

LINGER = 60.0           # s of capture time: Linux keeps TIME-WAIT this long
HOUSEKEEPING = 1024     # records between two eviction scans (and progress calls)
_FAST_MIN = ETH_IP4_TCP.size
_FINAL = (CLOSED, TIME_WAIT)
_ports = struct.Struct("!HH")

# Called now and then while the file is read, with (bytes read, file size).
Progress = Callable[[int, int], None]


class Sent(NamedTuple):
    """What one side sent, as the observer counts it."""

    packets: int
    bytes: int              # payload, each byte once
    retransmissions: int
    zero_windows: int


@dataclass(slots=True)
class ConnectionSummary:
    """How one connection went: what replay's table row says, plus times and counts."""

    conn: Connection        # endpoints, roles, VLAN stack; no segments
    first: float            # capture times of its first and last segment
    last: float
    verdict: Verdict
    client: Sent
    server: Sent


class _Conn:
    """A connection in flight. `a` sent its first segment, to `b`."""

    __slots__ = ("index", "keys", "raw", "vlan", "a", "b", "obs_a", "obs_b", "first", "last",
                 "syn_seq", "syn_from_a", "synack_to_a", "ends", "since")

    def __init__(self, index: int, key, raw: bytes, vlan: tuple[int, ...], t: float,
                 client_known: bool):
        self.index = index          # order of first appearance
        self.keys = [key]
        self.raw = raw              # addresses and ports, a to b
        self.vlan = vlan
        self.a, self.b = _endpoints(raw)
        # One observer per possible client (a or b) until a SYN says which.
        self.obs_a = ConnectionObserver(*self.a)
        self.obs_b = None if client_known else ConnectionObserver(*self.b)
        self.first = self.last = t
        self.syn_seq = None         # the first SYN (no ACK): its sequence number, sender
        self.syn_from_a = False
        self.synack_to_a = None     # whether the first SYN+ACK went to a
        self.ends = 0               # FIN seen from a (1), from b (2); an RST seen (4)
        self.since = -1.0           # its place in the closing queue (-1: not queued)

    def finished(self) -> bool:
        """connections.py's test for port reuse: an RST was seen, or both FINs."""
        return bool(self.ends & 4) or self.ends == 3

    def final(self) -> bool:
        """Both sides CLOSED or TIME-WAIT, for every role assignment still open."""
        a, b = self.obs_a, self.obs_b
        return ((a is None or a.client.state in _FINAL and a.server.state in _FINAL)
                and (b is None or b.client.state in _FINAL and b.server.state in _FINAL))


class Summariser:
    """Iterate to get every connection's summary, in the order they are done with (see
    the module docstring); `warnings` then says where damaged input was skipped."""

    def __init__(self, path: str | os.PathLike, linger: float = LINGER,
                 progress: Progress | None = None):
        self.reader = CaptureReader(path)   # raises TcptraceError: not a capture
        self.linger = linger
        self.progress = progress
        self.records = self.segments = self.connections = 0
        self.open = self.peak_open = 0      # connections held now, and at most
        self._by_key: dict = {}             # key -> (connection, sent by its a side)
        # Both sides done: (since, connection), oldest first. An entry whose `since` is
        # not the connection's any more is stale (it was retired or queued again).
        self._closing: deque[tuple[float, _Conn]] = deque()
        self._pairs: dict[bytes, list[_Conn]] | None = None   # once a VLAN tag is seen

    @property
    def warnings(self) -> list[str]:
        return self.reader.warnings

    def __iter__(self) -> Iterator[ConnectionSummary]:
        # Nothing here makes reference cycles, so reference counting frees all; the
        # cyclic collector would only rescan every connection in flight, again and
        # again (15% of the time on many short connections).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield from self._run()
        finally:
            if was_enabled:
                gc.enable()

    def _run(self) -> Iterator[ConnectionSummary]:
        reader, by_key, closing, linger = self.reader, self._by_key, self._closing, self.linger
        unpack, special = ETH_IP4_TCP.unpack_from, self._special
        records = segments = 0
        ts = 0.0
        for ts, linktype, buf, off, caplen, orig in reader.frames():
            records += 1
            if not records % HOUSEKEEPING:
                self.records, self.segments = records, segments
                yield from self._housekeeping(ts)
            key = None
            if linktype == ETHERNET and caplen >= _FAST_MIN:
                etype, vihl, total, frag, proto, key, seq, ack, hoff, flags, win = unpack(buf, off)
                hlen = hoff >> 2 & 0x3C
                length = total - 20 - hlen
                # What decode_segment would make of it, or let decode_segment see it.
                if (etype != 0x0800 or vihl != 0x45 or proto != 6 or frag & 0x1FFF
                        or not total or hlen < 20 or length < 0):
                    key = None
                elif flags & SYN and hlen > 20:
                    wscale = syn_options(buf, off + 54, min(off + 34 + hlen, off + caplen))[1]
                else:
                    wscale = None
            if key is None:
                seg = decode_segment(linktype, buf[off:off + caplen], orig, ts)
                if seg is None:
                    continue
                key = _key(seg)
                flags, seq, ack, length, win, wscale = (seg.flags, seg.seq, seg.ack, seg.length,
                                                        seg.win, seg.wscale)
            segments += 1
            entry = by_key.get(key)
            if entry is not None and entry[0].since >= 0 and entry[0].last <= ts - linger:
                done = self._expire(entry[0])       # done with before this segment came
                if done is not None:
                    yield done
                    entry = None
            if entry is None or flags & 7:          # new, or a SYN, FIN or RST
                entry, done = special(key, entry, ts, flags, seq)
                if done is not None:
                    yield done
            tr, from_a = entry
            tr.last = ts
            obs = tr.obs_a
            if obs is not None:
                obs.feed_fields(from_a, ts, flags, seq, ack, length, win, wscale)
            obs = tr.obs_b
            if obs is not None:
                obs.feed_fields(not from_a, ts, flags, seq, ack, length, win, wscale)
            if tr.ends and tr.since < 0 and tr.final():
                tr.since = ts
                closing.append((ts, tr))
        self.records, self.segments = records, segments
        left = {id(tr): tr for tr, _ in by_key.values()}
        for tr in sorted(left.values(), key=lambda tr: tr.index):
            yield self._retire(tr)
        if self.progress is not None:
            self.progress(reader.size, reader.size)
        if not self.connections:
            why = f" ({reader.warnings[0]})" if reader.warnings else ""
            raise TcptraceError(f"no TCP connections in {reader.path}{why}")

    # -- connections come and go --------------------------------------------------------

    def _special(self, key, entry: tuple[_Conn, bool] | None, t: float, flags: int,
                 seq: int) -> tuple[tuple[_Conn, bool], ConnectionSummary | None]:
        """The grouping and role facts of a segment that is new or carries SYN, FIN or
        RST: (its connection and direction, a connection this one retired or None)."""
        done = None
        if entry is not None and flags & (SYN | ACK) == SYN:
            tr = entry[0]
            if tr.finished() and seq != tr.syn_seq:     # port reuse
                done, entry = self._retire(tr), None
        if entry is None:
            entry = self._join(key) or self._open(key, t, flags)
        tr, from_a = entry
        if flags & FIN:
            tr.ends |= 1 if from_a else 2
        if flags & RST:
            tr.ends |= 4
        if flags & SYN:
            if not flags & ACK:
                if tr.syn_seq is None:              # the first SYN: roles settled
                    tr.syn_seq, tr.syn_from_a = seq, from_a
                    if from_a:
                        tr.obs_b = None
                    elif tr.obs_b is not None:
                        tr.obs_a = None
            elif tr.synack_to_a is None:
                tr.synack_to_a = not from_a
        return entry, done

    def _open(self, key, t: float, flags: int) -> tuple[_Conn, bool]:
        vlan, raw = key if type(key) is tuple else ((), key)
        rev = _reverse(raw)
        tr = _Conn(self.connections, key, raw, vlan, t,
                   flags & (SYN | ACK) == SYN or rev == raw)
        self.connections += 1
        self.open += 1
        if self.open > self.peak_open:
            self.peak_open = self.open
        if rev != raw:                  # both ends one endpoint: every segment is a's
            back = (vlan, rev) if vlan else rev
            tr.keys.append(back)
            self._by_key[back] = (tr, False)
        entry = self._by_key[key] = (tr, True)
        if self._pairs is not None:
            self._pairs.setdefault(min(raw, rev), []).append(tr)
        return entry

    def _join(self, key) -> tuple[_Conn, bool] | None:
        """VLAN rule: a segment on a new VLAN stack joins the connection whose reverse
        direction it is, when that direction has sent nothing yet."""
        if type(key) is tuple and self._pairs is None:
            self._pairs = {}
            for tr in {id(tr): tr for tr, _ in self._by_key.values()}.values():
                self._pairs.setdefault(min(tr.raw, _reverse(tr.raw)), []).append(tr)
        if self._pairs is None:
            return None
        vlan, raw = key if type(key) is tuple else ((), key)
        rev = _reverse(raw)
        for tr in self._pairs.get(min(raw, rev), ()):
            obs = tr.obs_a or tr.obs_b
            b_side = obs.server if obs is tr.obs_a else obs.client
            if raw != tr.raw and not b_side.packets:
                # That VLAN stack now carries both directions of this connection.
                back = (vlan, rev) if vlan else rev
                tr.keys += (key, back)
                self._by_key[back] = (tr, True)
                entry = self._by_key[key] = (tr, False)
                return entry
        return None

    def _retire(self, tr: _Conn) -> ConnectionSummary:
        for key in tr.keys:
            del self._by_key[key]
        self.open -= 1
        tr.since = -1.0                 # its closing entry, if any, is stale now
        if self._pairs is not None:
            pair = min(tr.raw, _reverse(tr.raw))
            self._pairs[pair].remove(tr)
            if not self._pairs[pair]:
                del self._pairs[pair]
        return _summary(tr)

    def _housekeeping(self, now: float) -> Iterator[ConnectionSummary]:
        """Summarise the connections that have been done with for `linger` seconds."""
        if self.progress is not None:
            self.progress(self.reader.bytes_read, self.reader.size)
        closing, cutoff = self._closing, now - self.linger
        while closing:
            since, tr = closing[0]
            if since == tr.since and since > cutoff:
                return
            closing.popleft()
            if since != tr.since:
                continue                # stale
            if tr.last > cutoff:        # still getting segments: look again later
                tr.since = tr.last
                closing.append((tr.last, tr))
            else:
                done = self._expire(tr)
                if done is not None:
                    yield done

    def _expire(self, tr: _Conn) -> ConnectionSummary | None:
        """A connection of the closing set, silent for `linger` seconds: summarised,
        unless it came back to life (a SYN again after a refusal)."""
        if tr.final():
            return self._retire(tr)
        tr.since = -1.0                 # out of the queue until it is done again
        return None


def _key(seg: Segment):
    """The grouping key of a decoded segment: the fast path's raw bytes, under its VLAN
    stack when it has one."""
    family = socket.AF_INET6 if ":" in seg.src else socket.AF_INET
    raw = (socket.inet_pton(family, seg.src) + socket.inet_pton(family, seg.dst)
           + _ports.pack(seg.sport, seg.dport))
    return (seg.vlan, raw) if seg.vlan else raw


def _reverse(raw: bytes) -> bytes:
    n = (len(raw) - 4) // 2
    return raw[n:2 * n] + raw[:n] + raw[-2:] + raw[-4:-2]


def _endpoints(raw: bytes) -> tuple[tuple[str, int], tuple[str, int]]:
    n = (len(raw) - 4) // 2
    family = socket.AF_INET if n == 4 else socket.AF_INET6
    sport, dport = _ports.unpack_from(raw, 2 * n)
    return ((socket.inet_ntop(family, raw[:n]), sport),
            (socket.inet_ntop(family, raw[n:2 * n]), dport))


def _summary(tr: _Conn) -> ConnectionSummary:
    """Roles as connections.py decides them, then the verdict of that role's observer."""
    why = None
    if tr.syn_seq is not None:
        client_a = tr.syn_from_a
    elif tr.synack_to_a is not None:
        client_a = tr.synack_to_a
    else:
        server, how = _guess_server(tr.a, tr.b)
        why = f"no SYN seen: guessed server = {format_endpoint(*server)}, {how}"
        client_a = server != tr.a
    obs = (tr.obs_a if client_a else tr.obs_b) or tr.obs_a or tr.obs_b
    (cip, cport), (sip, sport) = (tr.a, tr.b) if client_a else (tr.b, tr.a)
    conn = Connection(cip, cport, sip, sport, vlan=tr.vlan, roles_guessed=why)
    c, s = obs.client, obs.server
    return ConnectionSummary(conn, tr.first, tr.last, classify(conn, obs),
                             Sent(c.packets, c.bytes, c.retransmissions, c.zero_windows),
                             Sent(s.packets, s.bytes, s.retransmissions, s.zero_windows))
