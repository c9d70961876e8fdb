"""The plain data of a backpressure run: options, samples, events, wire facts and verdict.

Times are seconds since the epoch (the capture's clock) everywhere inside; JSON and the
chart show them relative to `BackpressureResult.t0`. Nothing here does I/O.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from tcptrace.backpressure.stream import DEFAULT_SEED
from tcptrace.errors import TcptraceError

RUNTIMES = ("python", "node")

# Event kinds. The first seven are the tcptrace/1 contract of issue 5; the others are
# wire facts the explanation and the chart also use.
WRITE_FALSE, DRAIN, ZERO_WINDOW, WINDOW_PROBE, WINDOW_UPDATE, PAUSE, RESUME = (
    "write_false", "drain", "zero_window", "window_probe", "window_update", "pause", "resume")
WINDOW_FULL, DATA_RESUMED = "window_full", "data_resumed"
EVENT_KINDS = (WRITE_FALSE, DRAIN, ZERO_WINDOW, WINDOW_PROBE, WINDOW_UPDATE, PAUSE, RESUME,
               WINDOW_FULL, DATA_RESUMED)


@dataclass(slots=True)
class BackpressureOptions:
    runtime: str = "python"
    bytes: int = 8 << 20
    pause: float = 3.0
    sndbuf: int | None = None
    rcvbuf: int | None = None
    ignore_backpressure: bool = False
    interval: float = 0.025       # ss sampling period, seconds
    netns: str = "auto"           # auto | private | host
    seed: builtins.bytes = DEFAULT_SEED     # `bytes` is the field above here
    timeout: float = 60.0         # give up on the whole run after this long

    def validate(self) -> None:
        if self.runtime not in RUNTIMES:
            raise TcptraceError(f"--runtime must be one of {', '.join(RUNTIMES)}, "
                                f"not {self.runtime!r}")
        if not 1 <= self.bytes <= 1 << 31:
            raise TcptraceError(f"--bytes must be between 1 and {1 << 31}, not {self.bytes}")
        if not 0 <= self.pause <= 600:
            raise TcptraceError(f"--pause must be between 0 and 600 seconds, not {self.pause}")
        for name, value in (("--sndbuf", self.sndbuf), ("--rcvbuf", self.rcvbuf)):
            if value is not None and not 1 <= value <= 1 << 30:
                raise TcptraceError(f"{name} must be between 1 and {1 << 30} bytes, not {value}")
        if not 0.005 <= self.interval <= 1.0:
            raise TcptraceError(f"--interval must be between 0.005 and 1 s, not {self.interval}")
        if self.netns not in ("auto", "private", "host"):
            raise TcptraceError(f"--netns must be auto, private or host, not {self.netns!r}")


@dataclass(slots=True)
class SideSample:
    """One socket as `ss -tmi` showed it (None: the socket was not there)."""

    state: str
    send_q: int
    recv_q: int
    snd_wnd: int | None         # the peer's advertised window, as this side last saw it
    wmem_queued: int | None     # skmem w
    sndbuf: int | None          # skmem tb
    rmem_alloc: int | None      # skmem r
    rcvbuf: int | None          # skmem rb
    timer: str | None           # persist, on, keepalive, ...
    backoff: int | None = None
    notsent: int | None = None


@dataclass(slots=True)
class Sample:
    t: float
    writer: SideSample | None
    reader: SideSample | None
    app_buffer: int | None      # bytes queued in the writer's runtime, latest report
    rss: int | None             # writer process resident set, bytes


@dataclass(slots=True)
class Event:
    t: float
    kind: str                   # one of EVENT_KINDS
    side: str                   # writer | reader
    source: str                 # app | wire
    detail: str = ""
    app_buffer: int | None = None
    frame: int | None = None    # capture record number, for wire events
    wireshark: str | None = None  # what Wireshark calls this segment, when it differs


@dataclass(slots=True)
class WireSummary:
    segments: int = 0
    data_segments: int = 0
    bytes_on_wire: int = 0          # writer's payload bytes, retransmissions excluded
    zero_windows: int = 0           # segments from the reader advertising window 0
    zero_window_episodes: int = 0   # times the window went from open to 0
    window_probes: int = 0
    probes_answered: int = 0
    probe_forms: dict[str, int] = field(default_factory=dict)  # "snd_una-1, 0 bytes": n
    window_updates: int = 0
    window_full: int = 0
    reader_wscale: int = 0
    writer_wscale: int = 0
    max_window: int = 0


@dataclass(slots=True)
class BackpressureVerdict:
    """What a backpressure run shows (not model.Verdict, which says how a connection ended)."""

    bytes_written: int
    bytes_delivered: int
    digest_match: bool
    zero_windows: int
    window_probes: int
    write_false: int
    drains: int
    peak_app_buffer: int
    peak_rss: int | None
    kernel_probes: int | None = None        # TcpExtTCPWinProbe delta for the run
    probes_match_kernel: bool | None = None
    high_water_mark: int | None = None
    peak_send_q: int = 0
    peak_recv_q: int = 0
    first_zero_window: float | None = None  # relative seconds
    first_write_false: float | None = None
    first_drain_after_resume: float | None = None
    rss_start: int | None = None
    findings: list[str] = field(default_factory=list)   # the short explanation, in order
    problems: list[str] = field(default_factory=list)   # what did not go as expected




@dataclass
class BackpressureResult:
    options: BackpressureOptions
    t0: float                       # the writer's connect(), seconds since the epoch
    writer_endpoint: str
    reader_endpoint: str
    samples: list[Sample]
    events: list[Event]
    wire: WireSummary
    verdict: BackpressureVerdict
    app: dict                       # what the runtime reported (hwm, bytes, digest, version)
    reader: dict                    # bytes read, digest, pause/resume times
    kernel: dict                    # nstat deltas, netns used, effective sysctls
    window_series: list[tuple[float, int]] = field(default_factory=list)  # reader's window
    frame_notes: dict[int, list[str]] = field(default_factory=dict)
    frames: list[tuple[float, bytes]] = field(default_factory=list, repr=False)
    capture_drops: int = 0
