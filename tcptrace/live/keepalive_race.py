"""`tcptrace close --mode keepalive-race`: the idle-close race behind many ECONNRESETs.

A keep-alive connection serves one request and goes idle. The closer (the server by
default, as an HTTP server whose keep-alive timeout fires) closes it: a FIN. The peer's
application has not read the FIN yet (a client pool hands the connection out again), so
it writes its next request: the closer's socket is gone, its kernel answers with an RST,
and the request is lost: the peer reads EOF where it expected a response (HTTP clients
call it a reset; Node's "socket hang up", ECONNRESET) and its next write fails with EPIPE
(Linux's error for an RST in CLOSE-WAIT). On loopback the RST follows the request within
microseconds (tcp-facts.md). `tcptrace diagnose` names it from the capture.
"""

from __future__ import annotations

import errno
import time

from tcptrace.live.close_modes import MODES, Mode, Roles, _recv_exactly
from tcptrace.model import TcpState

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: tcptrace\r\n\r\n"
# Longer than diagnose's default --idle (1 s): the close happens on an idle connection.
IDLE = 1.2


def run_keepalive_race(r: Roles, pending: int) -> dict:
    """Answer the greeting, idle, close on the closer's side, then write from the peer
    without reading first: the request races the FIN and loses."""
    closer, peer = r.sock(r.closer), r.sock(r.peer)
    r.call(r.closer, f"write({len(RESPONSE)} bytes): the response", closer.sendall,
           RESPONSE)
    got = _recv_exactly(peer, len(RESPONSE))
    r.rec.event(r.peer, f"read {got} bytes; the connection goes back to the pool")
    r.rec.snapshot("idle keep-alive connection")
    time.sleep(IDLE)
    r.call(r.closer, f"close() after {IDLE:g} s idle (its keep-alive timeout)", closer.close)
    r.call(r.peer, f"write({len(NEXT_REQUEST)} bytes): the next request, FIN not yet read",
           peer.sendall, NEXT_REQUEST)
    r.wait_for(f"{r.closer}'s kernel answered the request with RST",
               TcpState.CLOSED, TcpState.CLOSED)
    _record_outcome(r, peer)
    r.call(r.peer, "close()", peer.close)
    return {"written": 0, "delivered": 0}


def _record_outcome(r: Roles, peer) -> None:
    """What the peer's application is told: a read, then another write. Linux queues
    the FIN before the RST, so the read sees EOF; an RST in CLOSE-WAIT sets EPIPE, not
    ECONNRESET (tcp_reset), which the next write reports."""
    try:
        data = peer.recv(4096)
        r.rec.event(r.peer, f"read: {len(data)} bytes" +
                    (" (EOF, no response): the request was lost" if not data else ""))
    except OSError as e:
        r.rec.event(r.peer, f"read: {_errno_name(e)}: the request was lost")
    try:
        peer.send(NEXT_REQUEST)
        r.rec.event(r.peer, "write again: accepted")
    except OSError as e:
        r.rec.event(r.peer, f"write again: {_errno_name(e)}")


def _errno_name(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, str(e))


MODES["keepalive-race"] = Mode(
    "keepalive-race", "the peer writes a request on an idle keep-alive connection the "
    "closer has just closed: the closer's kernel answers with RST; the peer reads EOF, "
    "its next write fails (EPIPE)",
    "socket.write() on a pooled socket whose server closed it (an http.Agent after "
    "its keepAliveTimeout)", run_keepalive_race)
