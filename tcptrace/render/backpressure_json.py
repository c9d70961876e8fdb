"""tcptrace/1 JSON for `backpressure` (pure), and the recorded-run format the tests replay.

`backpressure_json(result)`: {"schema", "command", "scenario", "samples", "events",
"wire", "kernel", "verdict"}; times are seconds since `scenario.t0` (epoch seconds).
`raw_json` / `raw_from_json`: one live run's recording (samples, events, reader and writer
reports, kernel counters and the decoded segments), replayable through `analyse`.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from tcptrace.backpressure.result import (
    BackpressureOptions,
    BackpressureResult,
    Event,
    Sample,
    SideSample,
)
from tcptrace.model import Segment

SCHEMA = "tcptrace/1"


def _r(t: float, t0: float) -> float:
    return round(t - t0, 6)


def _writer_side(s: Sample) -> dict | None:
    w, r = s.writer, s.reader
    if w is None:
        return None
    return {"state": w.state, "send_q": w.send_q, "recv_q": w.recv_q,
            "advertised_window": r.snd_wnd if r else None,   # what the reader sees of ours
            "peer_window": w.snd_wnd, "app_buffer": s.app_buffer,
            "wmem_queued": w.wmem_queued, "sndbuf": w.sndbuf, "notsent": w.notsent,
            "timer": w.timer, "backoff": w.backoff, "rss": s.rss}


def _reader_side(s: Sample, window_wire: int | None) -> dict | None:
    w, r = s.writer, s.reader
    if r is None:
        return None
    return {"state": r.state, "send_q": r.send_q, "recv_q": r.recv_q,
            "advertised_window": w.snd_wnd if w else None,   # the writer's snd_wnd (ss)
            "advertised_window_wire": window_wire, "app_buffer": None,
            "rmem_alloc": r.rmem_alloc, "rcvbuf": r.rcvbuf, "timer": r.timer}


def scenario_json(result: BackpressureResult) -> dict:
    o = result.options
    connected = result.app.get("connected", {})
    return {"runtime": o.runtime, "runtime_version": result.app.get("hello", {}).get("version"),
            "bytes": o.bytes, "pause": o.pause, "sndbuf": o.sndbuf, "rcvbuf": o.rcvbuf,
            "ignore_backpressure": o.ignore_backpressure, "interval": o.interval,
            "netns": result.kernel.get("netns"), "t0": result.t0,
            "writer": result.writer_endpoint, "reader": result.reader_endpoint,
            "high_water_mark": connected.get("high_water_mark"),
            "writer_sndbuf": connected.get("sndbuf"), "reader_rcvbuf": result.reader.get("rcvbuf")}


def event_json(e: Event, t0: float) -> dict:
    out = {"t": _r(e.t, t0), "kind": e.kind, "side": e.side, "source": e.source,
           "detail": e.detail}
    for key in ("app_buffer", "frame", "wireshark"):
        if getattr(e, key) is not None:
            out[key] = getattr(e, key)
    return out


def backpressure_json(result: BackpressureResult) -> dict:
    from tcptrace.backpressure.analysis import step_value

    t0 = result.t0
    samples = [{"t": _r(s.t, t0), "writer": _writer_side(s),
                "reader": _reader_side(s, step_value(result.window_series, s.t))}
               for s in result.samples]
    verdict = asdict(result.verdict)
    return {"schema": SCHEMA, "command": "backpressure", "scenario": scenario_json(result),
            "samples": samples, "events": [event_json(e, t0) for e in result.events],
            "wire": asdict(result.wire),
            "kernel": result.kernel,
            "verdict": verdict}


# --- recordings ---------------------------------------------------------------------------

def raw_json(raw, segments: list[Segment]) -> dict:
    opts = asdict(raw.options)
    opts["seed"] = raw.options.seed.decode()
    return {"schema": SCHEMA, "command": "backpressure-recording", "options": opts,
            "reader_endpoint": raw.reader_endpoint, "writer_endpoint": raw.writer_endpoint,
            "capture_drops": raw.capture_drops, "expected_digest": raw.expected_digest,
            "samples": [asdict(s) for s in raw.samples],
            "app_events": [asdict(e) for e in raw.app_events],
            "reader_events": [asdict(e) for e in raw.reader_events],
            "app": raw.app, "reader": raw.reader, "kernel": raw.kernel,
            "segments": [{f.name: getattr(s, f.name) for f in fields(Segment)} for s in segments]}


def raw_from_json(doc: dict):
    from tcptrace.backpressure.scenario import RawRun

    opts = dict(doc["options"])
    opts["seed"] = opts["seed"].encode()

    def side(d: dict | None) -> SideSample | None:
        return SideSample(**d) if d else None

    raw = RawRun(options=BackpressureOptions(**opts),
                 reader_endpoint=doc["reader_endpoint"], writer_endpoint=doc["writer_endpoint"],
                 capture_drops=doc["capture_drops"], expected_digest=doc["expected_digest"],
                 samples=[Sample(t=s["t"], writer=side(s["writer"]), reader=side(s["reader"]),
                                 app_buffer=s["app_buffer"], rss=s["rss"])
                          for s in doc["samples"]],
                 app_events=[Event(**e) for e in doc["app_events"]],
                 reader_events=[Event(**e) for e in doc["reader_events"]],
                 app=doc["app"], reader=doc["reader"], kernel=doc["kernel"])
    segments = [Segment(**{**s, "vlan": tuple(s["vlan"]), "comments": tuple(s["comments"])})
                for s in doc["segments"]]
    return raw, segments
