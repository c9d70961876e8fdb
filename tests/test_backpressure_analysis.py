"""Verdict and explanation from recorded live runs (tests/data/backpressure), pure."""

import json
from pathlib import Path

import pytest

from tcptrace.backpressure.analysis import analyse, fill_omitted_snd_wnd, step_value
from tcptrace.backpressure.jsonout import backpressure_json, raw_from_json
from tcptrace.backpressure.result import BackpressureOptions, Sample, SideSample
from tcptrace.backpressure.stream import chunk_sizes, make_chunk, stream_digest
from tcptrace.errors import TcptraceError

DATA = Path(__file__).parent / "data" / "backpressure"


def load(name):
    return raw_from_json(json.loads((DATA / f"{name}.json").read_text()))


@pytest.fixture(params=["python-pause1.5", "node-ignore-pause1.5"])
def recorded(request):
    raw, segments = load(request.param)
    return raw, segments, analyse(raw, segments)


def test_verdict_counts_come_from_the_recording(recorded):
    raw, segments, result = recorded
    v = result.verdict
    assert v.bytes_written == raw.app["done"]["bytes"] == raw.options.bytes
    assert v.bytes_delivered == raw.reader["bytes"]
    assert v.digest_match == (raw.app["done"]["digest"] == raw.reader["digest"]
                              == raw.expected_digest)
    assert v.write_false == sum(e.kind == "write_false" for e in raw.app_events)
    assert v.drains == sum(e.kind == "drain" for e in raw.app_events)
    assert v.kernel_probes == raw.kernel["counters"]["TCPWinProbe"]
    assert v.probes_match_kernel is (v.window_probes == v.kernel_probes)
    assert v.peak_app_buffer == max([s.app_buffer or 0 for s in raw.samples]
                                    + [e.app_buffer or 0 for e in raw.app_events])
    assert result.wire.zero_window_episodes == raw.kernel["counters"]["TCPToZeroWindowAdv"]


def test_done_when_invariants_hold_on_the_recordings(recorded):
    raw, _, result = recorded
    v = result.verdict
    assert v.zero_windows >= 1 and v.window_probes >= 1 and v.write_false >= 1
    assert v.first_write_false < v.first_zero_window          # as measured on this machine
    resume = next(e for e in result.events if e.kind == "resume")
    assert v.first_drain_after_resume is not None
    assert v.first_drain_after_resume >= resume.t - result.t0
    assert v.bytes_delivered == v.bytes_written and v.digest_match
    assert v.problems == []
    probes = [e for e in result.events if e.kind == "window_probe"]
    pause = next(e for e in result.events if e.kind == "pause")
    assert all(pause.t < p.t < resume.t for p in probes)


def test_ignoring_backpressure_grows_the_application_buffer():
    _, _, kept = (lambda r: (*r, analyse(*r)))(load("python-pause1.5"))
    _, _, ignored = (lambda r: (*r, analyse(*r)))(load("node-ignore-pause1.5"))
    assert kept.verdict.peak_app_buffer <= 2 * kept.verdict.high_water_mark
    assert ignored.verdict.peak_app_buffer > 50 * ignored.verdict.high_water_mark
    assert any("--ignore-backpressure" in f for f in ignored.verdict.findings)
    assert ignored.verdict.peak_rss > ignored.verdict.rss_start


def test_findings_name_each_layer(recorded):
    findings = " ".join(recorded[2].verdict.findings)
    for word in ("Reader:", "Receive queue:", "Send queue:", "Application buffer",
                 "Wire:", "Recovery:", "Integrity:", "Keep-Alive", "TcpExtTCPWinProbe"):
        assert word in findings


def test_json_document_shape(recorded):
    doc = json.loads(json.dumps(backpressure_json(recorded[2])))
    assert doc["schema"] == "tcptrace/1" and doc["command"] == "backpressure"
    assert set(doc["scenario"]) >= {"runtime", "bytes", "pause", "sndbuf", "rcvbuf",
                                    "ignore_backpressure"}
    assert set(doc["verdict"]) >= {"bytes_written", "bytes_delivered", "digest_match",
                                   "zero_windows", "window_probes", "write_false", "drains",
                                   "peak_app_buffer", "peak_rss"}
    sample = next(s for s in doc["samples"] if s["writer"] and s["reader"])
    for side in ("writer", "reader"):
        assert {"send_q", "recv_q", "advertised_window", "app_buffer"} <= set(sample[side])
    kinds = {e["kind"] for e in doc["events"]}
    assert {"write_false", "drain", "zero_window", "window_probe", "window_update", "pause",
            "resume"} <= kinds
    assert all(e["t"] >= 0 for e in doc["events"])


def test_problems_are_reported_when_nothing_filled():
    raw, segments = load("python-pause1.5")
    raw.app_events = [e for e in raw.app_events if e.kind != "write_false"]
    result = analyse(raw, [s for s in segments if s.win != 0])
    assert any("no zero window" in p for p in result.verdict.problems)
    assert any("no write_false" in p for p in result.verdict.problems)


def test_ss_omits_snd_wnd_when_it_is_zero():
    def side(wnd):
        return SideSample("ESTABLISHED", 0, 0, wnd, None, None, None, None, None)
    samples = [Sample(0.0, side(65536), None, None, None), Sample(1.0, side(None), None, None,
                                                                   None)]
    fill_omitted_snd_wnd(samples)
    assert samples[1].writer.snd_wnd == 0
    assert step_value([(0.0, 5), (1.0, 0)], 0.5) == 5 and step_value([(1.0, 0)], 0.5) is None


def test_stream_chunks_are_deterministic_and_distinct():
    assert list(chunk_sizes(150_000, 65536)) == [(0, 65536), (1, 65536), (2, 18928)]
    assert make_chunk(b"s", 0, 16) != make_chunk(b"s", 1, 16)
    assert stream_digest(b"s", 100) == stream_digest(b"s", 100) != stream_digest(b"t", 100)


@pytest.mark.parametrize("field,value", [("runtime", "ruby"), ("bytes", 0), ("pause", -1),
                                         ("sndbuf", 0), ("rcvbuf", 1 << 31),
                                         ("interval", 0), ("netns", "other")])
def test_bad_options_are_one_line_errors(field, value):
    with pytest.raises(TcptraceError) as err:
        BackpressureOptions(**{field: value}).validate()
    assert "\n" not in str(err.value)


def test_reader_and_writer_errors_are_problems():
    raw, segments = load("python-pause1.5")
    raw.reader["error"] = "TimeoutError: timed out"
    raw.app["error"] = {"message": "ECONNRESET read ECONNRESET"}
    problems = analyse(raw, segments).verdict.problems
    assert "reader: TimeoutError: timed out" in problems
    assert "writer: ECONNRESET read ECONNRESET" in problems
