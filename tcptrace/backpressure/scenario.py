"""The live backpressure run: the edge where sockets, the writer process, `ss`, the capture
and the kernel counters meet. It records; `analysis` interprets.

One worker thread does everything, so that with `netns="private"` (or "auto" as root) it
can first move itself, alone, into a new network namespace (`unshare(CLONE_NEWNET)`
affects only the calling thread): every socket, thread and child process it then creates
(reader, capture, `ss`, the writer) lives in a namespace where this run is the only
traffic, so the kernel's counters (`TcpExtTCPWinProbe`...) belong to it. The main thread
only waits, and on Ctrl-C stops the writer, closes the sockets and re-raises.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tcptrace.backpressure import run_node, run_python
from tcptrace.backpressure.result import PAUSE, RESUME, BackpressureOptions, Event, Sample
from tcptrace.backpressure.sampler import Sampler
from tcptrace.backpressure.stream import CHUNK, stream_digest
from tcptrace.buffers import read_sysctl
from tcptrace.errors import TcptraceError

READER_IP, WRITER_IP = "127.0.0.1", "127.0.0.2"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
COUNTERS = ("TCPWinProbe", "TCPKeepAlive", "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv",
            "TCPWantZeroWindowAdv", "TCPACKSkippedSeq", "TCPAbortOnClose")
SYSCTLS = ("net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem", "net.core.wmem_max", "net.core.rmem_max",
           "net.ipv4.tcp_moderate_rcvbuf", "net.ipv4.tcp_invalid_ratelimit")
SAMPLE_MS = 20       # how often the writer reports its application buffer


@dataclass
class RawRun:
    """What one live run recorded, uninterpreted."""

    options: BackpressureOptions
    reader_endpoint: str = ""
    writer_endpoint: str = ""
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    capture_drops: int = 0
    samples: list[Sample] = field(default_factory=list)
    app_events: list[Event] = field(default_factory=list)    # writer runtime's events
    reader_events: list[Event] = field(default_factory=list)
    app: dict = field(default_factory=dict)      # hello/connected/written/done reports
    reader: dict = field(default_factory=dict)
    kernel: dict = field(default_factory=dict)
    expected_digest: str = ""


# --- kernel helpers ----------------------------------------------------------------------

def enter_private_netns() -> None:
    """Move the calling thread into a new network namespace and bring its `lo` up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def read_netstat(path: str = "/proc/thread-self/net/netstat") -> dict[str, int]:
    """TcpExt counters of the calling thread's network namespace."""
    lines = Path(path).read_text().splitlines()
    out: dict[str, int] = {}
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        prefix, _, keys = names.partition(":")
        if prefix == "TcpExt":
            out.update(zip(keys.split(), map(int, values.partition(":")[2].split()), strict=True))
    return out


# --- the run -----------------------------------------------------------------------------

class Run:
    def __init__(self, opts: BackpressureOptions) -> None:
        self.opts = opts
        self.raw = RawRun(options=opts)
        self.stop = threading.Event()
        self.child: subprocess.Popen | None = None
        self.listener: socket.socket | None = None
        self.error: BaseException | None = None
        self.connected = threading.Event()
        self.app_buffer: int | None = None
        self.reader_done = threading.Event()

    # the writer's stdout: one JSON object a line
    def _child_reports(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None     # run_python/run_node start it with stdout=PIPE
        for line in child.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("type")
            if kind == "sample":
                self.app_buffer = msg["app_buffer"]
            elif kind == "event":
                self.app_buffer = msg.get("app_buffer", self.app_buffer)
                self.raw.app_events.append(Event(
                    t=msg["t"], kind=msg["kind"], side="writer", source="app",
                    detail=msg.get("detail", ""), app_buffer=msg.get("app_buffer")))
            else:
                self.raw.app[kind] = msg
                if kind == "connected":
                    self.connected.set()
                if "app_buffer" in msg:
                    self.app_buffer = msg["app_buffer"]

    def _read(self, listener: socket.socket) -> None:
        opts, info = self.opts, self.raw.reader
        digest, count = hashlib.sha256(), 0
        try:
            listener.settimeout(10)
            conn, peer = listener.accept()
            with conn:
                info["rcvbuf"] = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                t = time.time()
                self.raw.reader_events.append(Event(
                    t, PAUSE, "reader", "app", f"the reader stops reading for {opts.pause:g} s"))
                self.stop.wait(opts.pause)
                self.raw.reader_events.append(Event(
                    time.time(), RESUME, "reader", "app", "the reader reads everything"))
                conn.settimeout(opts.timeout)
                while not self.stop.is_set():
                    data = conn.recv(1 << 20)
                    if not data:
                        break
                    digest.update(data)
                    count += len(data)
                info["eof"] = time.time()
        except OSError as e:
            info["error"] = f"{type(e).__name__}: {e}"
        finally:
            # what was read counts even when the read ended in a timeout or a reset
            info.update(bytes=count, digest=digest.hexdigest())
            self.reader_done.set()

    def _start_writer(self, port: int) -> subprocess.Popen:
        opts = self.opts
        child_opts = {"host": READER_IP, "port": port, "bind": WRITER_IP, "bytes": opts.bytes,
                      "chunk": CHUNK, "seed": opts.seed.decode(),
                      "ignore": opts.ignore_backpressure, "sample_ms": SAMPLE_MS}
        module = run_node if opts.runtime == "node" else run_python
        return module.start(child_opts, opts.sndbuf)

    def run(self) -> RawRun:
        """Everything, in this thread (which may first move to a private namespace)."""
        from tcptrace.live.capture import LoopbackCapture  # imports scapy: only when capturing

        opts, raw = self.opts, self.raw
        raw.kernel["netns"] = self._namespace()
        raw.kernel["sysctl"] = {name: read_sysctl(name) for name in SYSCTLS}
        before = read_netstat()
        self.listener = listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            if opts.rcvbuf:      # before listen(): the accepted socket inherits it
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.rcvbuf)
            listener.bind((READER_IP, 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            raw.reader_endpoint = f"{READER_IP}:{port}"
            with LoopbackCapture(ports={port}) as cap:
                reader = threading.Thread(target=self._read, args=(listener,), name="reader",
                                          daemon=True)
                reader.start()
                self.child = child = self._start_writer(port)
                reports = threading.Thread(target=self._child_reports, args=(child,),
                                           daemon=True, name="writer-reports")
                reports.start()
                self._wait_connected(child)
                raw.writer_endpoint = raw.app["connected"]["local"]
                sampler = Sampler(port, raw.writer_endpoint, raw.reader_endpoint,
                                  opts.interval, lambda: self.app_buffer, child.pid).start()
                try:
                    self._wait_done(child, reader)
                finally:
                    raw.samples = sampler.stop()
                    if child.poll() is None:     # _wait_done gave up: stop the writer
                        child.kill()             # so that its pipes reach EOF
                    reports.join(timeout=2)
                    raw.app["stderr"] = child.stderr.read()[-2000:] if child.stderr else ""
                if sampler.error:    # only now: raised in the finally, it would mask another
                    raise TcptraceError(f"sampling ss failed: {sampler.error}")
            raw.frames, raw.capture_drops = cap.frames, cap.drops
        after = read_netstat()
        raw.kernel["counters"] = {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS
                                  if k in after}
        # after the run (seconds for --bytes 2 GiB), so it does not delay the timeout
        raw.expected_digest = stream_digest(opts.seed, opts.bytes)
        return raw

    def _namespace(self) -> str:
        if self.opts.netns == "host":
            return "host"
        try:
            enter_private_netns()
            return "private"
        except OSError as e:
            if self.opts.netns == "private":
                raise TcptraceError(f"cannot create a private network namespace: "
                                    f"{e.strerror} (needs CAP_SYS_ADMIN; try --netns host)"
                                    ) from e
            return "host"

    def _wait_connected(self, child: subprocess.Popen[str]) -> None:
        assert child.stderr is not None     # run_python/run_node start it with stderr=PIPE
        deadline = time.monotonic() + 10
        while not self.connected.wait(0.05):
            if child.poll() is not None or time.monotonic() > deadline or self.stop.is_set():
                err = (child.stderr.read() if child.poll() is not None else "") or ""
                msg = self.raw.app.get("error", {}).get("message") or err.strip()[-300:]
                raise TcptraceError(f"the {self.opts.runtime} writer did not connect"
                                    + (f": {msg}" if msg else ""))

    def _wait_done(self, child: subprocess.Popen, reader: threading.Thread) -> None:
        deadline = time.monotonic() + self.opts.timeout + self.opts.pause
        while not (self.reader_done.is_set() and child.poll() is not None):
            if self.stop.is_set():
                raise KeyboardInterrupt
            if time.monotonic() > deadline:
                raise TcptraceError(f"the run did not finish within "
                                    f"{self.opts.timeout + self.opts.pause:g} s")
            time.sleep(0.02)
        reader.join()

    def abort(self) -> None:
        """Ctrl-C: stop waiting, kill the writer, close the reader's sockets."""
        self.stop.set()
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cleanup(self) -> None:
        if self.child is not None:
            if self.child.poll() is None:
                self.child.kill()
            self.child.wait()


def record(opts: BackpressureOptions) -> RawRun:
    """Run the scenario in its own thread; Ctrl-C in the caller aborts it cleanly."""
    opts.validate()
    run = Run(opts)
    result: dict = {}

    def target() -> None:
        try:
            result["raw"] = run.run()
        except BaseException as e:
            result["error"] = e
        finally:
            run.cleanup()

    worker = threading.Thread(target=target, name="backpressure", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        run.abort()
        worker.join(10)
        raise
    if "error" in result:
        raise result["error"]
    return result["raw"]

