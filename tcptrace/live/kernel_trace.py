"""Kernel truth from tracefs: every state transition and every RST, with its reason.

`ss` snapshots miss states that last microseconds (LAST-ACK, CLOSING, often FIN-WAIT-2);
the tracepoints `sock:inet_sock_set_state`, `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`
do not. We record them in a private trace instance (so we never disturb the global trace
buffer or another tracer), on the monotonic clock, and convert to the capture's clock.
Parsing the trace text is pure and tested on recorded output.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from pathlib import Path

from tcptrace.model import KernelEvent, TcpState, Transition

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
EVENTS = ("sock/inet_sock_set_state", "tcp/tcp_send_reset", "tcp/tcp_receive_reset")
INSTANCE_PREFIX = "tcptrace-"

_KERNEL_STATE = {
    "TCP_ESTABLISHED": TcpState.ESTABLISHED, "TCP_SYN_SENT": TcpState.SYN_SENT,
    "TCP_SYN_RECV": TcpState.SYN_RECEIVED, "TCP_NEW_SYN_RECV": TcpState.SYN_RECEIVED,
    "TCP_FIN_WAIT1": TcpState.FIN_WAIT_1, "TCP_FIN_WAIT2": TcpState.FIN_WAIT_2,
    "TCP_TIME_WAIT": TcpState.TIME_WAIT, "TCP_CLOSE": TcpState.CLOSED,
    "TCP_CLOSE_WAIT": TcpState.CLOSE_WAIT, "TCP_LAST_ACK": TcpState.LAST_ACK,
    "TCP_LISTEN": TcpState.LISTEN, "TCP_CLOSING": TcpState.CLOSING,
}

# Why the kernel sent an RST, in words (tcp:tcp_send_reset's reason field).
RST_REASONS = {
    "TCP_ABORT_ON_CLOSE": "close() with unread data in the receive queue",
    "TCP_STATE": "abort: SO_LINGER {on, 0} close, or a socket torn down",
    "TCP_ABORT_ON_LINGER": "an orphaned FIN-WAIT-2 socket timed out (TCP_LINGER2)",
    "NO_SOCKET": "no socket for this segment",
    "TCP_KEEPALIVE_TIMEOUT": "keepalive probes unanswered",
}

_LINE = re.compile(r"\s(\d+\.\d+):\s+(\w+):\s+(.*)$")
_KV = re.compile(r"(\w+)=(\S+)")


def parse_trace(text: str, client: tuple[str, int], server: tuple[str, int],
                clock_offset: float = 0.0) -> tuple[list[Transition], list[KernelEvent]]:
    """Pick this connection's events out of trace text; times become `mono + clock_offset`."""
    transitions: list[Transition] = []
    events: list[KernelEvent] = []
    for line in text.splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        t = float(m.group(1)) + clock_offset
        name, fields = m.group(2), dict(_KV.findall(m.group(3)))
        if name == "inet_sock_set_state" or name == "tcp_receive_reset":
            # An IPv6 socket's addresses are in saddrv6/daddrv6 (saddr is then 0.0.0.0).
            v6 = "v6" if fields.get("family") == "AF_INET6" else ""
            local = (fields.get("saddr" + v6, ""), int(fields.get("sport", 0)))
            peer = (fields.get("daddr" + v6, ""), int(fields.get("dport", 0)))
        elif name == "tcp_send_reset":
            local, peer = _split(fields.get("src", "")), _split(fields.get("dest", ""))
        else:
            continue
        side = _side(local, peer, client, server)
        if side is None:
            continue
        if name == "inet_sock_set_state":
            old, new = _state(fields, "oldstate"), _state(fields, "newstate")
            transitions.append(Transition(t, side, old, new))
        elif name == "tcp_send_reset":
            events.append(KernelEvent(t, side, "send_reset", fields.get("reason")))
        else:
            events.append(KernelEvent(t, side, "receive_reset"))
    return transitions, events


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def _side(local, peer, client, server) -> str | None:
    # The connecting socket is reported with sport=0 on CLOSE -> SYN-SENT: match it by
    # address and peer alone.
    if peer == server and (local == client or (local[1] == 0 and local[0] == client[0])):
        return "client"
    if local == server and peer == client:
        return "server"
    return None


def tracefs_root() -> Path | None:
    """The tracefs mount, mounting it when root and it is absent; None if unusable."""
    for root in TRACEFS_CANDIDATES:
        if (root / "instances").is_dir():
            return root
    if os.geteuid() == 0:
        try:
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS_CANDIDATES[0])],
                           capture_output=True)
        except OSError:             # no mount(8): go on without tracepoints
            return None
        if (TRACEFS_CANDIDATES[0] / "instances").is_dir():
            return TRACEFS_CANDIDATES[0]
    return None


def _state(fields: dict[str, str], key: str) -> str:
    """The RFC 9293 name of the kernel's state in `key` (an unknown one as the kernel
    spells it, a missing one UNKNOWN)."""
    name = fields.get(key)
    return TcpState.UNKNOWN if name is None else _KERNEL_STATE.get(name, name)


def _clock_offset() -> float:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few paired readings."""
    best = (math.inf, 0.0)      # (reading's width, offset)
    for _ in range(5):
        a = time.monotonic()
        wall = time.time()
        b = time.monotonic()
        if b - a < best[0]:
            best = (b - a, wall - (a + b) / 2)
    return best[1]


def remove_stale_instances(root: Path) -> None:
    """Remove instances left by tcptrace processes that died without cleaning up.

    tracefs is shared by every PID namespace, so a pid missing from our /proc may be a
    live tcptrace in a container: only instances older than an hour are removed."""
    now = time.time()
    for inst in (root / "instances").glob(INSTANCE_PREFIX + "*"):
        pid = inst.name[len(INSTANCE_PREFIX):].split("-")[0]
        try:
            old = now - inst.stat().st_mtime > 3600
        except OSError:
            continue
        if pid.isdigit() and old and not Path(f"/proc/{pid}").exists():
            try:
                inst.rmdir()
            except OSError:
                pass


class KernelTrace:
    """Records the three tracepoints for the given ports in a private trace instance.

    Use as a context manager around the scenario; `available` is False (and `why` says
    why) when tracefs cannot be used, and the run goes on without it.
    """

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.available = False
        self.why = ""
        self.text = ""
        self.clock_offset = 0.0
        self._dir: Path | None = None

    def __enter__(self) -> KernelTrace:
        root = tracefs_root()
        if root is None:
            self.why = "tracefs is not available (needs root)"
            return self
        remove_stale_instances(root)
        inst = root / "instances" / f"{INSTANCE_PREFIX}{os.getpid()}-{id(self):x}"
        try:
            self._dir = inst        # first: a Ctrl-C right after mkdir still removes it
            inst.mkdir()
            (inst / "trace_clock").write_text("mono")
            (inst / "buffer_size_kb").write_text("512")
            port_filter = " || ".join(f"sport == {p} || dport == {p}" for p in self.ports)
            for event in EVENTS:
                edir = inst / "events" / event
                if not edir.is_dir():
                    raise OSError(f"tracepoint {event} is missing")
                if event != "tcp/tcp_send_reset":   # its addresses are not filterable fields
                    (edir / "filter").write_text(port_filter)
                (edir / "enable").write_text("1")
            self.clock_offset = _clock_offset()
            self.available = True
        except OSError as exc:
            self.why = f"kernel tracepoints unusable: {exc}"
            self._remove()
        except BaseException:   # Ctrl-C half-way: __exit__ will not run, so clean up here
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._dir is not None:
            try:
                (self._dir / "tracing_on").write_text("0")
                self.text = (self._dir / "trace").read_text()
            except OSError:
                pass
        self._remove()

    def _remove(self) -> None:
        if self._dir is None:
            return
        for event in EVENTS:
            try:
                (self._dir / "events" / event / "enable").write_text("0")
            except OSError:
                pass
        try:
            self._dir.rmdir()
        except OSError:
            pass
        self._dir = None

    def results(self, client: tuple[str, int], server: tuple[str, int]):
        return parse_trace(self.text, client, server, self.clock_offset)
