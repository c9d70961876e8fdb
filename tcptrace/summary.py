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

Several processes (`jobs`; by default 2 for a capture of 16 MiB or more when there are 2
CPUs): each reads the whole file and follows the connections of its shard, chosen by
the XOR of the two ports' low bytes (the same both ways and on every VLAN stack, so
every rule above decides as in one process); forked workers send their summaries to
the first process in batches. The output is the same set of summaries; its order is
deterministic but, where two shards finish connections at the same record, not the
one-process order (the end of the file keeps it: order of first appearance). Memory is
per process: each holds its shard's connections plus the interpreter.
"""

from __future__ import annotations

import gc
import heapq
import os
import pickle
import resource
import signal
import socket
import struct
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

from .connections import decide_roles, reuses_tuple
from .decode import ETH_IP4_TCP, ETHERNET, decode_segment, syn_options
from .errors import TcptraceError
from .model import ACK, FIN, RST, SYN, Connection, Segment, Verdict
from .observer import CLOSED, TIME_WAIT, ConnectionObserver
from .pcapfile import CaptureReader
from .verdict import classify

LINGER = 60.0           # s of capture time: Linux keeps TIME-WAIT this long
PARALLEL_MIN = 16 << 20  # bytes: smaller captures are done in one process (jobs=None)
BATCH = 512             # summaries a worker process sends at once
RSS_LOG = "TCPTRACE_RSS_LOG"    # env: file to append each process's peak RSS (KiB) to
_END = float("inf")
# With several processes, the share of the connections the first one (which also merges
# and hands the summaries over) follows; the others share the rest.
FIRST_SHARE = 0.47
HOUSEKEEPING = 1024     # records between two eviction scans (and progress calls)
_FAST_MIN = ETH_IP4_TCP.size
_FINAL = (CLOSED, TIME_WAIT)
_ports = struct.Struct("!HH")
_ntoa = socket.inet_ntoa

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
        self.index = index          # order of first appearance: its first record's number
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
                 progress: Progress | None = None, jobs: int | None = None):
        self.reader = CaptureReader(path)   # raises TcptraceError: not a capture
        self.linger = linger
        self.progress = progress
        # Processes to share the connections among (each reads the whole file and keeps
        # the connections whose 4-tuple falls in its shard); None: up to 2 CPUs for a
        # large capture, one process for a small one.
        if jobs is None:
            jobs = min(2, os.cpu_count() or 1) if self.reader.size >= PARALLEL_MIN else 1
        self.jobs = max(1, jobs) if hasattr(os, "fork") else 1
        self._shard = 0
        self._emit: tuple = (0, 0)          # where the summary being yielded was done with
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
            if self.jobs > 1:
                yield from self._parallel()
            else:
                yield from self._run()
        finally:
            if was_enabled:
                gc.enable()

    def _run(self) -> Iterator[ConnectionSummary]:
        reader, by_key, closing, linger = self.reader, self._by_key, self._closing, self.linger
        unpack, special = ETH_IP4_TCP.unpack_from, self._special
        jobs, shard, shard_of = self.jobs, self._shard, _shards(self.jobs)
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
                elif jobs > 1 and shard_of[key[9] ^ key[11]] != shard:
                    continue
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
                if jobs > 1:
                    raw = key[1] if type(key) is tuple else key
                    if shard_of[raw[-3] ^ raw[-1]] != shard:
                        continue
            segments += 1
            entry = by_key.get(key)
            if entry is not None and entry[0].since >= 0 and entry[0].last <= ts - linger:
                done = self._expire(entry[0])       # done with before this segment came
                if done is not None:
                    self._emit = (records, 0)
                    yield done
                    entry = None
            if entry is None or flags & 7:          # new, or a SYN, FIN or RST
                entry, done = special(key, entry, ts, flags, seq, records)
                if done is not None:
                    self._emit = (records, 0)
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
            self._emit = (_END, tr.index)
            yield self._retire(tr)
        if self.progress is not None:
            self.progress(reader.size, reader.size)
        if not self.connections and jobs == 1:
            why = f" ({reader.warnings[0]})" if reader.warnings else ""
            raise TcptraceError(f"no TCP connections in {reader.path}{why}")

    # -- several processes ----------------------------------------------------------------

    def _parallel(self) -> Iterator[ConnectionSummary]:
        """Shard 0 here, shards 1 .. jobs-1 in forked children; every process reads the
        whole file and follows only its shard's connections (a 4-tuple's shard is the
        same both ways and on every VLAN stack, so grouping, port reuse and lingering
        are decided as in one process). The summaries are merged on where each was done
        with: the record number (shards in order at the same record), then the end of
        the file in order of first appearance, as one process does it."""
        _log_rss_at_exit()
        children: list[tuple[int, object]] = []
        finished = False
        try:
            for shard in range(1, self.jobs):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:                        # the child: never returns
                    os.close(r)
                    for _, f in children:
                        f.close()
                    self._worker(shard, w)
                os.close(w)
                children.append((pid, os.fdopen(r, "rb", buffering=1 << 16)))
            streams = [self._tagged()]
            streams += [self._received(f) for _, f in children]
            for _, s in heapq.merge(*streams, key=_first):
                yield s
            finished = True
        finally:
            for pid, f in children:
                f.close()
                if not finished:                    # the caller stopped early, or an error
                    os.kill(pid, signal.SIGTERM)
                _, _, usage = os.wait4(pid, 0)
                _log_rss("child", usage.ru_maxrss)
        if not self.connections:
            why = f" ({self.reader.warnings[0]})" if self.reader.warnings else ""
            raise TcptraceError(f"no TCP connections in {self.reader.path}{why}")

    def _tagged(self) -> Iterator[tuple[tuple, ConnectionSummary]]:
        for s in self._run():
            yield self._emit, s

    def _received(self, f) -> Iterator[tuple[tuple, ConnectionSummary]]:
        load = pickle.load
        while True:
            try:
                kind, body = load(f)
            except EOFError:
                raise TcptraceError("a summary worker process died") from None
            if kind == "batch":
                for emit, flat in body:
                    yield emit, _unflatten(flat)
            elif kind == "end":
                _, segments, connections, peak_open = body
                self.segments += segments
                self.connections += connections
                self.peak_open += peak_open         # an upper bound: peaks may not coincide
                return
            else:
                raise TcptraceError(body)

    def _worker(self, shard: int, fd: int) -> None:
        """A forked child: follow one shard, send (where, summary) in batches."""
        code = 0
        out = os.fdopen(fd, "wb", buffering=1 << 16)
        dump, proto = pickle.dump, pickle.HIGHEST_PROTOCOL
        try:
            self._shard, self.progress = shard, None
            batch: list = []
            for s in self._run():
                batch.append((self._emit, _flatten(s)))
                if len(batch) >= BATCH:
                    dump(("batch", batch), out, proto)
                    batch = []
            dump(("batch", batch), out, proto)
            dump(("end", (self.records, self.segments, self.connections, self.peak_open)),
                 out, proto)
            out.flush()
        except BrokenPipeError:
            pass                                    # the parent stopped reading
        except BaseException as e:                  # noqa: BLE001 - reported to the parent
            code = 1
            try:
                msg = str(e) if isinstance(e, TcptraceError) else f"{type(e).__name__}: {e}"
                dump(("error", msg), out, proto)
                out.flush()
            except BaseException:                   # noqa: BLE001
                pass
        finally:
            os._exit(code)

    # -- connections come and go --------------------------------------------------------

    def _special(self, key, entry: tuple[_Conn, bool] | None, t: float, flags: int,
                 seq: int, record: int) -> tuple[tuple[_Conn, bool], ConnectionSummary | None]:
        """The grouping and role facts of a segment that is new or carries SYN, FIN or
        RST: (its connection and direction, a connection this one retired or None)."""
        done = None
        if entry is not None and flags & (SYN | ACK) == SYN:
            tr, from_a = entry
            if reuses_tuple(tr.finished(), bool(tr.ends & (1 if from_a else 2)), seq,
                            tr.syn_seq):
                done, entry = self._retire(tr), None
        if entry is None:
            entry = self._join(key) or self._open(key, t, flags, record)
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

    def _open(self, key, t: float, flags: int, record: int) -> tuple[_Conn, bool]:
        vlan, raw = key if type(key) is tuple else ((), key)
        rev = _reverse(raw)
        tr = _Conn(record, key, raw, vlan, t,
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
                    self._emit = (self.records, 0)
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
    if len(raw) == 12:
        sport, dport = _ports.unpack_from(raw, 8)
        return (_ntoa(raw[:4]), sport), (_ntoa(raw[4:8]), dport)
    n = (len(raw) - 4) // 2
    family = socket.AF_INET if n == 4 else socket.AF_INET6
    sport, dport = _ports.unpack_from(raw, 2 * n)
    return ((socket.inet_ntop(family, raw[:n]), sport),
            (socket.inet_ntop(family, raw[n:2 * n]), dport))


def _summary(tr: _Conn) -> ConnectionSummary:
    """Roles as connections.py decides them, then the verdict of that role's observer."""
    syn_from = None if tr.syn_seq is None else (tr.a if tr.syn_from_a else tr.b)
    synack_to = None if tr.synack_to_a is None else (tr.a if tr.synack_to_a else tr.b)
    client, _, why = decide_roles(tr.a, tr.b, syn_from, synack_to)
    client_a = client == tr.a
    obs = (tr.obs_a if client_a else tr.obs_b) or tr.obs_a or tr.obs_b
    (cip, cport), (sip, sport) = (tr.a, tr.b) if client_a else (tr.b, tr.a)
    conn = Connection(cip, cport, sip, sport, [], tr.vlan, why)
    c, s = obs.client, obs.server
    return ConnectionSummary(conn, tr.first, tr.last, classify(conn, obs),
                             _sent(Sent, (c.packets, c.bytes, c.retransmissions, c.zero_windows)),
                             _sent(Sent, (s.packets, s.bytes, s.retransmissions, s.zero_windows)))


def _first(item: tuple) -> tuple:
    return item[0]


def _flatten(s: ConnectionSummary) -> tuple:
    """A summary as plain values, cheap to pickle."""
    c, v = s.conn, s.verdict
    return (c.client_ip, c.client_port, c.server_ip, c.server_port, c.vlan, c.roles_guessed,
            s.first, s.last, v.close, v.first_closer, v.rst_from, v.simultaneous, v.time_wait,
            v.final["client"], v.final["server"], v.conn_state, v.history,
            tuple(s.client), tuple(s.server))


def _unflatten(t: tuple) -> ConnectionSummary:
    (cip, cport, sip, sport, vlan, why, first, last, close, closer, rst_from, simultaneous,
     time_wait, cfinal, sfinal, conn_state, history, client, server) = t
    return ConnectionSummary(
        Connection(cip, cport, sip, sport, [], vlan, why), first, last,
        Verdict(close, closer, rst_from, simultaneous, time_wait,
                {"client": cfinal, "server": sfinal}, conn_state, history),
        _sent(Sent, client), _sent(Sent, server))


_sent = tuple.__new__
_rss_logged = False


def _log_rss(who: str, kib: int) -> None:
    """Peak resident memory of one process, for the benchmark, which sums them: wait4()
    on the command gives only the largest of its process tree."""
    path = os.environ.get(RSS_LOG)
    if path:
        with open(path, "a") as f:
            f.write(f"{who} {kib}\n")


def _log_rss_at_exit() -> None:
    global _rss_logged
    if os.environ.get(RSS_LOG) and not _rss_logged:
        import atexit

        _rss_logged = True
        atexit.register(lambda: _log_rss("parent", _peak_rss()))


def _peak_rss() -> int:
    """This process's peak RSS in KiB: VmHWM, which (unlike getrusage's ru_maxrss) does
    not carry over the peak of whatever process exec()'d this one."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _shards(jobs: int) -> bytes:
    """Shard of a connection by the XOR of its ports' low bytes (the same both ways and
    on every VLAN stack, so a connection never straddles two shards)."""
    if jobs <= 1:
        return bytes(256)
    first = round(256 * FIRST_SHARE)
    return bytes(0 if v < first else 1 + (v - first) * (jobs - 1) // (256 - first)
                 for v in range(256))
