"""The stage of a live close: two real sockets on loopback and a recorder of what happened.

The server listens on 127.0.0.1 and the client is bound to 127.0.0.2 before it connects,
so both ports are known before the first SYN (the capture filter needs them) and every
tool that keys columns by host (Wireshark's flow graph) keeps the two sides apart.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tcptrace.errors import TcptraceError
from tcptrace.live import ss
from tcptrace.model import AppEvent, StateObservation, TcpState, format_endpoint

SERVER_IP = "127.0.0.1"
CLIENT_IP = "127.0.0.2"
# --ipv6: ::1 and a second loopback address, added to `lo` in a namespace of the run's own.
SERVER_IP6 = "::1"
CLIENT_IP6 = "::2"


@dataclass
class Recorder:
    """What the scenario did (app events) and what `ss` said after each step."""

    client: str
    server: str
    ports: list[int]
    observations: list[StateObservation] = field(default_factory=list)
    events: list[AppEvent] = field(default_factory=list)
    # How to ask `ss` (default: in the caller's namespace); a run whose two sides live in
    # two namespaces asks both.
    run_ss: Callable[[list[int]], list[ss.SocketLine]] | None = None

    def event(self, side: str, what: str, t: float | None = None) -> None:
        """Record an application call; `t` is when it started (default: now)."""
        self.events.append(AppEvent(time.time() if t is None else t, side, what))

    def snapshot(self, after: str) -> StateObservation:
        return self.wait_for(after, timeout=0)

    def wait_for(self, after: str, *, client: str | list[str] | None = None,
                 server: str | list[str] | None = None, recv_q: str | None = None,
                 timeout: float = 1.0) -> StateObservation:
        """Record what `ss` shows once the kernel has reached the expected states (a
        name or a list of acceptable names per side) and, with `recv_q`, once that
        side's receive queue holds data; or whatever it shows after `timeout`.

        Kernel work after a syscall (a delayed ACK is ~40 ms on loopback) is not done
        when the call returns, so we poll `ss` rather than sleep a guessed amount. The
        observation is the very `ss` output that satisfied the wait, timed at the
        middle of the `ss` run.
        """
        want = {"client": client, "server": server}
        deadline = time.monotonic() + timeout
        while True:
            before = time.time()
            lines = (self.run_ss or ss.run_ss)(self.ports)
            t = (before + time.time()) / 2
            socks = {"client": ss.find_socket(lines, self.client, self.server),
                     "server": ss.find_socket(lines, self.server, self.client)}
            states = {side: sock.state if sock else TcpState.CLOSED
                      for side, sock in socks.items()}
            ok = all(w is None or states[side] in ([w] if isinstance(w, str) else w)
                     for side, w in want.items())
            if recv_q is not None:
                queued = socks[recv_q]
                ok = ok and queued is not None and queued.recv_q > 0
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        obs = StateObservation(t=t, after=after, client=states["client"],
                               server=states["server"],
                               details={side: sock.to_json() for side, sock in socks.items()
                                        if sock})
        self.observations.append(obs)
        return obs


class Stage:
    """A listening server socket and a bound (not yet connected) client socket."""

    def __init__(self, port: int = 0, server_ip: str = SERVER_IP, client_ip: str = CLIENT_IP):
        family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
        self.server_ip, self.client_ip = server_ip, client_ip
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.client = socket.socket(family, socket.SOCK_STREAM)
        self.server: socket.socket | None = None       # once connect() has accepted
        try:
            self.listener.bind((server_ip, port))
        except OSError as exc:
            self.close()
            if exc.errno == errno.EADDRINUSE:
                raise TcptraceError(f"port {port} on {server_ip} is already in use; "
                                    "pick another --port or leave it out") from None
            raise TcptraceError(f"cannot listen on {format_endpoint(server_ip, port)}: "
                                f"{exc.strerror}") from None
        self.listener.listen(1)
        self.client.bind((client_ip, 0))
        self.server_port = self.listener.getsockname()[1]
        self.client_port = self.client.getsockname()[1]
        self.rec = Recorder(client=format_endpoint(client_ip, self.client_port),
                            server=format_endpoint(server_ip, self.server_port),
                            ports=[self.server_port])

    @property
    def pair(self) -> tuple[socket.socket, socket.socket]:
        """The connected client and server sockets."""
        if self.server is None:
            raise RuntimeError("the stage is not connected: call connect() first")
        return self.client, self.server

    def connect(self) -> None:
        self.rec.event("client", "connect()")
        self.client.connect((self.server_ip, self.server_port))
        self.server, _ = self.listener.accept()
        self.rec.event("server", "accept() returned")
        # The listener is no longer needed; closing it keeps ss output to the pair.
        self.listener.close()

    def close(self) -> None:
        for sock in (self.client, self.server, self.listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
