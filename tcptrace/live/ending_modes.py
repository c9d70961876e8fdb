"""Close modes where nobody closes on purpose, or the close call has a twist: a killed
process, SO_LINGER with a timeout, close() with data still unsent, TIME-WAIT reuse.

Same shape as `close_modes`: each drives the connected stage through `Roles`, records
application events and `ss` snapshots, and returns the byte counts (plus `findings`:
facts of the run that are no segment, such as how long close() blocked).
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from importlib import resources

from tcptrace.buffers import read_sysctl
from tcptrace.errors import TcptraceError
from tcptrace.live import close_modes
from tcptrace.live.close_modes import (
    CHUNK,
    UNREAD,
    Mode,
    Roles,
    _queue_pending,
    _read_to_end,
)
from tcptrace.model import TcpState, format_endpoint

LINGER_SECONDS = 2          # SO_LINGER {on, N}: how long close() may block
UNSENT_DEFAULT = 512 << 10   # bytes queued for the slow reader of `unsent`
SLOW_READ = 32 << 10        # ...which reads this much at a time
SLOW_PAUSE = 0.1            # ...every this many seconds
SMALL_BUFFER = 32 << 10     # SO_SNDBUF/SO_RCVBUF of the linger modes

# A process that only holds the descriptor it was given until it is killed. It says
# it is ready once it runs, so the kill hits a live process, not a fork in progress; it
# also ends when its standard input does (tcptrace is gone), never outliving the run.
_HOLDER = ("import sys; sys.stdout.write('{\"type\":\"ready\"}\\n'); sys.stdout.flush(); "
           "sys.stdin.read()")


def _hand_to_child(r: Roles, side: str, paused: bool = False) -> subprocess.Popen:
    """Give `side`'s socket to a child process and drop our copy: the child's descriptor
    is then the only reference, so its death is what closes the socket. The child is
    Python holding the bare descriptor, or with `r.runtime == "node"` a Node.js process
    owning it as a net.Socket (reading eagerly unless `paused`)."""
    sock = r.sock(side)
    fd = sock.fileno()
    if r.runtime == "node":
        node = shutil.which("node")
        if node is None:
            raise TcptraceError("node (Node.js) was not found on PATH: install Node.js or "
                                "use --runtime python")
        command = [node, str(resources.files("tcptrace") / "node" / "holder.js"),
                   json.dumps({"fd": fd, "paused": paused})]
        what = ("a Node.js process owning it as a net.Socket"
                + (", created paused (it reads nothing)" if paused else ", reading"))
    else:
        command = [sys.executable, "-S", "-c", _HOLDER]
        what = "a child process that holds the descriptor and does nothing"
    child = subprocess.Popen(command, pass_fds=(fd,), stdout=subprocess.PIPE,
                             stdin=subprocess.PIPE, text=True, start_new_session=True)
    sock.close()
    assert child.stdout is not None     # stdout=PIPE
    if '"ready"' not in child.stdout.readline():
        _stop(child)
        raise TcptraceError("the child process holding the socket did not start")
    r.rec.event(side, f"the socket now belongs to process {child.pid} alone: {what}")
    return child


def _kill(r: Roles, child: subprocess.Popen) -> None:
    r.call(r.closer, f"kill({child.pid}, SIGKILL): no close() from the application; the "
           "kernel closes the dead process's descriptors", child.kill)
    _stop(child)


def _stop(child: subprocess.Popen) -> None:
    """The child killed (if it still runs) and reaped, its pipes closed."""
    if child.poll() is None:
        child.kill()
    child.wait()
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()


def run_killed(r: Roles, pending: int) -> dict:
    """The closer's process is killed with nothing unread: the kernel closes the
    descriptor as close() would, so a FIN, not an RST."""
    written = _queue_pending(r, pending)
    child = _hand_to_child(r, r.closer)
    try:
        _kill(r, child)
    finally:
        _stop(child)
    if not pending:
        r.wait_for(f"{r.closer} process killed", TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    delivered = _read_to_end(r, r.peer)
    _peer_closes_too(r)
    return {"written": written, "delivered": delivered}


def _peer_closes_too(r: Roles) -> None:
    """The peer has read the closer's FIN; it closes, and the closer (whose socket is
    already orphaned) ends in TIME-WAIT."""
    r.call(r.peer, "close()", r.sock(r.peer).close)
    r.wait_for(f"{r.peer} close()", TcpState.TIME_WAIT, TcpState.CLOSED)


def run_killed_unread(r: Roles, pending: int) -> dict:
    """The closer's process is killed while received data sits unread in its kernel
    receive queue: the kernel's close sends an RST (TCP_ABORT_ON_CLOSE)."""
    written = _queue_pending(r, pending)
    child = _hand_to_child(r, r.closer, paused=True)
    try:
        r.call(r.peer, f"write({len(UNREAD)} bytes) that the {r.closer} will never read",
               r.sock(r.peer).sendall, UNREAD)
        r.rec.wait_for(f"{r.peer} wrote data the {r.closer} does not read", recv_q=r.closer)
        _kill(r, child)
    finally:
        _stop(child)
    r.wait_for(f"{r.closer} process killed with unread data", TcpState.CLOSED, TcpState.CLOSED)
    delivered = _read_to_end(r, r.peer)
    r.call(r.peer, "close()", r.sock(r.peer).close)
    return {"written": written, "delivered": delivered}


def _fill(r: Roles, pending: int) -> int:
    """Queue more than the kernels hold for a reader that is not reading: the closer's
    send queue keeps data the close call finds unsent. Small buffers (Linux doubles
    them) keep the ladder to a screenful."""
    r.sock(r.peer).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    r.sock(r.closer).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    r.rec.event(r.peer, f"setsockopt(SO_RCVBUF, {SMALL_BUFFER:,}); stops reading")
    r.rec.event(r.closer, f"setsockopt(SO_SNDBUF, {SMALL_BUFFER:,})")
    return _queue_pending(r, pending or (64 << 20))


def _reader(r: Roles, after: float, got: list[int], chunk: int = CHUNK,
            pause: float = 0.0) -> threading.Thread:
    """The peer starts reading `after` seconds from now, `chunk` at a time with `pause`
    between reads (a slow reader), until EOF or an error; `got[0]` counts the bytes."""
    def read() -> None:
        time.sleep(after)
        r.rec.event(r.peer, "starts reading" + (f" {chunk:,} bytes every {pause * 1000:.0f} ms"
                                                 if pause else ""))
        sock = r.sock(r.peer)
        while True:
            try:
                data = sock.recv(chunk)
            except OSError as exc:
                name = errname(exc)
                r.rec.event(r.peer, f"read {got[0]:,} bytes, then {name}")
                return
            if not data:
                r.rec.event(r.peer, f"read {got[0]:,} bytes, then EOF (read returned 0)")
                return
            got[0] += len(data)
            if pause:
                time.sleep(pause)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _linger_close(r: Roles) -> tuple[float, list[str]]:
    """SO_LINGER {on, N} then a blocking close(): how long it blocked, in words too."""
    sock = r.sock(r.closer)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, LINGER_SECONDS))
    r.rec.event(r.closer, f"setsockopt(SO_LINGER, {{on, {LINGER_SECONDS}}})")
    r.rec.snapshot(f"{r.closer} has data queued, the {r.peer} is not reading")
    started = time.time()
    r.rec.event(r.closer, "close(): blocks until the FIN is acknowledged or "
                          f"{LINGER_SECONDS} s have passed", t=started)
    sock.close()            # Linux returns 0 either way: the caller cannot tell
    took = time.time() - started
    r.rec.event(r.closer, f"close() returned 0 after {took:.2f} s")
    return took, [f"close() with SO_LINGER {{on, {LINGER_SECONDS}}} blocked {took:.2f} s "
                  "and returned 0 (success)"]


def _run_linger(r: Roles, pending: int, resume_after: float) -> dict:
    """SO_LINGER {on, N} with data unsent to a reader that resumes after `resume_after`
    s; what `ss` shows of the closer once close() has returned."""
    written = _fill(r, pending)
    got = [0]
    reader = _reader(r, resume_after, got)
    took, findings = _linger_close(r)
    obs = r.rec.snapshot(f"{r.closer} close() returned")
    left = obs.details.get(r.closer, {})
    if left.get("send_q"):
        findings.append(f"after close() returned, ss still shows the orphaned {r.closer} "
                        f"socket in {left['state']} with Send-Q {left['send_q']:,} bytes: "
                        "the linger time ran out without an RST (an RST would have closed "
                        "it), and the socket kept its data")
    reader.join()
    r.wait_for(f"{r.peer} read to EOF", TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    _peer_closes_too(r)
    return {"written": written, "delivered": got[0], "findings": findings,
            "facts": {"close_blocked_s": round(took, 3), "linger_s": LINGER_SECONDS}}


def run_linger(r: Roles, pending: int) -> dict:
    """SO_LINGER {on, N} with unsent data and a reader paused longer than N: close()
    blocks N s, then returns; the orphaned socket keeps its data and delivers it."""
    return _run_linger(r, pending, resume_after=LINGER_SECONDS + 1.0)


def run_linger_in_time(r: Roles, pending: int) -> dict:
    """SO_LINGER {on, N} with unsent data, the reader resuming well within N: close()
    returns as soon as the FIN is acknowledged, every byte delivered."""
    return _run_linger(r, pending, resume_after=LINGER_SECONDS / 4)


def run_unsent(r: Roles, pending: int) -> dict:
    """Plain close() while the send queue holds data for a slow reader: close() returns
    at once; the orphaned socket sends on in FIN-WAIT-1, the FIN after the last byte."""
    r.sock(r.peer).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    r.rec.event(r.peer, f"setsockopt(SO_RCVBUF, {SMALL_BUFFER:,}); stops reading")
    written = _queue_pending(r, pending or UNSENT_DEFAULT)
    r.rec.snapshot(f"{r.closer} has {written:,} bytes queued, the {r.peer} is not reading")
    started = time.time()
    r.call(r.closer, "close() with data still unsent", r.sock(r.closer).close)
    took = time.time() - started
    got = [0]
    reader = _reader(r, 0.0, got, SLOW_READ, SLOW_PAUSE)
    send_q = []
    while reader.is_alive():
        obs = r.rec.snapshot(f"the {r.peer} reads slowly; {r.closer} orphaned")
        queued = obs.details.get(r.closer, {}).get("send_q")
        if queued is not None and getattr(obs, r.closer) == TcpState.FIN_WAIT_1:
            send_q.append(queued)
        time.sleep(SLOW_PAUSE * 2)
    r.wait_for(f"{r.peer} read to EOF", TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    _peer_closes_too(r)
    findings = [f"close() returned after {took * 1e6:.0f} µs with {written:,} bytes queued"]
    if send_q:
        findings.append(f"ss: the orphaned {r.closer} stayed in FIN-WAIT-1 while its Send-Q "
                        f"shrank: {', '.join(f'{q:,}' for q in send_q)} bytes")
    return {"written": written, "delivered": got[0], "findings": findings}


def run_time_wait_reuse(r: Roles, pending: int) -> dict:
    """The closer ends in TIME-WAIT; then a new socket binds the same client address and
    port (SO_REUSEADDR) and connects to the same server: Linux's answer, shown."""
    stage = r.stage
    # A bind() beside a TIME-WAIT socket is allowed only when both the new socket and
    # the one that became TIME-WAIT had SO_REUSEADDR (the TIME-WAIT socket keeps the
    # flag); so both ends set it now, as a restarting server has it on its sockets.
    for side in ("client", "server"):
        r.call(side, "setsockopt(SO_REUSEADDR, 1)", r.sock(side).setsockopt,
               socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    end_in_time_wait(r)
    if r.closer == "client":
        findings = [
            f"the TIME-WAIT is the client's own: its kernel lets a connect() from a port "
            f"bound with bind() reuse the 4-tuple when the old connection used TCP "
            f"timestamps (net.ipv4.tcp_timestamps = {read_sysctl('net.ipv4.tcp_timestamps')} "
            f"here), whatever net.ipv4.tcp_tw_reuse says "
            f"({read_sysctl('net.ipv4.tcp_tw_reuse')} here: 0 off, 1 on, 2 loopback only; it "
            "governs connect() picking an ephemeral port that is in TIME-WAIT)"]
    else:
        findings = [
            "the TIME-WAIT is the server's: a SYN arriving at a TIME-WAIT socket starts a "
            "new connection when its sequence number or timestamp is newer than the old "
            "connection's (RFC 6191); net.ipv4.tcp_tw_reuse is a client-side setting "
            f"({read_sysctl('net.ipv4.tcp_tw_reuse')} here) and plays no part"]
    second_from = time.time()
    facts = {"tcp_tw_reuse": int(read_sysctl("net.ipv4.tcp_tw_reuse")),
             "tcp_timestamps": int(read_sysctl("net.ipv4.tcp_timestamps"))}
    findings += _reconnect(r, stage, facts)
    return {"written": 0, "delivered": 0, "findings": findings, "second_from": second_from,
            "facts": facts}


def end_in_time_wait(r: Roles) -> None:
    """A graceful close that leaves the closer in TIME-WAIT and both sockets closed."""
    closer = r.sock(r.closer)
    r.call(r.closer, "shutdown(SHUT_WR)", closer.shutdown, socket.SHUT_WR)
    _read_to_end(r, r.peer)
    r.call(r.peer, "close()", r.sock(r.peer).close)
    r.wait_for(f"{r.peer} close()", TcpState.TIME_WAIT, TcpState.CLOSED)
    r.call(r.closer, "close(): the kernel keeps the TIME-WAIT socket", closer.close)


def listen_again(r: Roles) -> socket.socket:
    """A new listener on the server's port. The first was closed after its accept(); a
    server that listens again uses SO_REUSEADDR, as servers do (else a server-side
    TIME-WAIT blocks the bind)."""
    stage = r.stage
    family = socket.AF_INET6 if ":" in stage.server_ip else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((stage.server_ip, stage.server_port))
        listener.listen(1)
    except BaseException:
        listener.close()
        raise
    r.rec.event("server", "listens again on the same port (SO_REUSEADDR)")
    return listener


def _reconnect(r: Roles, stage, facts: dict) -> list[str]:
    """A second connection on the same 4-tuple, while the first is in TIME-WAIT."""
    family = socket.AF_INET6 if ":" in stage.client_ip else socket.AF_INET
    client = (stage.client_ip, stage.client_port)
    where = format_endpoint(*client)
    findings = []
    plain = socket.socket(family, socket.SOCK_STREAM)
    try:
        plain.bind(client)
        facts["bind_without_reuseaddr"] = "ok"
        findings.append(f"bind({where}) without SO_REUSEADDR succeeded")
    except OSError as exc:
        facts["bind_without_reuseaddr"] = errname(exc)
        findings.append(f"bind({where}) without SO_REUSEADDR: {errname(exc)}")
        r.rec.event("client", f"new socket: bind({where}) without SO_REUSEADDR failed: "
                              f"{errname(exc)}")
    finally:
        plain.close()
    listener = listen_again(r)
    again = socket.socket(family, socket.SOCK_STREAM)
    try:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(client)
        r.rec.event("client", f"new socket: setsockopt(SO_REUSEADDR); bind({where}) "
                              "succeeded")
        outcome = connect_again(r, stage, again, listener)
        facts["connect"] = "ok" if "succeeded" in outcome else outcome.rpartition(": ")[2]
        return [*findings, outcome]
    finally:
        listener.close()
        again.close()


def connect_again(r: Roles, stage, again: socket.socket, listener: socket.socket) -> str:
    r.rec.event("client", "connect() to the same server: the 4-tuple of the TIME-WAIT "
                          "connection")
    started = time.time()
    try:
        again.connect((stage.server_ip, stage.server_port))
    except OSError as exc:
        name = errname(exc)
        r.rec.event("client", f"connect() failed: {name}")
        return f"connect() on the TIME-WAIT 4-tuple failed: {name}"
    took = time.time() - started
    server, _ = listener.accept()
    try:
        r.rec.event("server", "accept() returned the new connection")
        r.rec.snapshot("the new connection on the old 4-tuple")
        r.call("client", "shutdown(SHUT_WR)", again.shutdown, socket.SHUT_WR)
        r.call("server", "read to EOF, then close()", _drain_and_close, server)
        r.rec.wait_for("the new connection closed", client=TcpState.TIME_WAIT,
                       server=TcpState.CLOSED)
    finally:
        server.close()
    return (f"connect() on the TIME-WAIT 4-tuple succeeded after {took * 1000:.1f} ms: "
            "the new SYN was answered by a SYN+ACK; the TIME-WAIT socket gave way")


def errname(exc: OSError) -> str:
    """EADDRINUSE rather than "[Errno 98] Address already in use": the name to look up."""
    return errno.errorcode.get(exc.errno or 0, str(exc))


def _drain_and_close(sock: socket.socket) -> None:
    while sock.recv(CHUNK):
        pass
    sock.close()


MODES = (
    Mode("kill", "the closer's socket is held by a child process, killed with SIGKILL "
         "with nothing unread: the kernel closes it, a FIN", "a Node.js process owning "
         "the socket (net.Socket), killed with SIGKILL", run_killed, node_too=True),
    Mode("kill-unread", "the closer's process is killed with SIGKILL while received data "
         "is unread in its kernel queue: the kernel sends an RST", "a Node.js process "
         "whose net.Socket was created paused, killed with SIGKILL", run_killed_unread,
         node_too=True),
    Mode("linger", f"setsockopt(SO_LINGER, {{on, {LINGER_SECONDS}}}) then close() with "
         f"data unsent to a paused reader: close() blocks {LINGER_SECONDS} s",
         "none: Node cannot set SO_LINGER with a timeout", run_linger),
    Mode("linger-in-time", f"setsockopt(SO_LINGER, {{on, {LINGER_SECONDS}}}) then close() "
         "with data unsent; the reader resumes in time: close() returns at the FIN's ACK",
         "none: Node cannot set SO_LINGER with a timeout", run_linger_in_time),
    Mode("unsent", "plain close() while the send queue holds data for a slow reader: "
         "the orphan sends on in FIN-WAIT-1, the FIN after the last byte",
         "socket.destroy() after the kernel accepted the writes", run_unsent),
    Mode("tw-reuse", "the client closes first (TIME-WAIT), then a new socket binds the "
         "same address and port with SO_REUSEADDR and connects to the same server",
         "none: net.Socket cannot bind before connect (localPort does, without "
         "SO_REUSEADDR)", run_time_wait_reuse),
)
close_modes.MODES.update((m.name, m) for m in MODES)
