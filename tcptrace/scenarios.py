"""The close scenarios, choreographed in steps so the intermediate states can be seen.

Each scenario drives the two real sockets of a `Stage` and returns the byte counts of the
data queued at the moment of the close call. Kernel states are snapshotted with `ss`
between steps through the stage's recorder.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tcptrace.stage import Stage

GREETING = b"hello\n"
CHUNK = 65536


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str        # one line: what the mode does at the syscall level
    node: str           # the Node.js call that does the same
    run: Callable[[Stage, int], dict]


def _open(stage: Stage) -> None:
    stage.connect()
    stage.rec.wait_for("handshake done", client="ESTABLISHED", server="ESTABLISHED")
    stage.rec.event("client", f"write({len(GREETING)} bytes)")
    stage.client.sendall(GREETING)
    got = _recv_exactly(stage.server, len(GREETING))
    stage.rec.event("server", f"read {got} bytes")


def _recv_exactly(sock: socket.socket, n: int) -> int:
    got = 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            break
        got += len(data)
    return got


def _queue_pending(stage: Stage, pending: int) -> int:
    """Write up to `pending` bytes without blocking; return how many the kernel accepted.

    The server is not reading yet, so this fills the client's send buffer and the server's
    receive buffer: the bytes a close call finds queued.
    """
    if pending <= 0:
        return 0
    started = time.time()
    stage.client.setblocking(False)
    accepted = 0
    block = b"x" * CHUNK
    try:
        while accepted < pending:
            accepted += stage.client.send(block[: min(CHUNK, pending - accepted)])
    except BlockingIOError:
        pass
    finally:
        stage.client.setblocking(True)
    stage.rec.event("client", f"write({pending} bytes): the kernel accepted {accepted}",
                    t=started)
    return accepted


def _read_to_end(sock: socket.socket) -> tuple[int, str]:
    """Read until EOF or an error; return (bytes, how it ended)."""
    total = 0
    while True:
        try:
            data = sock.recv(CHUNK)
        except ConnectionResetError:
            return total, "ECONNRESET"
        if not data:
            return total, "EOF"
        total += len(data)


def run_end(stage: Stage, pending: int) -> dict:
    """Graceful close: every queued byte is delivered, then a FIN."""
    _open(stage)
    accepted = _queue_pending(stage, pending)
    rest = pending - accepted
    if rest:
        # Like Node's end(): the FIN may only leave once the queue has drained, which
        # needs the reader; so the rest is written (then the FIN sent) from a thread.
        def finish() -> None:
            stage.client.sendall(b"x" * rest)
            stage.client.shutdown(socket.SHUT_WR)
        writer = threading.Thread(target=finish, daemon=True)
        writer.start()
        stage.rec.event("client", f"shutdown(SHUT_WR) requested with {rest} bytes still to write")
        stage.rec.snapshot("client asked to close; data still queued")
    else:
        writer = None
        stage.rec.event("client", "shutdown(SHUT_WR)")
        stage.client.shutdown(socket.SHUT_WR)
        stage.rec.wait_for("client shutdown(SHUT_WR)", client="FIN-WAIT-2", server="CLOSE-WAIT")
    delivered, ending = _read_to_end(stage.server)
    stage.rec.event("server", f"read {delivered} bytes, then {ending}")
    if writer:
        writer.join()
        stage.rec.wait_for("server read to EOF", client="FIN-WAIT-2", server="CLOSE-WAIT")
    stage.rec.event("server", "close()")
    stage.server.close()
    stage.rec.wait_for("server close()", client="TIME-WAIT", server="CLOSED")
    stage.rec.event("client", "close(): the kernel keeps the TIME-WAIT socket")
    stage.client.close()
    return {"written": pending, "delivered": delivered}


def run_destroy(stage: Stage, pending: int) -> dict:
    """Abortive close: SO_LINGER {on, 0} then close() sends an RST, queued data is lost."""
    _open(stage)
    written = _queue_pending(stage, pending)
    stage.rec.event("client", "SO_LINGER {on, 0}; close()")
    stage.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stage.client.close()
    stage.rec.wait_for("client close() with SO_LINGER {on, 0}", client="CLOSED", server="CLOSED")
    delivered, ending = _read_to_end(stage.server)
    stage.rec.event("server", f"read {delivered} bytes, then {ending}")
    stage.rec.event("server", "close()")
    stage.server.close()
    return {"written": written, "delivered": delivered}


MODES = {
    "end": Mode(
        "end",
        "client shutdown(SHUT_WR): a FIN after all queued data; the server reads to EOF, "
        "then close()",
        "socket.end()",
        run_end),
    "destroy": Mode(
        "destroy",
        "client setsockopt(SO_LINGER, {on, 0}) then close(): an RST, queued data discarded",
        "socket.resetAndDestroy() (plain socket.destroy() usually sends a FIN)",
        run_destroy),
}
