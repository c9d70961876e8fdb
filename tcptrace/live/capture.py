"""Live capture of one conversation on `lo`: each segment once, raw, with kernel timestamps.

    with LoopbackCapture(ports={server_port, client_port}) as cap:
        ...  # run the scenario; the sniffer is already reading
    cap.frames  # [(ts, ethernet_frame_bytes), ...] in capture order

scapy is imported only when a capture starts: `import scapy` costs about a second and
`tcptrace --help` must not pay it.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
import termios
import threading
import time

from tcptrace.errors import NeedPrivilege, TcptraceError
from tcptrace.live import bpf

Frame = tuple[float, bytes]

QUIET = 0.05        # on exit, stop once no frame has arrived for this long...
DRAIN_MAX = 1.0     # ...or after this long at most
START_TIMEOUT = 5.0
RCVBUF = 32 << 20   # 64 KiB loopback frames: room for a burst while Python catches up
SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_RCVBUFFORCE = 33  # exceeds net.core.rmem_max; needs CAP_NET_ADMIN


class LoopbackCapture:
    """Capture the TCP frames on `iface` whose source or destination port is in `ports`.

    Bind both endpoints before entering, so both ports are known before the SYN.
    `drops` counts frames the kernel discarded because the sniffer fell behind.
    """

    def __init__(self, ports: set[int], iface: str = "lo", outgoing: bool = False) -> None:
        self.ports = set(ports)
        self.iface = iface
        self.outgoing = outgoing    # keep sent frames too (a veth end; never on lo)
        self.frames: list[Frame] = []
        self.drops = 0
        self._last = 0.0  # monotonic time of the latest frame

    def __enter__(self) -> LoopbackCapture:
        from scapy.sendrecv import AsyncSniffer

        self._sock = _open_socket(self.iface, self.ports, self.outgoing)
        try:
            ready = threading.Event()
            self._sniffer = AsyncSniffer(opened_socket=self._sock, store=False,
                                         prn=self._on_frame, started_callback=ready.set)
            self._sniffer.start()
            if not ready.wait(START_TIMEOUT):
                raise TcptraceError(f"the sniffer on {self.iface} did not start: "
                                    f"{self._sniffer.exception or 'timeout'}")
        except BaseException:
            self._stop()
            self._sock.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._drain()
        finally:  # even on a second Ctrl-C: the thread stopped, the socket closed
            try:
                failure = self._stop()
                if failure is None:  # else scapy has closed the socket
                    self.drops = _drops(self._sock.ins)
            finally:
                self._sock.close()
        if failure is not None and exc_type is None:
            raise TcptraceError(f"capture on {self.iface} failed: {failure}")

    def _on_frame(self, pkt) -> None:
        self.frames.append((float(pkt.time), bytes(pkt)))
        self._last = time.monotonic()

    def _drain(self) -> None:
        """Wait for the scenario's last frames: the kernel queue empty and QUIET without
        a new frame (a delayed ACK comes ~40 ms late), rather than a fixed long sleep."""
        start = time.monotonic()
        while self._sniffer.running and time.monotonic() - start < DRAIN_MAX:
            if time.monotonic() - max(self._last, start) >= QUIET and not _queued(self._sock.ins):
                return
            time.sleep(QUIET / 10)

    def _stop(self) -> BaseException | str | None:
        """Stop the sniffer thread; return why it had already ended on its own, if it had."""
        sniffer = getattr(self, "_sniffer", None)
        if sniffer is None:
            return None
        try:
            sniffer.stop(join=False)
            failure = None
        except Exception:  # scapy raises when the thread is not running: it failed
            # A read error is only logged by scapy (a WARNING line), not kept.
            failure = sniffer.exception or "the socket stopped delivering frames"
        if sniffer.thread is not None and sniffer.thread.is_alive():
            sniffer.thread.join()
        return failure


def _open_socket(iface: str, ports: set[int], outgoing: bool = False):
    """An AF_PACKET socket on `iface` with the port filter attached and nothing queued."""
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise TcptraceError(f"no network interface named {iface!r}") from None
    try:
        sock = _raw_listen_socket(iface)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EACCES):
            raise TcptraceError(f"cannot capture on {iface}: {e.strerror}") from None
        # Never suggest setcap on the shared interpreter: every Python program would
        # get raw sockets. The README has the recipe for an interpreter of our own.
        raise NeedPrivilege(
            f"capturing on {iface} needs CAP_NET_RAW: run as root or with sudo "
            "(or see the README for a capability-only interpreter of tcptrace's own)"
        ) from None
    try:
        try:
            sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except PermissionError:  # no CAP_NET_ADMIN: as much as net.core.rmem_max allows
            sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        bpf.attach(sock.ins, bpf.tcp_ports_program(ports, outgoing=outgoing))
        # Frames queued between bind and attach passed no filter: discard them.
        while True:
            try:
                sock.ins.recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        _drops(sock.ins)  # reading the statistics resets them; count from here
    except BaseException:
        sock.close()
        raise
    return sock


def _raw_listen_socket(iface: str):
    import scapy.layers.l2  # noqa: F401  registers lo's link type; else scapy warns on open
    from scapy.arch.linux import L2ListenSocket
    from scapy.packet import Raw

    class RawListenSocket(L2ListenSocket):
        """Hands the sniffer undissected frames, read whole: scapy reads 65535 bytes by
        default, and a frame on lo (MTU 65536) can be 14 bytes longer."""

        def recv_raw(self, x=None):
            _, data, ts = super().recv_raw(bpf.SNAPLEN)
            return Raw, data, ts

    return RawListenSocket(iface=iface)


def _queued(sock: socket.socket) -> int:
    """Length of the next frame waiting in the kernel queue, 0 when it is empty."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]


def _drops(sock: socket.socket) -> int:
    """Frames dropped for want of buffer space since the last call (struct tpacket_stats)."""
    _, dropped = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return dropped
