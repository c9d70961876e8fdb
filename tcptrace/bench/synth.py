"""A synthetic capture with its own ground truth: many interleaved TCP connections, each
closing in a known way, written as classic pcap with `struct`.

Every connection follows a script (a kind below) whose expected verdict is stated by the
script itself, not computed by tcptrace, so the benchmark can check the summary against
something independent. Connections start at a steady rate and overlap (a few thousand
open at once); packets of all connections are merged in time order through a heap, so
memory stays bounded by the connections in flight. 10% of the connections run between
127.0.0.1 and 127.0.0.1, some of them reusing a finished connection's 4-tuple with a new
initial sequence number (port reuse), the rest between distinct hosts.

The capture point is next to both endpoints (as on loopback): a segment is seen when it
is sent and when it is received. Frames are Ethernet/IPv4/TCP, cut at SNAPLEN bytes;
IP total lengths state the real payload size.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import struct
from typing import NamedTuple

VERSION = 2                     # bump when the output for a given seed changes
SNAPLEN = 128
T0 = 1_700_000_000              # capture start, seconds since the epoch
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1)
_RECORD = struct.Struct("<IIII").pack
_FRAME = struct.Struct("!12sHBBHHHBBH4s4sHHIIBBHHH").pack   # Ethernet, IPv4, TCP, no options
_SYN_OPTIONS = bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 7, 4, 2, 1, 1])   # MSS 1460, NOP, WS 7, SACK-OK
_MACS = bytes.fromhex("02000000000102000000000a")
_LO_MACS = bytes(12)
_ZEROS = bytes(SNAPLEN)
_MSS = 1448

# kind -> (close, first_closer, rst_from, simultaneous, time_wait), and its weight.
KINDS = {
    "fin-client-4": (("fin", "client", None, False, "client"), 14),
    "fin-client-3": (("fin", "client", None, False, "client"), 14),
    "fin-server-4": (("fin", "server", None, False, "server"), 10),
    "fin-server-3": (("fin", "server", None, False, "server"), 14),
    "fin-data-client": (("fin", "client", None, False, "client"), 6),
    "fin-data-server": (("fin", "server", None, False, "server"), 6),
    "simultaneous-client": (("fin", "client", None, True, "both"), 3),
    "simultaneous-server": (("fin", "server", None, True, "both"), 3),
    "rst-client": (("rst", "client", "client", False, None), 5),
    "rst-server": (("rst", "server", "server", False, None), 5),
    "rst-crossed": (("rst", "client", "client", False, None), 2),
    "rst-both": (("rst", "server", "both", False, None), 2),
    "rst-after-fin": (("rst", "client", "server", False, None), 3),
    "refused": (("refused", "server", "server", False, None), 6),
    "unanswered": (("unanswered", None, None, False, None), 1),
}
# Kinds that never finish: only the last connections of the file get them.
TAIL_KINDS = {"open": ("open", None, None, False, None),
              "half-open": ("half-closed", "client", None, False, None)}
# Kinds after which the 4-tuple may be reused by a new connection (connections.py's rule:
# an RST was seen, or both FINs).
_REUSABLE = {k for k, (v, _) in KINDS.items() if v[0] in ("fin", "rst", "refused")}
VERDICT_FIELDS = ("close", "first_closer", "rst_from", "simultaneous", "time_wait")


class Expected(NamedTuple):
    """One connection as the generator made it, with the verdict it must get."""

    client: str
    server: str
    start_us: int               # capture time of its first packet, microseconds
    kind: str
    close: str
    first_closer: str | None
    rst_from: str | None
    simultaneous: bool
    time_wait: str | None


class _Script:
    """Builds one connection's packets: (t_us, from_client, flags, seq, ack, length, win)."""

    def __init__(self, rng: random.Random, t: int, rtt: int):
        self.rng, self.t, self.rtt = rng, t, rtt
        self.c = rng.getrandbits(32)        # next sequence number to send, per side
        self.s = rng.getrandbits(32)
        self.packets: list[tuple] = []

    def send(self, from_client: bool, flags: int, length: int = 0, gap: int = 0,
             win: int = 502, seq: int | None = None, ack: int | None = None) -> None:
        """One segment `gap` µs after the previous one. With an explicit `seq` it is a
        copy of one already sent (the next sequence number does not move)."""
        self.t += gap or 1
        mine = self.c if from_client else self.s
        if ack is None:
            ack = (self.s if from_client else self.c) if flags & ACK else 0
        self.packets.append((self.t, from_client, flags, mine if seq is None else seq,
                             ack, length, win))
        if seq is None:
            mine = (mine + length + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
            if from_client:
                self.c = mine
            else:
                self.s = mine

    def half(self) -> int:
        return max(1, self.rtt // 2)

    def handshake(self) -> None:
        self.send(True, SYN, win=64240)
        self.send(False, SYN | ACK, gap=self.half(), win=65160)
        self.send(True, ACK, gap=self.half())

    def exchange(self, fin_client: bool = False, fin_server: bool = False) -> None:
        """A request and a response, with ACKs; a FIN may ride on the last segment of
        either. Now and then a segment is retransmitted or a window closes for a while."""
        rng, h = self.rng, self.half()
        self.t += rng.randrange(1, 24_000_000)              # think time
        self.send(True, PSH | ACK | (FIN if fin_client else 0), rng.randrange(60, _MSS),
                  gap=10)
        if fin_client:
            self.send(False, ACK, gap=h)                    # the request and its FIN
        parts = rng.randrange(1, 4)
        for i in range(parts):
            last = i == parts - 1
            length = _MSS if not last else rng.randrange(1, _MSS)
            if rng.random() < 0.02:                         # lost, then retransmitted
                self.send(False, PSH | ACK, length, gap=h, seq=self.s)
                self.t += 200_000
            self.send(False, PSH | ACK | (FIN if fin_server and last else 0), length,
                      gap=h)
            if i % 2 or last:
                if rng.random() < 0.01:                     # the reader stalls a moment
                    self.send(True, ACK, gap=h, win=0)
                    self.t += rng.randrange(10_000, 300_000)
                self.send(True, ACK, gap=h)

    def fin_close(self, client_first: bool, segments: int) -> None:
        a, h = client_first, self.half()
        self.send(a, FIN | ACK, gap=self.rng.randrange(1, 2_000_000))
        if segments == 4:
            self.send(not a, ACK, gap=h + 40_000)           # delayed ACK
            self.send(not a, FIN | ACK, gap=self.rng.randrange(1, 500_000))
        else:
            self.send(not a, FIN | ACK, gap=h)
        self.send(a, ACK, gap=h)

    def simultaneous(self, client_first: bool) -> None:
        """Both FINs cross: the second does not acknowledge the first; each side then
        acknowledges the other's FIN."""
        a = client_first
        self.t += self.rng.randrange(1, 2_000_000)
        before = self.c if a else self.s        # what b has received from a so far
        self.send(a, FIN | ACK)
        self.send(not a, FIN | ACK, gap=3, ack=before)
        self.send(a, ACK, gap=self.half())
        self.send(not a, ACK, gap=1)


def _script(kind: str, rng: random.Random, t: int, rtt: int) -> list[tuple]:
    sc = _Script(rng, t, rtt)
    if kind in ("refused", "unanswered"):
        for i in range(rng.randrange(1, 4)):                # the SYN and its retries
            sc.send(True, SYN, win=64240, seq=sc.c, gap=1_000_000 << i if i else 1)
            if kind == "refused":
                sc.send(False, RST | ACK, gap=sc.half(), win=0, seq=0,
                        ack=(sc.c + 1) & 0xFFFFFFFF)
        return sc.packets
    sc.handshake()
    for _ in range(rng.randrange(0, 2)):
        sc.exchange()
    if kind == "fin-data-client":
        sc.exchange(fin_client=True)
        sc.send(False, FIN | ACK, gap=sc.half())
        sc.send(True, ACK, gap=sc.half())
        return sc.packets
    if kind == "fin-data-server":
        sc.exchange(fin_server=True)
        sc.send(True, FIN | ACK, gap=sc.half())
        sc.send(False, ACK, gap=sc.half())
        return sc.packets
    sc.exchange()
    pause = rng.randrange(1, 2_000_000)
    if kind.startswith("fin-"):
        sc.fin_close(kind.startswith("fin-client"), int(kind[-1]))
    elif kind.startswith("simultaneous"):
        sc.simultaneous(kind.endswith("client"))
    elif kind in ("rst-client", "rst-server"):
        sc.send(kind == "rst-client", RST | ACK, gap=pause, win=0)
    elif kind == "rst-crossed":
        # The client aborts while the server's data is in flight; the client's kernel
        # answers that data with a bare RST.
        sc.send(True, RST | ACK, gap=pause, win=0)
        sc.send(False, PSH | ACK, 100, gap=2)
        sc.send(True, RST, win=0, seq=sc.c)
    elif kind == "rst-both":
        sc.send(False, RST | ACK, gap=pause, win=0)
        sc.send(True, RST | ACK, gap=2, win=0)
    elif kind == "rst-after-fin":
        # The client half-closes; the server acknowledges, then aborts.
        sc.send(True, FIN | ACK, gap=pause)
        sc.send(False, ACK, gap=sc.half())
        sc.send(False, RST | ACK, gap=rng.randrange(1, 500_000), win=0)
    elif kind == "half-open":
        sc.send(True, FIN | ACK, gap=pause)
        sc.send(False, ACK, gap=sc.half())
    return sc.packets


class _Endpoints:
    """Addresses and ports: every 4-tuple unique, except loopback ports deliberately
    reused after a finished connection."""

    LO_SERVERS = (8080, 5432, 6379)

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[tuple] = set()
        self.free: dict[int, list[tuple[int, int]]] = {p: [] for p in self.LO_SERVERS}
        self.next_port = {p: 32768 for p in self.LO_SERVERS}
        self.clients = [bytes([10, rng.randrange(1, 255), rng.randrange(256),
                               rng.randrange(1, 255)]) for _ in range(4000)]
        self.servers = [(bytes([192, 168, 0, i]), port)
                        for i in range(1, 41) for port in (80, 443, 22, 25, 3306)]

    def pick(self, start: int, loopback: bool) -> tuple[bytes, int, bytes, int]:
        rng = self.rng
        if loopback:
            sport = rng.choice(self.LO_SERVERS)
            free = self.free[sport]
            if free and free[0][0] < start:
                cport = heapq.heappop(free)[1]
            else:
                cport = self.next_port[sport]
                self.next_port[sport] += 1
            return b"\x7f\0\0\1", cport, b"\x7f\0\0\1", sport
        while True:
            cip, (sip, sport) = rng.choice(self.clients), rng.choice(self.servers)
            cport = rng.randrange(32768, 61000)
            if (cip, cport, sip, sport) not in self.used:
                self.used.add((cip, cport, sip, sport))
                return cip, cport, sip, sport

    def release(self, tup: tuple, end: int) -> None:
        if tup[0] == b"\x7f\0\0\1":
            heapq.heappush(self.free[tup[3]], (end + 1_000_000, tup[1]))


def _endpoint(ip: bytes, port: int) -> str:
    return f"{'.'.join(map(str, ip))}:{port}"


def _frame(t: int, cip: bytes, cport: int, sip: bytes, sport: int, pkt: tuple) -> bytes:
    _, from_client, flags, seq, ack, length, win = pkt
    src, sp, dst, dp = (cip, cport, sip, sport) if from_client else (sip, sport, cip, cport)
    opts = _SYN_OPTIONS if flags & SYN else b""
    hlen = 20 + len(opts)
    orig = 34 + hlen + length
    cap = min(orig, SNAPLEN)
    head = _FRAME(_LO_MACS if src == b"\x7f\0\0\1" else _MACS, 0x0800, 0x45, 0,
                  20 + hlen + length, 0, 0x4000, 64, 6, 0, src, dst, sp, dp, seq, ack,
                  hlen << 2, flags, win, 0, 0) + opts
    return (_RECORD(t // 1_000_000, t % 1_000_000, cap, orig) + head
            + _ZEROS[:cap - len(head)])


def generate(path: str | os.PathLike, connections: int, seed: int = 1,
             rate: float = 100.0) -> tuple[list[Expected], int]:
    """Write the capture; returns every connection's expectation (in order of start) and
    the largest number of connections open at once. `rate`: connections per second."""
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [w for _, w in KINDS.values()]
    ends = _Endpoints(rng)
    expected: list[Expected] = []
    heap: list[tuple] = []          # (t_us, order, frame bytes, end marker)
    out: list[bytes] = [_PCAP_HEADER]
    order = 0
    open_now = max_open = 0
    tail = max(1, connections // 50)
    with open(path, "wb") as f:
        t = T0 * 1_000_000
        for n in range(connections):
            t += int(rng.expovariate(rate) * 1_000_000) + 1
            while heap and heap[0][0] < t:
                open_now -= _pop(heap, out, ends)
            if len(out) > 4096:
                f.write(b"".join(out))
                out.clear()
            kind = (rng.choice(list(TAIL_KINDS)) if n >= connections - tail
                    else rng.choices(names, weights)[0])
            verdict = TAIL_KINDS[kind] if kind in TAIL_KINDS else KINDS[kind][0]
            loopback = rng.random() < 0.1
            tup = ends.pick(t, loopback)
            rtt = rng.randrange(20, 200) if loopback else rng.randrange(1_000, 50_000)
            packets = _script(kind, rng, t, rtt)
            for pkt in packets:
                order += 1
                heapq.heappush(heap, (pkt[0], order, _frame(pkt[0], *tup, pkt), None))
            # An end marker (sorted after the last packet) frees the port and counts down.
            order += 1
            heapq.heappush(heap, (packets[-1][0], order, b"",
                                  tup if kind in _REUSABLE else ()))
            open_now += 1
            max_open = max(max_open, open_now)
            expected.append(Expected(_endpoint(*tup[:2]), _endpoint(*tup[2:]), packets[0][0], kind,
                                     *verdict))
        while heap:
            _pop(heap, out, ends)
        out.append(b"")
        f.write(b"".join(out))
    return expected, max_open


def _pop(heap: list, out: list[bytes], ends: _Endpoints) -> int:
    """Write the earliest packet; 1 when it was a connection's end marker."""
    t, _, frame, marker = heapq.heappop(heap)
    if marker is None:
        out.append(frame)
        return 0
    if marker:
        ends.release(marker, t)
    return 1


def one_syn_capture(path: str | os.PathLike, n: int) -> None:
    """n connections of one SYN each that nobody answers, as a port scan or a SYN flood
    looks from the target: each from its own client address and port, 10 µs apart, to
    one server. Every one stays open to the end of the file, so a reader holds them
    all at once (the bench's odd input that must stay cheap)."""
    t = T0 * 1_000_000
    sip, sport = bytes([192, 168, 0, 1]), 80
    out: list[bytes] = [_PCAP_HEADER]
    with open(path, "wb") as f:
        for i in range(n):
            t += 10
            cip = bytes([10, 64 | (i >> 16) & 63, (i >> 8) & 255, i & 255])
            seq = i * 2_654_435_761 & 0xFFFFFFFF        # spread out, reproducible
            out.append(_frame(t, cip, 32768 + i % 28_000, sip, sport,
                              (t, True, SYN, seq, 0, 0, 64240)))
            if len(out) > 4096:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))


def header_then_zeros(path: str | os.PathLike, size: int) -> None:
    """A classic pcap header (Ethernet) followed by zeros up to `size` bytes, written
    sparse (truncate) so a GiB costs no disk: the bench's other odd input."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        f.truncate(size)


def paths(directory: str | os.PathLike, connections: int, seed: int) -> tuple[str, str]:
    """(capture, truth) file names: one pair per generator version, seed and size."""
    stem = os.path.join(os.fspath(directory), f"synth-v{VERSION}-seed{seed}-{connections}")
    return stem + ".pcap", stem + ".truth.jsonl"


def ensure(directory: str | os.PathLike, connections: int, seed: int = 1) -> tuple[str, str]:
    """paths(), generated unless a previous run left them."""
    os.makedirs(directory, exist_ok=True)
    pcap, truth = paths(directory, connections, seed)
    if not (os.path.exists(pcap) and os.path.exists(truth)):
        expected, max_open = generate(pcap + ".tmp", connections, seed)
        with open(truth + ".tmp", "w") as f:
            f.write(json.dumps({"max_open": max_open}) + "\n")
            for e in expected:
                f.write(json.dumps(e._asdict()) + "\n")
        os.replace(pcap + ".tmp", pcap)
        os.replace(truth + ".tmp", truth)
    return pcap, truth


def load_truth(path: str | os.PathLike) -> tuple[list[Expected], int]:
    with open(path) as f:
        max_open = json.loads(f.readline())["max_open"]
        return [Expected(**json.loads(line)) for line in f], max_open
