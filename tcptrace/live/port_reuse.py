"""`tw-reuse-port`: what net.ipv4.tcp_tw_reuse really governs. The run lives in a network
namespace of its own whose ephemeral port range is one port, so the client's first
connection takes it and leaves it in TIME-WAIT; then connect() must pick a local port
itself (IP_BIND_ADDRESS_NO_PORT: bind the address, leave the port to connect()) and the
only one is in TIME-WAIT. It is tried with tcp_tw_reuse 0 and 1 (the namespace's own
sysctl: the host's is never touched), while the TIME-WAIT is younger and then older than
tcp_tw_reuse_delay. The answers are the kernel's: EADDRNOTAVAIL, or a new connection on
the old 4-tuple.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tcptrace.buffers import read_sysctl
from tcptrace.errors import TcptraceError
from tcptrace.live import close_modes, ending_modes
from tcptrace.live.close_modes import Mode, Roles
from tcptrace.live.loopback import Stage
from tcptrace.live.netns import inside_our_namespace
from tcptrace.model import TcpState, format_endpoint

ONE_PORT = 40000            # the namespace's whole ephemeral range
SERVER_PORT = 5000          # outside it (unless --port says otherwise)
IP_BIND_ADDRESS_NO_PORT = 24    # linux/in.h; Python's socket module lacks it
SYSCTLS = {"net.ipv4.ip_local_port_range": f"{ONE_PORT} {ONE_PORT}",
           "net.ipv4.tcp_tw_reuse": "0"}


class OnePortStage(Stage):
    """The loopback Stage whose client leaves its port to connect(), as the attempts
    after it do: connect() never picks a port that a bind() chose (the kernel skips
    ports whose bind bucket a bind() made), so the first connection must not bind one
    either. The port is known all the same: the range holds one."""

    def __init__(self, port: int, server_ip: str, client_ip: str):
        super().__init__(port, server_ip, client_ip)
        self.client.close()
        self.client = _port_left_to_connect(client_ip)
        self.client_port = ONE_PORT
        self.rec.client = format_endpoint(client_ip, ONE_PORT)

    def connect(self) -> None:
        super().connect()
        if self.client.getsockname()[1] != ONE_PORT:
            raise TcptraceError(f"connect() took port {self.client.getsockname()[1]}, not "
                                f"the namespace's only ephemeral port {ONE_PORT}")


def _port_left_to_connect(client_ip: str) -> socket.socket:
    """A socket bound to `client_ip` with its port left to connect()."""
    family = socket.AF_INET6 if ":" in client_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((client_ip, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def run_port_reuse_stage(scenario: Mode, port: int, pending: int, closer: str, runtime: str,
                         kernel: bool, ipv6: bool):
    from tcptrace.live.close_run import run_in_private_namespace

    if runtime != "python":
        raise TcptraceError(f"--mode {scenario.name} runs in the python runtime only: "
                            "net.Socket cannot leave the port to connect() after a bind()")
    return run_in_private_namespace(scenario, port or SERVER_PORT, pending, closer, runtime,
                                    kernel, ipv6, SYSCTLS, OnePortStage)


def _set_tw_reuse(value: int) -> None:
    """The namespace's tcp_tw_reuse; refuses to run in the host's own namespace."""
    if not inside_our_namespace():
        raise TcptraceError("tw-reuse-port must run in a namespace of its own")
    Path("/proc/sys/net/ipv4/tcp_tw_reuse").write_text(f"{value}\n")


def _attempt(r: Roles, reuse: int, listener: socket.socket, tw_since: float) -> dict:
    """One connect() that must pick the port in TIME-WAIT, with tcp_tw_reuse = `reuse`."""
    stage = r.stage
    _set_tw_reuse(reuse)
    age = time.monotonic() - tw_since
    sock = _port_left_to_connect(stage.client_ip)
    try:
        r.rec.event("client", f"tcp_tw_reuse = {reuse} (in this namespace); new socket: "
                              "setsockopt(IP_BIND_ADDRESS_NO_PORT); bind(address, port 0): "
                              f"the port is left to connect(); the TIME-WAIT is "
                              f"{age * 1000:.0f} ms old")
        outcome = ending_modes.connect_again(r, stage, sock, listener)
    finally:
        sock.close()
    result = "ok" if "succeeded" in outcome else outcome.rpartition(": ")[2]
    return {"tcp_tw_reuse": reuse, "time_wait_age_ms": round(age * 1000), "result": result}


def run_port_reuse(r: Roles, pending: int) -> dict:
    """The client's only ephemeral port in TIME-WAIT; connect() with and without
    tcp_tw_reuse, before and after tcp_tw_reuse_delay."""
    ending_modes.end_in_time_wait(r)
    tw_since = time.monotonic()
    delay_ms = int(read_sysctl("net.ipv4.tcp_tw_reuse_delay")) \
        if Path("/proc/sys/net/ipv4/tcp_tw_reuse_delay").exists() else 1000
    second_from = time.time()
    listener = ending_modes.listen_again(r)
    attempts = []
    try:
        for reuse in (0, 1):
            attempts.append(_attempt(r, reuse, listener, tw_since))
        while time.monotonic() - tw_since < delay_ms / 1000 + 0.1:
            time.sleep(0.02)
        for reuse in (0, 1):
            attempts.append(_attempt(r, reuse, listener, tw_since))
    finally:
        listener.close()
    r.rec.wait_for("the last attempt", client=[TcpState.TIME_WAIT, TcpState.CLOSED])
    findings = [f"connect() with tcp_tw_reuse {a['tcp_tw_reuse']}, the TIME-WAIT "
                f"{a['time_wait_age_ms']} ms old: "
                + ("a new connection on the old 4-tuple" if a["result"] == "ok"
                   else a["result"]) for a in attempts]
    findings.append(f"tcp_tw_reuse lets connect() take a local port whose 4-tuple is in "
                    f"TIME-WAIT once it is older than tcp_tw_reuse_delay ({delay_ms} ms "
                    "here) and the old connection used timestamps; without it the port "
                    "stays blocked for the whole TIME-WAIT (60 s). A port chosen with "
                    "bind() is another matter: see --mode tw-reuse")
    return {"written": 0, "delivered": 0, "findings": findings, "second_from": second_from,
            "facts": {"attempts": attempts, "tcp_tw_reuse_delay_ms": delay_ms,
                      "ephemeral_ports": f"{ONE_PORT}-{ONE_PORT}"}}


MODES = (
    Mode("tw-reuse-port", "the client's only ephemeral port (a namespace of its own) ends "
         "in TIME-WAIT; connect() must pick it again, with tcp_tw_reuse 0 and 1",
         "none: net.Socket cannot leave the port to connect() after a bind()",
         run_port_reuse, closer="client", stage=run_port_reuse_stage,
         where="a network namespace of the run's own whose ephemeral port range is the "
               f"one port {ONE_PORT}, with its own tcp_tw_reuse"),
)
close_modes.MODES.update((m.name, m) for m in MODES)
