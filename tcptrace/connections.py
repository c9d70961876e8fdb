"""Group segments into connections and decide which side is the client.

A connection is keyed on its VLAN stack and its two (address, port) endpoints, not on
hosts, so 127.0.0.1:a <-> 127.0.0.1:b is one connection and its halves stay together.
"""

from __future__ import annotations

import os
from typing import Iterable

from .decode import decode_records
from .model import ACK, FIN, RST, SYN, Connection, Segment, format_endpoint
from .pcapfile import CaptureReader

Endpoint = tuple[str, int]


# (VLAN stack, lower endpoint, higher endpoint): sorting the endpoints gives both
# directions of a connection one key. A plain tuple: it is built for every segment.
ConnectionKey = tuple[tuple[int, ...], Endpoint, Endpoint]


def connection_key(seg: Segment) -> ConnectionKey:
    a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
    return (seg.vlan, a, b) if a <= b else (seg.vlan, b, a)


class _Track:
    """A connection being built, with what role and reuse decisions need."""

    __slots__ = ("conn", "index", "keys", "first", "keep", "senders", "fin_from", "rst",
                 "syn", "synack_to")

    def __init__(self, seg: Segment, key: ConnectionKey, index: int, keep: bool):
        self.conn = Connection(seg.src, seg.sport, seg.dst, seg.dport, vlan=seg.vlan)
        self.index = index          # order of first appearance in the capture
        self.keys = [key]
        self.first = ((seg.src, seg.sport), (seg.dst, seg.dport))  # sender, receiver
        self.keep = keep            # store the segments in conn.segments
        self.senders: set[Endpoint] = set()
        self.fin_from: set[Endpoint] = set()
        self.rst = False
        self.syn: Segment | None = None         # the first SYN without ACK
        self.synack_to: Endpoint | None = None  # receiver of the first SYN+ACK

    def add(self, seg: Segment) -> None:
        src = (seg.src, seg.sport)
        if self.keep:
            self.conn.segments.append(seg)
        self.senders.add(src)
        flags = seg.flags
        if flags & FIN:
            self.fin_from.add(src)
        if flags & RST:
            self.rst = True
        if flags & SYN:
            if not flags & ACK:
                self.syn = self.syn or seg
            elif self.synack_to is None:
                self.synack_to = (seg.dst, seg.dport)

    def finished(self) -> bool:
        return self.rst or len(self.fin_from) == 2

    def is_new_attempt(self, seg: Segment) -> bool:
        return seg.flags & (SYN | ACK) == SYN and reuses_tuple(
            self.finished(), (seg.src, seg.sport) in self.fin_from, seg.seq,
            None if self.syn is None else self.syn.seq)

    def accepts_other_vlan(self, seg: Segment) -> bool:
        """Whether `seg`, seen on another VLAN stack, is this connection's reverse
        direction: only the opposite endpoint has sent so far, and it is seg's receiver."""
        return self.senders == {(seg.dst, seg.dport)}

    def roles(self) -> tuple[Endpoint, Endpoint, str | None]:
        """(client, server, why they are a guess or None), from the segments so far."""
        syn_from = None if self.syn is None else (self.syn.src, self.syn.sport)
        return decide_roles(*self.first, syn_from, self.synack_to)

    def finish(self) -> Connection:
        conn = self.conn
        client, server, conn.roles_guessed = self.roles()
        conn.client_ip, conn.client_port = client
        conn.server_ip, conn.server_port = server
        return conn


def reuses_tuple(finished: bool, sender_sent_fin: bool, seq: int, syn_seq: int | None) -> bool:
    """Whether a SYN (no ACK) starts a new connection on a known 4-tuple: the old one
    ended (both FINs, or an RST), or the SYN's sender had already sent its FIN (a
    socket that closed cannot open again), and the initial sequence number is fresh
    (Linux retransmits a SYN with the same one). Shared by replay and summary."""
    return (finished or sender_sent_fin) and (syn_seq is None or seq != syn_seq)


def decide_roles(a: Endpoint, b: Endpoint, syn_from: Endpoint | None,
                 synack_to: Endpoint | None) -> tuple[Endpoint, Endpoint, str | None]:
    """(client, server, why they are a guess or None) of the connection between `a`
    (which sent the first segment) and `b`: the sender of the first SYN is the client;
    failing that the receiver of the first SYN+ACK; failing both, guess from the ports.
    Shared by replay and summary."""
    why = None
    if syn_from is not None:
        client = syn_from
    elif synack_to is not None:
        client = synack_to
    else:
        server, how = _guess_server(a, b)
        why = f"no SYN seen: guessed server = {format_endpoint(*server)}, {how}"
        client = b if server == a else a
    return client, (b if client == a else a), why


def _guess_server(a: Endpoint, b: Endpoint) -> tuple[Endpoint, str]:
    """Servers listen on well-known or registered ports, clients get high ephemeral
    ones, so the lower port is most likely the server's. `a` sent the first segment."""
    if a[1] == b[1]:
        return b, "the receiver of the first segment (both ports are equal)"
    return (a if a[1] < b[1] else b), "the lower port"


class ConnectionGrouper:
    """Group segments into connections one at a time (see `group_connections` for the
    rules). `add` says which connection a segment belongs to, by index in order of first
    appearance, so a caller can stream a large capture through per-connection state;
    with keep_segments=False the connections keep no segments and memory does not grow
    with the file. The grouping is deterministic: two passes give the same indices."""

    def __init__(self, keep_segments: bool = True):
        self._keep = keep_segments
        self._tracks: list[_Track] = []
        self._by_key: dict[ConnectionKey, _Track] = {}
        # Live tracks by endpoint pair, any VLAN stack.
        self._by_pair: dict[tuple[Endpoint, Endpoint], list[_Track]] = {}

    def add(self, seg: Segment) -> int:
        key = connection_key(seg)
        track = self._by_key.get(key)
        if track is not None and seg.flags & SYN and track.is_new_attempt(seg):
            # Port reuse: retire the old connection under every key it was known by.
            for old in track.keys:
                del self._by_key[old]
            self._by_pair[key[1:]].remove(track)
            track = None
        if track is None:
            pair = key[1:]
            track = next((t for t in self._by_pair.get(pair, ()) if t.accepts_other_vlan(seg)),
                         None)
            if track is not None:
                track.keys.append(key)
            else:
                track = _Track(seg, key, len(self._tracks), self._keep)
                self._tracks.append(track)
                self._by_pair.setdefault(pair, []).append(track)
            self._by_key[key] = track
        track.add(seg)
        return track.index

    def roles(self, index: int) -> tuple[Endpoint, Endpoint]:
        """(client, server) of connection `index` as its segments so far decide them:
        final unless a SYN or SYN+ACK turns up later."""
        return self._tracks[index].roles()[:2]

    def connections(self) -> list[Connection]:
        return [t.finish() for t in self._tracks]


def group_connections(segments: Iterable[Segment]) -> list[Connection]:
    """Connections in order of first appearance, each with its segments in capture order.

    VLAN rule: copies of one conversation on different VLAN stacks are different
    connections (a mirror port seeing the same traffic untagged, tagged and double
    tagged), except that a segment on a new VLAN stack joins an existing connection
    when it is that connection's reverse direction and the connection has no reverse
    traffic yet: routers often carry the two directions of a session on different VLANs.
    A connection's `vlan` is the stack of its first segment.
    """
    grouper = ConnectionGrouper()
    for seg in segments:
        grouper.add(seg)
    return grouper.connections()


def read_connections(path: str | os.PathLike) -> tuple[list[Connection], list[str]]:
    """Stream a capture file into connections; also return the reader's warnings about
    damaged or cut records."""
    reader = CaptureReader(path)
    return group_connections(decode_records(reader)), reader.warnings
