"""The close scenarios of the Python runtime, choreographed in steps so the intermediate
states can be seen.

Each scenario drives the two real sockets of a connected `Stage`: the *closer* (client or
server, `--closer`) makes the closing call, the *peer* answers. Kernel states are
snapshotted with `ss` between steps through the stage's recorder. Each returns the byte
counts of the data the closer had queued at the close call.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcptrace.errors import TcptraceError
from tcptrace.live.loopback import Stage
from tcptrace.model import TcpState

GREETING = b"hello\n"
UNREAD = b"data the closer never reads\n"
HALF_CLOSE_CHUNKS = (b"still flowing 1\n", b"still flowing 2\n", b"still flowing 3\n")
CHUNK = 65536


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str        # one line: what the mode does at the syscall level
    node: str           # the Node.js call that does the same
    run: Callable[[Roles, int], dict]
    retries: int = 1    # simultaneous close is retried until the FINs cross
    closer: str | None = None   # who closes, when the mode decides (a vanishing server)
    stage: Callable[..., Any] | None = None   # a run of its own (namespaces), else loopback
    node_too: bool = False      # `run` also drives --runtime node (a Node process holds
                                # the closer's socket), instead of node/close.js
    where: str = ""             # where `stage` runs it, for the header


class Roles:
    """The stage seen from the close: who closes (closer) and who answers (peer)."""

    def __init__(self, stage: Stage, closer: str):
        self.stage, self.rec = stage, stage.rec
        self.closer = closer
        self.peer = "server" if closer == "client" else "client"
        self.runtime = "python"     # "node": the closer's socket lives in a Node process

    def sock(self, side: str) -> socket.socket:
        client, server = self.stage.pair
        return client if side == "client" else server

    def wait_for(self, after: str, closer: str, peer: str) -> None:
        """Record what `ss` shows once the closer and the peer are in these states."""
        want = {self.closer: closer, self.peer: peer}
        self.rec.wait_for(after, client=want["client"], server=want["server"])

    def call(self, side: str, what: str, fn, *args):
        self.rec.event(side, what)
        return fn(*args)


def open_connection(stage: Stage) -> None:
    """Handshake, then a greeting the server reads: the ladder starts with data and its ACK."""
    stage.connect()
    stage.rec.wait_for("handshake done", client=TcpState.ESTABLISHED,
                       server=TcpState.ESTABLISHED)
    stage.rec.event("client", f"write({len(GREETING)} bytes)")
    client, server = stage.pair
    client.sendall(GREETING)
    got = _recv_exactly(server, len(GREETING))
    stage.rec.event("server", f"read {got} bytes")


def _recv_exactly(sock: socket.socket, n: int) -> int:
    got = 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            break
        got += len(data)
    return got


def _queue_pending(r: Roles, pending: int) -> int:
    """Write up to `pending` bytes without blocking; return how many the kernel accepted.

    The peer is not reading yet, so this fills the closer's send buffer and the peer's
    receive buffer: the bytes a close call finds queued.
    """
    if pending <= 0:
        return 0
    sock = r.sock(r.closer)
    started = time.time()
    sock.setblocking(False)
    accepted = 0
    block = b"x" * CHUNK
    try:
        while accepted < pending:
            accepted += sock.send(block[: min(CHUNK, pending - accepted)])
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    r.rec.event(r.closer, f"write({pending} bytes): the kernel accepted {accepted}", t=started)
    return accepted


def _read_to_end(r: Roles, side: str) -> int:
    """Read until EOF or an error, recording how it ended; return the bytes read."""
    sock, total = r.sock(side), 0
    while True:
        try:
            data = sock.recv(CHUNK)
        except ConnectionResetError:
            r.rec.event(side, f"read {total} bytes, then ECONNRESET")
            return total
        if not data:
            r.rec.event(side, f"read {total} bytes, then EOF (read returned 0)")
            return total
        total += len(data)


def _peer_closes(r: Roles) -> None:
    r.call(r.peer, "close()", r.sock(r.peer).close)
    r.wait_for(f"{r.peer} close()", TcpState.TIME_WAIT, TcpState.CLOSED)
    r.call(r.closer, "close(): the kernel keeps the TIME-WAIT socket", r.sock(r.closer).close)


def run_end(r: Roles, pending: int) -> dict:
    """shutdown(SHUT_WR): every queued byte is delivered, then a FIN."""
    accepted = _queue_pending(r, pending)
    rest = pending - accepted
    closer = r.sock(r.closer)
    if rest:
        # Like Node's end(): the FIN may only leave once the queue has drained, which
        # needs the reader; so the rest is written (then the FIN sent) from a thread.
        def finish() -> None:
            block, left = b"x" * CHUNK, rest    # never the whole rest in memory at once
            try:
                while left:
                    left -= closer.send(block[:min(CHUNK, left)])
                closer.shutdown(socket.SHUT_WR)
            except OSError:
                pass    # the stage was torn down (Ctrl-C, an error): the caller reports it
        writer = threading.Thread(target=finish, daemon=True)
        r.rec.event(r.closer, f"shutdown(SHUT_WR) once the last {rest} bytes are written")
        writer.start()
        r.rec.snapshot(f"{r.closer} asked to close; data still queued")
    else:
        writer = None
        r.call(r.closer, "shutdown(SHUT_WR)", closer.shutdown, socket.SHUT_WR)
        if accepted:
            # The FIN waits behind the queued data, which waits for the reader.
            r.rec.snapshot(f"{r.closer} shutdown(SHUT_WR); data still queued")
        else:
            r.wait_for(f"{r.closer} shutdown(SHUT_WR)",
                       TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    delivered = _read_to_end(r, r.peer)
    if writer:
        writer.join()
        r.wait_for(f"{r.peer} read to EOF",
                   TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    _peer_closes(r)
    return {"written": pending, "delivered": delivered}


def run_plain_close(r: Roles, pending: int) -> dict:
    """Plain close() with nothing unread: a FIN; the orphaned socket still delivers."""
    written = _queue_pending(r, pending)
    r.call(r.closer, "close()", r.sock(r.closer).close)
    if not pending:
        r.wait_for(f"{r.closer} close()", TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    delivered = _read_to_end(r, r.peer)
    r.call(r.peer, "close()", r.sock(r.peer).close)
    r.wait_for(f"{r.peer} close()", TcpState.TIME_WAIT, TcpState.CLOSED)
    return {"written": written, "delivered": delivered}


def run_reset(r: Roles, pending: int) -> dict:
    """SO_LINGER {on, 0} then close(): an RST; what the peer had not read is lost."""
    written = _queue_pending(r, pending)
    sock = r.sock(r.closer)
    r.rec.event(r.closer, "setsockopt(SO_LINGER, {on, 0}); close()")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    r.wait_for(f"{r.closer} close() with SO_LINGER {{on, 0}}",
               TcpState.CLOSED, TcpState.CLOSED)
    delivered = _read_to_end(r, r.peer)
    r.call(r.peer, "close()", r.sock(r.peer).close)
    return {"written": written, "delivered": delivered}


def run_unread(r: Roles, pending: int) -> dict:
    """close() while received data is still unread in the kernel: an RST, not a FIN."""
    written = _queue_pending(r, pending)
    r.call(r.peer, f"write({len(UNREAD)} bytes) that the {r.closer} will never read",
           r.sock(r.peer).sendall, UNREAD)
    r.rec.wait_for(f"{r.peer} wrote data the {r.closer} does not read", recv_q=r.closer)
    r.call(r.closer, f"close() with {len(UNREAD)} bytes unread", r.sock(r.closer).close)
    r.wait_for(f"{r.closer} close() with unread data",
               TcpState.CLOSED, TcpState.CLOSED)
    delivered = _read_to_end(r, r.peer)
    r.call(r.peer, "close()", r.sock(r.peer).close)
    return {"written": written, "delivered": delivered}


def run_half_close(r: Roles, pending: int) -> dict:
    """The closer ends its side; the peer keeps sending and the closer keeps reading."""
    delivered_pending = 0
    written = _queue_pending(r, pending)
    r.call(r.closer, "shutdown(SHUT_WR)", r.sock(r.closer).shutdown, socket.SHUT_WR)
    if written:
        delivered_pending = _recv_exactly(r.sock(r.peer), written)
    r.wait_for(f"{r.closer} shutdown(SHUT_WR)",
               TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    for chunk in HALF_CLOSE_CHUNKS:
        r.call(r.peer, f"write({len(chunk)} bytes) after the {r.closer}'s FIN",
               r.sock(r.peer).sendall, chunk)
        got = _recv_exactly(r.sock(r.closer), len(chunk))
        r.rec.event(r.closer, f"read {got} bytes after its own FIN")
    r.rec.snapshot(f"data flowed {r.peer} to {r.closer} after the FIN")
    r.call(r.peer, "close()", r.sock(r.peer).close)
    _read_to_end(r, r.closer)
    r.wait_for(f"{r.peer} close()", TcpState.TIME_WAIT, TcpState.CLOSED)
    r.call(r.closer, "close(): the kernel keeps the TIME-WAIT socket", r.sock(r.closer).close)
    return {"written": written, "delivered": delivered_pending}


def run_simultaneous(r: Roles, pending: int) -> dict:
    """Both sides call shutdown(SHUT_WR) at the same moment; their FINs may cross.

    On loopback a FIN is processed by the receiving socket within the sender's own
    syscall, so the two calls must overlap on two CPUs: each is made by a forked child
    pinned to its own CPU, spinning on a shared flag, so they start within a microsecond
    or so (threads, serialised by the GIL, cross half as often).
    """
    flags = mmap.mmap(-1, 64)       # [0] go, [1..2] ready, then two start times
    cpus = sorted(os.sched_getaffinity(0))
    children = []
    try:
        for i, side in enumerate(("client", "server")):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                try:
                    os.sched_setaffinity(0, {cpus[i % len(cpus)]})
                    flags[1 + i] = 1
                    while flags[0] == 0:
                        pass
                    struct.pack_into("d", flags, 8 + 8 * i, time.time())
                    r.sock(side).shutdown(socket.SHUT_WR)
                finally:
                    os._exit(0)
            children.append(pid)
        deadline = time.monotonic() + 5
        while not (flags[1] and flags[2]):
            if time.monotonic() > deadline:
                raise TcptraceError("the two shutdown() processes never got ready")
    finally:
        flags[0] = 1                # release (or unblock) the children, then reap them
        for pid in children:
            os.waitpid(pid, 0)
    for i, side in enumerate(("client", "server")):
        started = struct.unpack_from("d", flags, 8 + 8 * i)[0]
        r.rec.event(side, "shutdown(SHUT_WR), at the same moment as the other side", t=started)
    for side in ("client", "server"):
        _read_to_end(r, side)
    r.rec.wait_for("both shutdown(SHUT_WR)", client=TcpState.TIME_WAIT,
                   server=TcpState.TIME_WAIT)
    for side in ("client", "server"):
        r.call(side, "close()", r.sock(side).close)
    return {"written": 0, "delivered": 0}


_LINGER = "setsockopt(SO_LINGER, {on, 0}) then close(): an RST, queued data discarded"

MODES = {m.name: m for m in (
    Mode("end", "shutdown(SHUT_WR): a FIN after all queued data; the peer reads to EOF, "
         "then close()", "socket.end()", run_end),
    Mode("close", "plain close() with nothing unread: a FIN; the peer reads to EOF, "
         "then close()", "socket.destroy() with nothing unread", run_plain_close),
    Mode("destroy", _LINGER + " (what 'destroy sends RST' answers mean)",
         "socket.resetAndDestroy(); plain socket.destroy() usually sends a FIN "
         "(see --runtime node)", run_reset),
    Mode("reset", _LINGER, "socket.resetAndDestroy()", run_reset),
    Mode("unread", "close() while received data is still unread in the kernel receive "
         "queue: an RST instead of a FIN (RFC 2525 2.17)",
         "socket.destroy() on a paused socket with unread data", run_unread),
    Mode("half-close", "shutdown(SHUT_WR); the peer keeps sending, the closer keeps reading, "
         "then the peer closes", "socket.end() with allowHalfOpen", run_half_close),
    Mode("simultaneous", "both sides shutdown(SHUT_WR) at the same moment, retried until "
         "the FINs cross", "socket.end() on both sides in the same tick", run_simultaneous,
         retries=50),
)}

# Modes where "who closes" has no meaning: both sides close at once.
SYMMETRIC = {"simultaneous"}


# Modes kept in modules of their own (one concept each) register themselves in MODES.
from tcptrace.live import ending_modes, keepalive_race, port_reuse, vanish  # noqa: E402, F401
