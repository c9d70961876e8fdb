"""From what a run recorded to what it means (pure): samples + events + segments -> verdict
and a short explanation of what happened in which layer."""

from __future__ import annotations

import bisect

from tcptrace.backpressure.result import (DRAIN, RESUME, WINDOW_PROBE, WINDOW_UPDATE,
                                          WRITE_FALSE, ZERO_WINDOW, BackpressureResult, Event,
                                          Sample, Verdict)
from tcptrace.backpressure.wire import WireAnalysis, classify
from tcptrace.model import Segment


def _first(events: list[Event], kind: str, after: float = float("-inf")) -> Event | None:
    return next((e for e in events if e.kind == kind and e.t >= after), None)


def fill_omitted_snd_wnd(samples: list[Sample]) -> None:
    """`ss` prints snd_wnd only when it is not 0: where a side has shown it once, a missing
    value in another sample of an established socket means 0."""
    for side in ("writer", "reader"):
        socks = [getattr(s, side) for s in samples if getattr(s, side) is not None]
        if any(x.snd_wnd is not None for x in socks):
            for x in socks:
                if x.snd_wnd is None and x.state == "ESTABLISHED":
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
    rel = (lambda e: round(e.t - t0, 6) if e else None)
    verdict = Verdict(
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


def explain(raw, wire: WireAnalysis, events: list[Event], v: Verdict, t0: float) -> list[str]:
    """The story of the run, layer by layer, each sentence backed by a recorded fact."""
    opts, out = raw.options, []
    at = (lambda t: f"+{t - t0:.3f} s")
    runtime = "Node.js" if opts.runtime == "node" else "asyncio"
    pause = _first(events, "pause")
    resume = _first(events, RESUME)
    zero = _first(events, ZERO_WINDOW)
    rcvbuf = raw.reader.get("rcvbuf")
    if pause:
        out.append(f"Reader: stopped reading at {at(pause.t)} for {opts.pause:g} s "
                   f"(SO_RCVBUF {mib(rcvbuf)}{', set by --rcvbuf' if opts.rcvbuf else ''}).")
    paused = [s for s in raw.samples if pause and resume and pause.t <= s.t <= resume.t]
    if zero:
        held = max((s.reader.recv_q for s in paused if s.reader), default=v.peak_recv_q)
        out.append(f"Receive queue: {mib(held)} unread during the pause; at {at(zero.t)} the "
                   f"reader advertised a zero window (frame {zero.frame}): "
                   f"{wire.summary.zero_windows} zero-window segments in "
                   f"{wire.summary.zero_window_episodes} episode(s).")
    sndbuf = max((s.writer.sndbuf or 0 for s in raw.samples if s.writer), default=0)
    held = max((s.writer.send_q for s in paused if s.writer), default=v.peak_send_q)
    out.append(f"Send queue: the writer's kernel queue held {mib(held)} during the pause "
               f"(SO_SNDBUF {mib(sndbuf)}{', set by --sndbuf' if opts.sndbuf else ', autotuned'}).")
    false = _first(events, WRITE_FALSE)
    if false:
        what = ("socket.write() returned false" if opts.runtime == "node"
                else "pause_writing(): drain() blocks")
        order = ""
        if zero and false.t < zero.t:
            left = (step_value(wire.window, false.t) or 0) - \
                (step_value(wire.in_flight, false.t) or 0)
            full = _first(events, "window_full", false.t)
            order = (f", before the zero window: the send queue was full while the reader's "
                     f"window still had {mib(max(left, 0))} unused")
            if full and full.t <= zero.t:
                order += f"; the writer filled it at {at(full.t)} (frame {full.frame})"
        elif zero:
            order = ", after the zero window"
        out.append(f"Application buffer ({runtime}): at {at(false.t)} {what} with "
                   f"{mib(false.app_buffer)} queued (high-water mark {mib(v.high_water_mark)})"
                   f"{order}.")
    if v.window_probes:
        probes = [e for e in events if e.kind == WINDOW_PROBE]
        gaps = ", ".join(f"{(b.t - a.t) * 1000:.0f}" for a, b in zip(probes, probes[1:]))
        kernel = ""
        if v.kernel_probes is not None:
            where = ("this run's private network namespace" if raw.kernel.get("netns") ==
                     "private" else "the whole machine (other traffic can add to it)")
            kernel = (f"; the kernel counted {v.kernel_probes} (TcpExtTCPWinProbe, "
                      f"{where})")
        out.append(f"Wire: the writer's persist timer sent {v.window_probes} zero-window "
                   f"probes ({', '.join(f'{n} x {k}' for k, n in wire.summary.probe_forms.items())}"
                   f"; Wireshark calls them TCP Keep-Alive){kernel}; "
                   + (f"gaps {gaps} ms (exponential backoff); " if gaps else "")
                   + f"{wire.summary.probes_answered} answered with window 0.")
        unanswered = v.window_probes - wire.summary.probes_answered
        if unanswered > 0:
            rl = raw.kernel.get("sysctl", {}).get("net.ipv4.tcp_invalid_ratelimit")
            skipped = raw.kernel.get("counters", {}).get("TCPACKSkippedSeq")
            out.append(f"Wire: {unanswered} probe(s) got no reply: the reader rate-limits "
                       f"replies to out-of-window segments (net.ipv4.tcp_invalid_ratelimit "
                       f"= {rl} ms; TcpExtTCPACKSkippedSeq +{skipped}).")
    if resume:
        update = _first(events, WINDOW_UPDATE, resume.t)
        resumed = _first(events, "data_resumed", resume.t)
        drain = _first(events, DRAIN, resume.t)
        parts = [f"the reader resumed at {at(resume.t)}"]
        if update:
            parts.append(f"its window update reopened the window at {at(update.t)}")
        if resumed:
            parts.append(f"data flowed again at {at(resumed.t)}")
        if drain:
            parts.append(f"the writer got '{'drain' if opts.runtime == 'node' else 'resume_writing()'}' "
                         f"at {at(drain.t)}")
        out.append("Recovery: " + ", ".join(parts) + ".")
    if opts.ignore_backpressure:
        grow = (f"; the writer's RSS grew from {mib(v.rss_start)} to {mib(v.peak_rss)}"
                if v.rss_start and v.peak_rss else "")
        ratio = (f", {v.peak_app_buffer / v.high_water_mark:.0f} x the high-water mark"
                 if v.high_water_mark else "")
        out.append(f"--ignore-backpressure: the writer kept writing; its application buffer "
                   f"reached {mib(v.peak_app_buffer)}{ratio}{grow}.")
    else:
        out.append(f"The writer respected backpressure: its application buffer stayed at or "
                   f"below {mib(v.peak_app_buffer)}.")
    out.append(f"Integrity: {v.bytes_delivered:,} of {v.bytes_written:,} bytes delivered, "
               f"sha256 {'matches' if v.digest_match else 'DOES NOT match'}.")
    return out


def problems(raw, wire: WireAnalysis, events: list[Event], v: Verdict, resume) -> list[str]:
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
