"""From what a run recorded to what it means (pure): samples + events + segments -> verdict
and a short explanation of what happened in which layer."""

from __future__ import annotations

import bisect

from tcptrace.backpressure.result import (
    DRAIN,
    RESUME,
    WINDOW_PROBE,
    WINDOW_UPDATE,
    WRITE_FALSE,
    ZERO_WINDOW,
    BackpressureResult,
    BackpressureVerdict,
    Event,
    Sample,
)
from tcptrace.backpressure.wire import WIRESHARK_LABEL, WireAnalysis, classify
from tcptrace.model import Segment, TcpState


def _first(events: list[Event], kind: str, after: float = float("-inf")) -> Event | None:
    return next((e for e in events if e.kind == kind and e.t >= after), None)


def fill_omitted_snd_wnd(samples: list[Sample]) -> None:
    """`ss` prints snd_wnd only when it is not 0: where a side has shown it once, a missing
    value in another sample of an established socket means 0."""
    for side in ("writer", "reader"):
        socks = [getattr(s, side) for s in samples if getattr(s, side) is not None]
        if any(x.snd_wnd is not None for x in socks):
            for x in socks:
                if x.snd_wnd is None and x.state == TcpState.ESTABLISHED:
                    x.snd_wnd = 0


def step_value(series: list[tuple[float, int]], t: float) -> int | None:
    """The value of a step series (sorted by time) at time t."""
    i = bisect.bisect_right([p[0] for p in series], t)
    return series[i - 1][1] if i else None


def mib(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / (1 << 20):.2f} MiB" if n >= 1 << 20 else (
        f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B")


def analyse(raw, segments: list[Segment]) -> BackpressureResult:
    """`raw` is a `scenario.RawRun` (or anything with the same fields)."""
    opts = raw.options
    wire = classify(segments, raw.writer_endpoint, raw.reader_endpoint)
    fill_omitted_snd_wnd(raw.samples)
    events = sorted(raw.app_events + raw.reader_events + wire.events, key=lambda e: e.t)
    starts = [segments[0].t] if segments else []
    starts += [e.t for e in events[:1]] + [s.t for s in raw.samples[:1]]
    t0 = min(starts) if starts else 0.0

    app, reader = raw.app, raw.reader
    done = app.get("done", {})
    written = done.get("bytes", app.get("written", {}).get("bytes", 0))
    delivered = reader.get("bytes", 0)
    digest_match = bool(done.get("digest")) and done.get("digest") == reader.get("digest") \
        == raw.expected_digest
    buffers = [e.app_buffer for e in raw.app_events if e.app_buffer is not None]
    buffers += [s.app_buffer for s in raw.samples if s.app_buffer is not None]
    rss = [s.rss for s in raw.samples if s.rss]
    counters = raw.kernel.get("counters", {})
    kernel_probes = counters.get("TCPWinProbe")
    hwm = app.get("connected", {}).get("high_water_mark")

    resume = _first(events, RESUME)
    first_zero = _first(events, ZERO_WINDOW)
    first_false = _first(events, WRITE_FALSE)
    drain_after = _first(events, DRAIN, resume.t) if resume else None

    def rel(e: Event | None) -> float | None:
        return round(e.t - t0, 6) if e else None

    verdict = BackpressureVerdict(
        bytes_written=written, bytes_delivered=delivered, digest_match=digest_match,
        zero_windows=wire.summary.zero_windows, window_probes=wire.summary.window_probes,
        write_false=sum(e.kind == WRITE_FALSE for e in raw.app_events),
        drains=sum(e.kind == DRAIN for e in raw.app_events),
        peak_app_buffer=max(buffers, default=0), peak_rss=max(rss, default=None),
        kernel_probes=kernel_probes,
        probes_match_kernel=None if kernel_probes is None
        else kernel_probes == wire.summary.window_probes,
        high_water_mark=hwm,
        peak_send_q=max((s.writer.send_q for s in raw.samples if s.writer), default=0),
        peak_recv_q=max((s.reader.recv_q for s in raw.samples if s.reader), default=0),
        first_zero_window=rel(first_zero), first_write_false=rel(first_false),
        first_drain_after_resume=rel(drain_after), rss_start=rss[0] if rss else None)
    verdict.findings = explain(raw, wire, events, verdict, t0)
    verdict.problems = problems(raw, wire, events, verdict, resume)
    return BackpressureResult(
        options=opts, t0=t0, writer_endpoint=raw.writer_endpoint,
        reader_endpoint=raw.reader_endpoint, samples=raw.samples, events=events,
        wire=wire.summary, verdict=verdict, app=app, reader=reader, kernel=raw.kernel,
        window_series=wire.window, frame_notes=wire.notes, frames=raw.frames,
        capture_drops=raw.capture_drops)


def explain(raw, wire: WireAnalysis, events: list[Event], v: BackpressureVerdict,
            t0: float) -> list[str]:
    """The story of the run, layer by layer, each sentence backed by a recorded fact."""
    story = _Story(raw, wire, events, v, t0)
    return [sentence for part in (story.reader(), story.send_queue(), story.app_buffer(),
                                  story.probes(), story.recovery(), story.app_growth(),
                                  story.integrity())
            for sentence in part]


class _Story:
    """The recorded facts `explain` tells, and one method per layer's sentences."""

    def __init__(self, raw, wire: WireAnalysis, events: list[Event], v: BackpressureVerdict,
                 t0: float):
        self.raw, self.opts, self.wire, self.events, self.v, self.t0 = (
            raw, raw.options, wire, events, v, t0)
        self.pause = _first(events, "pause")
        self.resume = _first(events, RESUME)
        self.zero = _first(events, ZERO_WINDOW)
        self.paused = [s for s in raw.samples if self.pause and self.resume
                       and self.pause.t <= s.t <= self.resume.t]

    def at(self, t: float) -> str:
        return f"+{t - self.t0:.3f} s"

    def reader(self) -> list[str]:
        out, summary = [], self.wire.summary
        if self.pause:
            rcvbuf = self.raw.reader.get("rcvbuf")
            out.append(f"Reader: stopped reading at {self.at(self.pause.t)} for "
                       f"{self.opts.pause:g} s (SO_RCVBUF {mib(rcvbuf)}"
                       f"{', set by --rcvbuf' if self.opts.rcvbuf else ''}).")
        if self.zero:
            held = max((s.reader.recv_q for s in self.paused if s.reader),
                       default=self.v.peak_recv_q)
            out.append(f"Receive queue: {mib(held)} unread during the pause; at "
                       f"{self.at(self.zero.t)} the reader advertised a zero window (frame "
                       f"{self.zero.frame}): {summary.zero_windows} zero-window segments in "
                       f"{summary.zero_window_episodes} episode(s).")
        return out

    def send_queue(self) -> list[str]:
        sndbuf = max((s.writer.sndbuf or 0 for s in self.raw.samples if s.writer), default=0)
        held = max((s.writer.send_q for s in self.paused if s.writer),
                   default=self.v.peak_send_q)
        how = ", set by --sndbuf" if self.opts.sndbuf else ", autotuned"
        return [f"Send queue: the writer's kernel queue held {mib(held)} during the pause "
                f"(SO_SNDBUF {mib(sndbuf)}{how})."]

    def app_buffer(self) -> list[str]:
        false = _first(self.events, WRITE_FALSE)
        if not false:
            return []
        runtime = "Node.js" if self.opts.runtime == "node" else "asyncio"
        what = ("socket.write() returned false" if self.opts.runtime == "node"
                else "pause_writing(): drain() blocks")
        return [f"Application buffer ({runtime}): at {self.at(false.t)} {what} with "
                f"{mib(false.app_buffer)} queued (high-water mark "
                f"{mib(self.v.high_water_mark)}){self.backpressure_order(false)}."]

    def backpressure_order(self, false: Event) -> str:
        """Whether the runtime pushed back before the window closed, and why then."""
        if not self.zero:
            return ""
        if false.t >= self.zero.t:
            return ", after the zero window"
        left = (step_value(self.wire.window, false.t) or 0) - \
            (step_value(self.wire.in_flight, false.t) or 0)
        order = (f", before the zero window: the send queue was full while the reader's "
                 f"window still had {mib(max(left, 0))} unused")
        full = _first(self.events, "window_full", false.t)
        if full and full.t <= self.zero.t:
            order += f"; the writer filled it at {self.at(full.t)} (frame {full.frame})"
        return order

    def probes(self) -> list[str]:
        v, summary = self.v, self.wire.summary
        if not v.window_probes:
            return []
        probes = [e for e in self.events if e.kind == WINDOW_PROBE]
        gaps = ", ".join(f"{(b.t - a.t) * 1000:.0f}"
                         for a, b in zip(probes, probes[1:], strict=False))
        forms = ", ".join(f"{n} x {k}" for k, n in summary.probe_forms.items())
        labels = " and ".join(dict.fromkeys(WIRESHARK_LABEL[k] for k in summary.probe_forms))
        out = [f"Wire: the writer's persist timer sent {v.window_probes} zero-window probes "
               f"({forms}; Wireshark calls them {labels}){self.kernel_count()}; "
               + (f"gaps {gaps} ms (exponential backoff); " if gaps else "")
               + f"{summary.probes_answered} answered with window 0."]
        unanswered = v.window_probes - summary.probes_answered
        if unanswered > 0:
            rl = self.raw.kernel.get("sysctl", {}).get("net.ipv4.tcp_invalid_ratelimit")
            skipped = self.raw.kernel.get("counters", {}).get("TCPACKSkippedSeq")
            out.append(f"Wire: {unanswered} probe(s) got no reply: the reader rate-limits "
                       f"replies to out-of-window segments (net.ipv4.tcp_invalid_ratelimit "
                       f"= {rl} ms; TcpExtTCPACKSkippedSeq +{skipped}).")
        return out

    def kernel_count(self) -> str:
        if self.v.kernel_probes is None:
            return ""
        where = ("this run's private network namespace" if self.raw.kernel.get("netns")
                 == "private" else "the whole machine (other traffic can add to it)")
        return f"; the kernel counted {self.v.kernel_probes} (TcpExtTCPWinProbe, {where})"

    def recovery(self) -> list[str]:
        if not self.resume:
            return []
        after = self.resume.t
        update = _first(self.events, WINDOW_UPDATE, after)
        resumed = _first(self.events, "data_resumed", after)
        drain = _first(self.events, DRAIN, after)
        parts = [f"the reader resumed at {self.at(after)}"]
        if update:
            parts.append(f"its window update reopened the window at {self.at(update.t)}")
        if resumed:
            parts.append(f"data flowed again at {self.at(resumed.t)}")
        if drain:
            name = "drain" if self.opts.runtime == "node" else "resume_writing()"
            parts.append(f"the writer got '{name}' at {self.at(drain.t)}")
        return ["Recovery: " + ", ".join(parts) + "."]

    def app_growth(self) -> list[str]:
        v = self.v
        if not self.opts.ignore_backpressure:
            return [f"The writer respected backpressure: its application buffer stayed at "
                    f"or below {mib(v.peak_app_buffer)}."]
        grow = (f"; the writer's RSS grew from {mib(v.rss_start)} to {mib(v.peak_rss)}"
                if v.rss_start and v.peak_rss else "")
        ratio = (f", {v.peak_app_buffer / v.high_water_mark:.0f} x the high-water mark"
                 if v.high_water_mark else "")
        return [f"--ignore-backpressure: the writer kept writing; its application buffer "
                f"reached {mib(v.peak_app_buffer)}{ratio}{grow}."]

    def integrity(self) -> list[str]:
        v = self.v
        return [f"Integrity: {v.bytes_delivered:,} of {v.bytes_written:,} bytes delivered, "
                f"sha256 {'matches' if v.digest_match else 'DOES NOT match'}."]


def problems(raw, wire: WireAnalysis, events: list[Event], v: BackpressureVerdict,
             resume) -> list[str]:
    out = []
    if not v.zero_windows:
        out.append("no zero window: the reader's buffer never filled (more --bytes, a longer "
                   "--pause or a smaller --rcvbuf)")
    if raw.options.pause >= 0.5 and v.zero_windows and not v.window_probes:
        out.append("no persist probe during the pause")
    if not v.write_false:
        out.append("the runtime never signalled backpressure (no write_false)")
    if resume and v.write_false and not _first(events, DRAIN, resume.t):
        out.append("no drain after the reader resumed")
    if v.bytes_delivered != v.bytes_written or not v.digest_match:
        out.append(f"data integrity: {v.bytes_delivered} delivered of {v.bytes_written}, "
                   f"digest {'matches' if v.digest_match else 'mismatch'}")
    if v.probes_match_kernel is False:
        out.append(f"probe count {v.window_probes} differs from the kernel's "
                   f"TcpExtTCPWinProbe {v.kernel_probes}")
    if raw.capture_drops:
        out.append(f"the capture dropped {raw.capture_drops} frames: wire counts are low")
    if "error" in raw.reader:
        out.append(f"reader: {raw.reader['error']}")
    if "error" in raw.app:
        out.append(f"writer: {raw.app['error'].get('message')}")
    return out
