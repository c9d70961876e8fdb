"""Record one commented pcapng per `tcptrace diagnose` finding that this machine can
produce for real, into captures/findings/: loopback sockets, and for lost segments a
network namespace of the run's own with an nftables rule in it (the kernel here has
nf_tables but no netem).

    sudo .venv/bin/python captures/record_findings.py [NAME ...]   (captures/record.sh)

Each file's first frame carries a comment saying how it was made; every frame carries
the ladder's explanation of it, as `tcptrace close --save` writes them. Needs root
(CAP_NET_RAW to capture; CAP_NET_ADMIN, `ip` and `nft` for the namespaces). A namespace
is deleted when its scenario ends, also on failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tcptrace.annotate import relative_views
from tcptrace.engine import decode_frames, group_segments
from tcptrace.live.capture import LoopbackCapture
from tcptrace.pcapwrite import write_capture

HERE = Path(__file__).resolve().parent
# Where the captures go: captures/findings/, or $RECORD_OUT (the tests record there).
OUT = Path(os.environ.get("RECORD_OUT") or HERE / "findings")
SERVER, CLIENT = "127.0.0.1", "127.0.0.2"
REQUEST = b"GET / HTTP/1.1\r\nHost: tcptrace\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def listener(port: int = 0) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((SERVER, port))
    s.listen()
    return s


def client_socket(port: int = 0) -> socket.socket:
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((CLIENT, port))
    return c


def connected(lst: socket.socket, port: int = 0) -> tuple[socket.socket, socket.socket]:
    """A client (from `port`, 0: any) connected to `lst`: (client, server) sockets."""
    c = client_socket(port)
    c.connect(lst.getsockname())
    s, _ = lst.accept()
    return c, s


def graceful_close(c: socket.socket, s: socket.socket) -> None:
    """The client shuts down first (it keeps TIME-WAIT), the server reads EOF and
    closes, the client reads EOF and closes."""
    c.shutdown(socket.SHUT_WR)
    s.recv(10)
    s.close()
    c.recv(10)
    c.close()


def client_in_time_wait(lst: socket.socket) -> int:
    """One exchange and a graceful close the client starts, so that its TIME-WAIT
    holds the 4-tuple; the client's port."""
    c, s = connected(lst)
    cport = c.getsockname()[1]
    exchange(c, s)
    graceful_close(c, s)
    return cport


def exchange(c: socket.socket, s: socket.socket) -> None:
    """One request and its response, both read."""
    c.sendall(REQUEST)
    s.recv(len(REQUEST))
    s.sendall(RESPONSE)
    c.recv(len(RESPONSE))


def nft(*rule: str) -> None:
    subprocess.run(["nft", *rule], check=True)


def save(name: str, frames: list, how: str) -> None:
    """The frames as a pcapng: the ladder's note on every frame, `how` on the first."""
    segments = decode_frames(frames)
    notes: dict[int, list[str]] = {}
    for summary in group_segments(segments):
        views = relative_views(summary.conn, summary.initial, summary.steps or [])
        for v in views:
            if v.segment is not None:
                notes.setdefault(v.segment.frame, []).append(v.note)
    comments = [notes.get(i, []) for i in range(1, len(frames) + 1)]
    comments[0].insert(0, f"Recorded by captures/record_findings.py: {how}")
    path = OUT / f"{name}.pcapng"
    write_capture(path, frames, comments)
    print(f"{path}: {len(frames)} frames")


def capture(*ports: int) -> LoopbackCapture:
    return LoopbackCapture(ports=set(ports))


def write_after_close() -> None:
    """The server reads a chunk and closes; the client goes on writing 20 ms later."""
    lst = listener()
    c = client_socket()
    with capture(lst.getsockname()[1]) as cap:
        c.connect(lst.getsockname())
        s, _ = lst.accept()
        for _ in range(3):
            c.sendall(b"x" * 1000)
            got = 0
            while got < 1000:
                got += len(s.recv(1000 - got))
        s.close()               # everything read: a FIN, not an RST
        time.sleep(0.02)
        c.sendall(b"x" * 1000)  # the client has not looked for EOF
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            c.sendall(b"x" * 1000)
        c.close()
        lst.close()
    save("finding-write-after-close", cap.frames,
         "the client streams 1000-byte chunks; the server reads the third and close()s; "
         "the client writes again 20 ms later and the server's kernel answers with RST")


def abort_with_unread_data() -> None:
    """The keep-alive race's ECONNRESET form: after 1.2 s idle the client's next request
    reaches the server just before it closes the connection without reading it."""
    lst = listener()
    with capture(lst.getsockname()[1]) as cap:
        c, s = connected(lst)
        exchange(c, s)
        time.sleep(1.2)
        c.sendall(REQUEST)
        time.sleep(0.01)        # in the server's receive queue, unread
        s.close()               # close() with unread data: RST, no FIN
        try:
            told = f"read {len(c.recv(100))} bytes"
        except OSError as e:
            told = errno.errorcode.get(e.errno or 0, str(e))
        c.close()
        lst.close()
    save("finding-abort-with-unread-data", cap.frames,
         "one request and its response, 1.2 s idle, then the client's next request; the "
         "server close()s 10 ms later without reading it: an RST instead of a FIN; the "
         f"client's read: {told}")


def zero_window_stall() -> None:
    """The server's application stops reading for 2 s while the client writes 30 kB
    into small buffers: the server's window closes and the client's kernel probes it."""
    lst = listener()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited by accept()
    with capture(lst.getsockname()[1]) as cap:
        c = client_socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.connect(lst.getsockname())
        s, _ = lst.accept()
        writer = threading.Thread(target=c.sendall, args=(b"x" * 30_000,))
        writer.start()
        time.sleep(2.0)         # the reader is busy elsewhere
        got = 0
        while got < 30_000:
            got += len(s.recv(65536))
        writer.join()
        graceful_close(c, s)
        time.sleep(0.05)
    lst.close()
    save("finding-zero-window-stall", cap.frames,
         "the server's application does not read for 2 s (SO_RCVBUF 4096) while the "
         "client writes 30,000 bytes (SO_SNDBUF 4096); then it reads them all and the "
         "connection closes gracefully")


def close_wait_leak() -> None:
    """The client closes; the server's application never does. 6 s later another
    connection shows that the capture (and the server) went on."""
    lst = listener()
    port = lst.getsockname()[1]
    with capture(port) as cap:
        c, s = connected(lst)
        exchange(c, s)
        c.close()               # FIN; the server's kernel ACKs it: CLOSE-WAIT
        time.sleep(6.0)
        c2, s2 = connected(lst)
        exchange(c2, s2)
        graceful_close(c2, s2)
        time.sleep(0.05)
    save("finding-close-wait-leak", cap.frames,
         "the client closes after one request; the server never calls close() on that "
         "socket (left in CLOSE-WAIT); a second connection 6 s later closes gracefully")
    s.close()
    lst.close()


def refused() -> None:
    """Three connects to a port nothing listens on, 100 ms and 200 ms apart."""
    probe = listener()
    port = probe.getsockname()[1]
    probe.close()               # a port known to be free now
    with capture(port) as cap:
        for wait in (0.1, 0.2, 0.0):
            c = client_socket()
            with contextlib.suppress(ConnectionRefusedError):
                c.connect((SERVER, port))
            c.close()
            time.sleep(wait)
    save("finding-refused", cap.frames,
         f"three connect() calls to {SERVER}:{port}, where nothing listens, retried "
         "after 0.1 s and 0.2 s")


def time_wait_assassination() -> None:
    """A graceful close leaves the client in TIME-WAIT; a stale duplicate of the
    server's data is injected; the client's TIME-WAIT answers it with an ACK, the
    server's kernel (nothing there any more) answers that with an RST at exactly the
    client's RCV.NXT, and Linux (tcp_rfc1337=0) ends TIME-WAIT."""
    from scapy.layers.inet import IP, TCP
    from scapy.sendrecv import send

    lst = listener()
    port = lst.getsockname()[1]
    with capture(port) as cap:
        cport = client_in_time_wait(lst)
        lst.close()             # no socket left on the server's side
        time.sleep(0.3)
        before = ss_state(cport)
        data = [f for f in decode_frames(cap.frames) if f.sport == port and f.length]
        old = data[-1]           # the response, sent again as a stale duplicate
        send(IP(src=SERVER, dst=CLIENT) / TCP(sport=port, dport=cport, flags="PA",
                                              seq=old.seq, ack=old.ack) / RESPONSE,
             iface="lo", verbose=False)
        time.sleep(0.3)
        after = ss_state(cport)
    save("finding-time-wait-assassination", cap.frames,
         f"graceful close, client in TIME-WAIT (ss: {before}); a copy of the server's "
         f"response injected with scapy; after the RST ss shows: {after or 'no socket'}")


def ss_state(cport: int) -> str:
    out = subprocess.run(["ss", "-tanH", "state", "all", f"( sport = :{cport} )"],
                         capture_output=True, text=True, check=False).stdout
    return " ".join(out.split()[:1])


def time_wait_reuse() -> None:
    """The client closes first (TIME-WAIT), then connects again from the same port
    2 s later: Linux reuses the TIME-WAIT 4-tuple on loopback (tcp_tw_reuse=2)."""
    lst = listener()
    port = lst.getsockname()[1]
    with capture(port) as cap:
        cport = client_in_time_wait(lst)
        time.sleep(2.0)        # tcp_twsk_unique wants the TIME-WAIT older than 1 s
        c2, s2 = connected(lst, cport)
        exchange(c2, s2)
        graceful_close(c2, s2)
        time.sleep(0.05)
    lst.close()
    save("finding-time-wait-reuse", cap.frames,
         f"the client closes first, then 2 s later connects again from the same port "
         f"{CLIENT}:{cport} while its TIME-WAIT still holds the 4-tuple")


def unanswered_syn() -> None:
    """Inside a namespace: SYNs to the port are dropped on input (after the capture
    point on lo saw them); connect() times out after 3.5 s."""
    port = 8080
    nft("add table inet tcptrace")
    nft("add chain inet tcptrace in { type filter hook input priority 0 ; }")
    nft(f"add rule inet tcptrace in tcp dport {port} drop")
    lst = listener(port)
    with capture(port) as cap:
        c = client_socket()
        c.settimeout(3.5)
        with contextlib.suppress(TimeoutError, OSError):
            c.connect((SERVER, port))
        c.close()
    lst.close()
    save("finding-unanswered-syn", cap.frames,
         f"connect() to {SERVER}:{port} with a 3.5 s timeout, in a network namespace "
         "whose nftables input rule drops every segment to that port: the SYN and its "
         "retransmissions are seen, no answer")


def unacked_fin() -> None:
    """Inside a namespace: after one exchange the client's segments are dropped before
    they reach lo (an nftables output rule), so from the capture point the client has
    vanished; the server closes and retransmits its FIN."""
    lst = listener()
    port = lst.getsockname()[1]
    with capture(port) as cap:
        c, s = connected(lst)
        exchange(c, s)
        cport = c.getsockname()[1]
        nft("add table inet tcptrace")
        nft("add chain inet tcptrace out { type filter hook output priority 0 ; }")
        nft(f"add rule inet tcptrace out tcp sport {cport} drop")
        s.close()
        time.sleep(3.5)
    c.close()
    lst.close()
    save("finding-unacked-fin", cap.frames,
         "after one exchange an nftables output rule in a private network namespace "
         "drops everything the client sends (a vanished peer); the server close()s and "
         "its FIN is retransmitted, never acknowledged")


SCENARIOS: dict[str, tuple[Callable[[], None], bool]] = {   # name -> (run, own namespace)
    "abort-with-unread-data": (abort_with_unread_data, False),
    "zero-window-stall": (zero_window_stall, False),
    "write-after-close": (write_after_close, False),
    "close-wait-leak": (close_wait_leak, False),
    "refused": (refused, False),
    "time-wait-assassination": (time_wait_assassination, False),
    "time-wait-reuse": (time_wait_reuse, False),
    "unanswered-syn": (unanswered_syn, True),
    "unacked-fin": (unacked_fin, True),
}


def in_namespace(name: str) -> None:
    """Run scenario `name` in a network namespace of its own, deleted afterwards."""
    ns = f"tcptrace-rec-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{CLIENT}/8", "dev", "lo"],
                       check=False)     # 127.0.0.2 answers on lo anyway
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside",
                        name], check=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main(args: list[str]) -> None:
    if args[:1] == ["--inside"]:
        SCENARIOS[args[1]][0]()
        return
    for name in args or list(SCENARIOS):
        run, own_namespace = SCENARIOS[name]
        if own_namespace:
            in_namespace(name)
        else:
            run()


if __name__ == "__main__":
    main(sys.argv[1:])
