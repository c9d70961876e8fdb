"""Reading socket states from iproute2's `ss`: running it (edge) and parsing its text (pure).

`ss` has no JSON output, so we ask for one line per socket (`-O`), no header (`-H`),
numeric addresses, timers, internals, extended and memory fields, filtered in the kernel
to the ports of one connection, and parse it tolerantly: unknown fields are kept, not fatal.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from tcptrace.errors import TcptraceError
from tcptrace.model import TcpState

# ss.c prints these names; the tool speaks RFC 9293's hyphenated spelling.
_STATE_NAMES = {
    "ESTAB": TcpState.ESTABLISHED,
    "SYN-SENT": TcpState.SYN_SENT,
    "SYN-RECV": TcpState.SYN_RECEIVED,
    "FIN-WAIT-1": TcpState.FIN_WAIT_1,
    "FIN-WAIT-2": TcpState.FIN_WAIT_2,
    "TIME-WAIT": TcpState.TIME_WAIT,
    "UNCONN": TcpState.CLOSED,
    "CLOSE-WAIT": TcpState.CLOSE_WAIT,
    "LAST-ACK": TcpState.LAST_ACK,
    "LISTEN": TcpState.LISTEN,
    "CLOSING": TcpState.CLOSING,
}

_TIMER = re.compile(r"timer:\((\w+),([^,]+),(\d+)\)")
_SKMEM = re.compile(r"skmem:\(([^)]*)\)")
_SKMEM_FIELD = re.compile(r"([a-z]+)(\d+)")
# key:value pairs of -i/-e output whose value is a plain number (or a/b pair).
_KV = re.compile(r"(?<![\w(,])([a-z_]+):(\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)?|\d+,\d+)(?=\s|$)")
_SHUTDOWN = re.compile(r"(?:^|\s)([<-]-[>-])(?:\s|$)")


@dataclass(slots=True)
class SocketLine:
    """One socket as `ss` printed it."""

    state: str                  # RFC 9293 name
    recv_q: int
    send_q: int
    local: str                  # "ip:port" ("[v6]:port" for IPv6)
    peer: str
    timer: tuple[str, str, int] | None = None   # (name, expires, retransmits)
    shutdown: str | None = None  # "<->", "-->", "<--", "---"
    skmem: dict[str, int] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    def to_json(self) -> dict:
        out = {"state": self.state, "recv_q": self.recv_q, "send_q": self.send_q,
               "local": self.local, "peer": self.peer}
        if self.timer:
            out["timer"] = {"name": self.timer[0], "expires": self.timer[1],
                            "retrans": self.timer[2]}
        if self.shutdown:
            out["shutdown"] = self.shutdown
        if self.skmem:
            out["skmem"] = self.skmem
        return out


def normalise_state(name: str) -> str:
    return _STATE_NAMES.get(name, name)


def parse_line(line: str) -> SocketLine | None:
    """Parse one `ss -H -O -tanoiem` line; None for blank or unparseable lines."""
    parts = line.split()
    if len(parts) < 5 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    rest = " ".join(parts[5:])
    sock = SocketLine(state=normalise_state(parts[0]), recv_q=int(parts[1]),
                      send_q=int(parts[2]), local=parts[3],
                      peer=parts[4], raw=line.rstrip())
    if m := _TIMER.search(rest):
        sock.timer = (m.group(1), m.group(2), int(m.group(3)))
    if m := _SKMEM.search(rest):
        sock.skmem = {k: int(v) for k, v in _SKMEM_FIELD.findall(m.group(1))}
    if m := _SHUTDOWN.search(rest):
        sock.shutdown = m.group(1)
    sock.info = dict(_KV.findall(_SKMEM.sub("", _TIMER.sub("", rest))))
    return sock


def parse_output(text: str) -> list[SocketLine]:
    return [s for s in map(parse_line, text.splitlines()) if s is not None]


def ss_command(ports: list[int], memory: bool = False) -> list[str]:
    expr = " or ".join(f"sport = :{p} or dport = :{p}" for p in ports)
    opts = "-H -O -tanoie" + ("m" if memory else "")
    return ["ss", *opts.split(), "state", "all", f"( {expr} )"]


def require_ss() -> None:
    if shutil.which("ss") is None:
        raise TcptraceError("`ss` was not found: install iproute2 (apt-get install iproute2)")


def run_ss(ports: list[int], memory: bool = False) -> list[SocketLine]:
    """Snapshot of every TCP socket using one of `ports` (LISTEN and TIME-WAIT included).
    Callers check `require_ss()` once, up front: this runs every few milliseconds."""
    try:
        proc = subprocess.run(ss_command(ports, memory), capture_output=True, text=True)
    except FileNotFoundError:
        require_ss()
        raise
    if proc.returncode != 0:
        first = proc.stderr.strip().splitlines()[:1]
        raise TcptraceError(f"ss failed: {first[0] if first else f'exit status {proc.returncode}'}")
    return parse_output(proc.stdout)


def find_socket(lines: list[SocketLine], local: str, peer: str) -> SocketLine | None:
    """The socket of one side of a connection, identified by its local and peer endpoints."""
    for sock in lines:
        if sock.local == local and sock.peer == peer and sock.state != TcpState.LISTEN:
            return sock
    return None


def state_of(lines: list[SocketLine], local: str, peer: str) -> str:
    """The side's state, or CLOSED when `ss` no longer lists its socket."""
    sock = find_socket(lines, local, peer)
    return sock.state if sock else TcpState.CLOSED
