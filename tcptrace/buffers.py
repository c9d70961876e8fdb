"""The buffer layers on this machine, top to bottom, read from where they really live.

Every value comes from a source a person can re-read: asyncio's own transport, Node's own
`net.Socket`, `getsockopt()` on fresh and connected loopback sockets, TCP_INFO, the sysctl
files under /proc/sys and /sys/class/net/lo/mtu. `gather_buffers()` does that I/O once and
returns plain data; `tcptrace.render.buffers` renders it and `tcptrace.render.jsonout`
writes it as JSON. Nothing here imports scapy.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PROC_SYS = Path("/proc/sys")
LO_MTU = Path("/sys/class/net/lo/mtu")

SYSCTLS = ("net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem", "net.core.wmem_max", "net.core.rmem_max",
           "net.core.wmem_default", "net.core.rmem_default", "net.ipv4.tcp_moderate_rcvbuf",
           "net.ipv4.tcp_notsent_lowat", "net.ipv4.tcp_adv_win_scale",
           "net.ipv4.tcp_window_scaling")

# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32s in this order.
_TCP_INFO_U32 = ("rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans",
                 "fackets", "last_data_sent", "last_ack_sent", "last_data_recv",
                 "last_ack_recv", "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh",
                 "snd_cwnd", "advmss")

NODE_PROBE = ("const net=require('net'),stream=require('stream');const s=new net.Socket();"
              "console.log(JSON.stringify({version:process.version,"
              "writableHighWaterMark:s.writableHighWaterMark,"
              "readableHighWaterMark:s.readableHighWaterMark,"
              "defaultHighWaterMark:stream.getDefaultHighWaterMark?"
              "stream.getDefaultHighWaterMark(false):null}));s.destroy();")


@dataclass(slots=True)
class Value:
    name: str
    value: int | str | list[int] | None
    source: str                 # where it was read, so a person can check it
    note: str = ""


@dataclass(slots=True)
class Layer:
    key: str                    # app-asyncio | app-node | send | receive | wire
    title: str
    values: list[Value]
    felt: str                   # where backpressure is felt at this boundary
    tune: list[str]             # how to change it
    available: bool = True
    why_unavailable: str = ""

    def value(self, name: str):
        for v in self.values:
            if v.name == name:
                return v.value
        raise KeyError(name)


@dataclass(slots=True)
class BuffersReport:
    layers: list[Layer]
    sysctl: dict[str, str] = field(default_factory=dict)

    def layer(self, key: str) -> Layer:
        return next(layer for layer in self.layers if layer.key == key)


# --- edges: the few reads ---------------------------------------------------------------

def read_sysctl(name: str, root: Path = PROC_SYS) -> str:
    return (root / name.replace(".", "/")).read_text().strip()


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def tcp_info(sock: socket.socket) -> dict[str, int]:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    values = struct.unpack_from(f"<{len(_TCP_INFO_U32)}I", raw, 8)
    return dict(zip(_TCP_INFO_U32, values, strict=True))


def fresh_socket_buffers() -> dict[str, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return {"SO_SNDBUF": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                "SO_RCVBUF": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}


def set_and_read(option: int, requested: int) -> int:
    """What getsockopt returns after setsockopt(option, requested) on a fresh TCP socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, option, requested)
        return s.getsockopt(socket.SOL_SOCKET, option)


def connected_pair_facts() -> dict[str, int]:
    """SO_SNDBUF/SO_RCVBUF and TCP_INFO of a just-connected loopback pair (autotuning on)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=2) as client:
            server, _ = listener.accept()
            with server:
                info = tcp_info(client)
                return {"SO_SNDBUF": client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                        "SO_RCVBUF": client.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                        "TCP_MAXSEG": client.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
                        "advmss": info["advmss"], "snd_mss": info["snd_mss"],
                        "pmtu": info["pmtu"]}


def asyncio_limits() -> dict[str, int]:
    """asyncio's default write-buffer limits and StreamReader limit, from a real transport."""
    async def probe() -> dict[str, int]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            low, high = writer.transport.get_write_buffer_limits()
            limit = reader._limit  # type: ignore[attr-defined]  # private: no public getter
            writer.close()
            return {"write_low": low, "write_high": high, "stream_reader_limit": limit}
        finally:
            server.close()
    return asyncio.run(probe())


def node_limits(node: str | None = None, timeout: float = 10.0) -> dict | None:
    """Node's own defaults (from `node` itself), or None when node is not installed."""
    node = node or shutil.which("node")
    if not node:
        return None
    proc = subprocess.run([node, "-e", NODE_PROBE], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- gathering ---------------------------------------------------------------------------

def gather_buffers(with_node: bool = True) -> BuffersReport:
    return build_report(Readings(
        sysctl={name: read_sysctl(name) for name in SYSCTLS},
        aio=asyncio_limits(),
        node=node_limits() if with_node else None,
        fresh=fresh_socket_buffers(),
        pair=connected_pair_facts(),
        mtu=int(LO_MTU.read_text().strip()),
        doubled_snd=(65536, set_and_read(socket.SO_SNDBUF, 65536)),
        doubled_rcv=(65536, set_and_read(socket.SO_RCVBUF, 65536)),
        clamped_snd=(1 << 30, set_and_read(socket.SO_SNDBUF, 1 << 30))))


@dataclass
class Readings:
    """Every value the report explains, read from this machine beforehand."""

    sysctl: dict[str, str]
    aio: dict[str, int]                 # asyncio_limits()
    node: dict | None                   # node_limits(), None without node
    fresh: dict[str, int]               # fresh_socket_buffers()
    pair: dict[str, int]                # connected_pair_facts()
    mtu: int
    doubled_snd: tuple[int, int]        # (asked, got) for SO_SNDBUF
    doubled_rcv: tuple[int, int]        # (asked, got) for SO_RCVBUF
    clamped_snd: tuple[int, int]        # (asked far above wmem_max, got)


def build_report(r: Readings) -> BuffersReport:
    """Pure: the layers, top to bottom, with their explanations."""
    layers = [_asyncio_layer(r), _node_layer(r), _send_layer(r), _receive_layer(r),
              _wire_layer(r)]
    return BuffersReport(layers=layers, sysctl=dict(r.sysctl))


def _asyncio_layer(r: Readings) -> Layer:
    aio = r.aio
    return Layer("app-asyncio", "Application buffer: Python asyncio", [
        Value("write high-water mark", aio["write_high"],
              "transport.get_write_buffer_limits() on a loopback connection"),
        Value("write low-water mark", aio["write_low"],
              "transport.get_write_buffer_limits()"),
        Value("StreamReader limit", aio["stream_reader_limit"],
              "asyncio.open_connection() default (limit=)",
              "reading from the socket pauses above 2 x limit unread"),
    ], felt=("transport.write() never blocks: it copies what the kernel refused into a "
             "user-space buffer. Above the high-water mark asyncio calls pause_writing() "
             "and `await writer.drain()` blocks until the buffer is below the low-water "
             "mark (resume_writing()). A writer that never awaits drain() grows it without "
             "limit."),
        tune=["writer.transport.set_write_buffer_limits(high=..., low=...)",
              "asyncio.open_connection(..., limit=...) for the read side"])


def _node_layer(r: Readings) -> Layer:
    node = r.node
    if node:
        return Layer("app-node", f"Application buffer: Node.js {node['version']}", [
            Value("writableHighWaterMark", node["writableHighWaterMark"],
                  "new net.Socket().writableHighWaterMark (asked node)"),
            Value("readableHighWaterMark", node["readableHighWaterMark"],
                  "new net.Socket().readableHighWaterMark (asked node)"),
        ], felt=("socket.write() always queues the chunk; it returns false once writableLength "
                 ">= writableHighWaterMark, and 'drain' fires when the queue is empty again. "
                 "Ignoring false keeps queueing in the heap."),
            tune=["new net.Socket({writableHighWaterMark: N})",
                  "net.createServer({highWaterMark: N}) for accepted sockets",
                  "stream.setDefaultHighWaterMark(false, N) (Node >= 19.9)"])
    return Layer("app-node", "Application buffer: Node.js", [], felt="", tune=[],
                 available=False, why_unavailable="`node` was not found on PATH")


def _send_layer(r: Readings) -> Layer:
    fresh, pair, doubled_snd, clamped_snd = r.fresh, r.pair, r.doubled_snd, r.clamped_snd
    wmem, wmem_max = ints(r.sysctl["net.ipv4.tcp_wmem"]), int(r.sysctl["net.core.wmem_max"])
    lowat = int(r.sysctl["net.ipv4.tcp_notsent_lowat"])
    return Layer("send", "Kernel send buffer (writer's socket)", [
        Value("SO_SNDBUF, fresh socket", fresh["SO_SNDBUF"],
              "getsockopt(SO_SNDBUF) on a new TCP socket", "= tcp_wmem default"),
        Value("SO_SNDBUF, connected on lo", pair["SO_SNDBUF"],
              "getsockopt(SO_SNDBUF) right after connect()",
              "autotuned from cwnd and MSS, capped by tcp_wmem max"),
        Value("net.ipv4.tcp_wmem", wmem, "/proc/sys/net/ipv4/tcp_wmem", "min default max"),
        Value("net.core.wmem_max", wmem_max, "/proc/sys/net/core/wmem_max",
              "cap for setsockopt(SO_SNDBUF)"),
        Value(f"setsockopt(SO_SNDBUF, {doubled_snd[0]})", doubled_snd[1],
              "getsockopt after setsockopt", "Linux doubles it (bookkeeping overhead)"),
        Value(f"setsockopt(SO_SNDBUF, {clamped_snd[0]})", clamped_snd[1],
              "getsockopt after setsockopt", "clamped to 2 x wmem_max"),
        Value("net.ipv4.tcp_notsent_lowat", lowat, "/proc/sys/net/ipv4/tcp_notsent_lowat",
              "off" if lowat >= 0xFFFFFFFF else "unsent bytes above this make the socket "
              "unwritable"),
    ], felt=("send()/write() blocks (EAGAIN when non-blocking) once the queued bytes, "
             "unsent plus sent-but-unacknowledged (ss Send-Q, skmem w), reach SO_SNDBUF; "
             "that is when asyncio or Node start buffering in user space."),
        tune=["sysctl -w net.ipv4.tcp_wmem='MIN DEFAULT MAX' (autotuning range)",
              "setsockopt(SO_SNDBUF, n): kernel keeps 2n, at most 2 x net.core.wmem_max; "
              "turns send autotuning off for that socket",
              "TCP_NOTSENT_LOWAT / net.ipv4.tcp_notsent_lowat: cap unsent bytes"])


def _receive_layer(r: Readings) -> Layer:
    fresh, doubled_rcv, sysctl = r.fresh, r.doubled_rcv, r.sysctl
    rmem, rmem_max = ints(sysctl["net.ipv4.tcp_rmem"]), int(sysctl["net.core.rmem_max"])
    moderate = int(sysctl["net.ipv4.tcp_moderate_rcvbuf"])
    return Layer("receive", "Kernel receive buffer (reader's socket)", [
        Value("SO_RCVBUF, fresh socket", fresh["SO_RCVBUF"],
              "getsockopt(SO_RCVBUF) on a new TCP socket", "= tcp_rmem default"),
        Value("net.ipv4.tcp_rmem", rmem, "/proc/sys/net/ipv4/tcp_rmem", "min default max"),
        Value("net.core.rmem_max", rmem_max, "/proc/sys/net/core/rmem_max",
              "cap for setsockopt(SO_RCVBUF)"),
        Value(f"setsockopt(SO_RCVBUF, {doubled_rcv[0]})", doubled_rcv[1],
              "getsockopt after setsockopt", "doubled, like SO_SNDBUF"),
        Value("net.ipv4.tcp_moderate_rcvbuf", moderate,
              "/proc/sys/net/ipv4/tcp_moderate_rcvbuf",
              "receive autotuning on: grows up to tcp_rmem max as the reader reads"
              if moderate else "receive autotuning off"),
        Value("net.ipv4.tcp_adv_win_scale", int(sysctl["net.ipv4.tcp_adv_win_scale"]),
              "/proc/sys/net/ipv4/tcp_adv_win_scale",
              "share of the buffer kept for overhead (newer kernels measure it per skb)"),
    ], felt=("Unread bytes (ss Recv-Q, skmem r) fill it; the window the reader advertises "
             "shrinks with the free space and reaches 0: the writer stops sending and "
             "its persist timer sends zero-window probes until the window reopens."),
        tune=["sysctl -w net.ipv4.tcp_rmem='MIN DEFAULT MAX' (autotuning range)",
              "setsockopt(SO_RCVBUF, n) before listen()/connect(): kernel keeps 2n, at "
              "most 2 x net.core.rmem_max; turns receive autotuning off and fixes the "
              "window scale",
              "sysctl -w net.ipv4.tcp_moderate_rcvbuf=0 turns autotuning off machine-wide"])


def _wire_layer(r: Readings) -> Layer:
    pair, mtu, sysctl = r.pair, r.mtu, r.sysctl
    return Layer("wire", "Wire: loopback interface", [
        Value("lo MTU", mtu, "/sys/class/net/lo/mtu"),
        Value("advertised MSS (advmss)", pair["advmss"], "TCP_INFO tcpi_advmss, connected "
              "pair", "largest IPv4 packet (65,535) less IP and TCP headers and the 12-byte "
              "timestamp option, on lo"),
        Value("MSS in use (snd_mss)", pair["snd_mss"], "TCP_INFO tcpi_snd_mss",
              "Linux caps it at half the largest window the peer advertised"),
        Value("net.ipv4.tcp_window_scaling", int(sysctl["net.ipv4.tcp_window_scaling"]),
              "/proc/sys/net/ipv4/tcp_window_scaling",
              "windows above 64 KiB need the scale option on both SYNs"),
    ], felt=("The window field of every segment carries the reader's free space back to "
             "the writer; a 0 there is backpressure on the wire."),
        tune=["ip link set lo mtu N (changes MSS)"])

