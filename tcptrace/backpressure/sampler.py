"""Sampling both sockets with `ss -tmi` (and the writer's RSS) at a steady interval.

`side_sample()` turns one parsed `ss` line into the fields the chart needs (pure);
`Sampler` is the edge: a thread that runs `ss` every `interval` seconds on a fixed
schedule (a slow `ss` call delays one sample, not the whole timeline).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tcptrace.backpressure.result import Sample, SideSample
from tcptrace.live import ss


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def side_sample(sock: ss.SocketLine | None) -> SideSample | None:
    if sock is None:
        return None
    mem = sock.skmem
    return SideSample(state=sock.state, send_q=sock.send_q, recv_q=sock.recv_q,
                      snd_wnd=_int(sock.info.get("snd_wnd")),
                      wmem_queued=mem.get("w"), sndbuf=mem.get("tb"),
                      rmem_alloc=mem.get("r"), rcvbuf=mem.get("rb"),
                      timer=sock.timer[0] if sock.timer else None,
                      backoff=_int(sock.info.get("backoff")),
                      notsent=_int(sock.info.get("notsent")))


def read_rss(pid: int) -> int | None:
    """VmRSS of a process in bytes, None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class Sampler:
    """Samples `ss` for the connection writer<->reader until stopped."""

    def __init__(self, port: int, writer: str, reader: str, interval: float,
                 app_buffer: Callable[[], int | None], pid: int | None) -> None:
        self.port, self.writer, self.reader = port, writer, reader
        self.interval = interval
        self.app_buffer = app_buffer
        self.pid = pid
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ss-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def sample_once(self) -> Sample:
        before = time.time()
        lines = ss.run_ss([self.port], memory=True)
        t = (before + time.time()) / 2
        return Sample(t=t,
                      writer=side_sample(ss.find_socket(lines, self.writer, self.reader)),
                      reader=side_sample(ss.find_socket(lines, self.reader, self.writer)),
                      app_buffer=self.app_buffer(),
                      rss=read_rss(self.pid) if self.pid else None)

    def _run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                self.samples.append(self.sample_once())
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay < 0:                 # ss was slow: skip the missed slots
                    next_at = time.monotonic()
                    delay = 0
                self._stop.wait(delay)
        except BaseException as e:            # reported by the scenario, not swallowed
            self.error = e
