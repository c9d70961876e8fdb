"""Verdict and explanation from recorded live runs (tests/data/backpressure), pure."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from tcptrace.backpressure.analysis import analyse, fill_omitted_snd_wnd, step_value
from tcptrace.backpressure.result import BackpressureOptions, Sample, SideSample
from tcptrace.backpressure.stream import chunk_sizes, make_chunk, stream_digest
from tcptrace.errors import TcptraceError
from tcptrace.render.backpressure_json import backpressure_json, raw_from_json

DATA = Path(__file__).parent / "data" / "backpressure"


def load(name):
    return raw_from_json(json.loads((DATA / f"{name}.json").read_text()))


# What each recording gives, as recorded (by the wire analysis before it read the engine's
# tags, and since): the wire events in frame order, the verdict and the wire summary.
EARLY = [("window_full", 11), ("zero_window", 12), ("window_probe", 13), ("zero_window", 14),
         ("window_probe", 15), ("window_update", 16), ("data_resumed", 17),
         ("window_full", 18), ("zero_window", 19), ("window_update", 20),
         ("data_resumed", 21), ("window_full", 22)]
LINUX_PROBES = {"0-byte ACK at SND.UNA-1 (Linux)": 2}
EXPECTED = {
    "python-pause1.5": {
        "wire_events": EARLY + [("window_full", 105), ("window_full", 110),
                                ("window_full", 120), ("window_full", 125)],
        "verdict": dict(bytes_written=8388608, bytes_delivered=8388608, digest_match=True,
                        zero_windows=3, window_probes=2, write_false=1, drains=1,
                        peak_app_buffer=87040, peak_rss=22462464, kernel_probes=2,
                        probes_match_kernel=True, high_water_mark=65536,
                        peak_send_q=3877915, peak_recv_q=220213, first_zero_window=0.260971,
                        first_write_false=0.013244, first_drain_after_resume=1.502542,
                        rss_start=22396928, problems=[]),
        "wire": dict(segments=250, data_segments=175, bytes_on_wire=8388608, zero_windows=3,
                     zero_window_episodes=2, window_probes=2, probes_answered=1,
                     probe_forms=LINUX_PROBES, window_updates=2, window_full=7,
                     reader_wscale=10, writer_wscale=10, max_window=305152),
    },
    "node-ignore-pause1.5": {
        "wire_events": EARLY + [("window_full", 25), ("window_full", 149)],
        "verdict": dict(bytes_written=8388608, bytes_delivered=8388608, digest_match=True,
                        zero_windows=3, window_probes=2, write_false=1, drains=1,
                        peak_app_buffer=4521984, peak_rss=59150336, kernel_probes=2,
                        probes_match_kernel=True, high_water_mark=16384,
                        peak_send_q=3877915, peak_recv_q=1795954, first_zero_window=0.257688,
                        first_write_false=0.030237, first_drain_after_resume=1.505867,
                        rss_start=46977024, problems=[]),
        "wire": dict(segments=187, data_segments=155, bytes_on_wire=8388608, zero_windows=3,
                     zero_window_episodes=2, window_probes=2, probes_answered=1,
                     probe_forms=LINUX_PROBES, window_updates=2, window_full=5,
                     reader_wscale=10, writer_wscale=10, max_window=1377280),
    },
}


@pytest.fixture(params=sorted(EXPECTED))
def recorded(request):
    raw, segments = load(request.param)
    return raw, segments, analyse(raw, segments), EXPECTED[request.param]


def test_wire_events_verdict_and_summary_are_the_recorded_ones(recorded):
    _, _, result, expected = recorded
    wire_events = [(e.kind, e.frame) for e in result.events if e.source == "wire"]
    assert wire_events == expected["wire_events"]
    verdict = asdict(result.verdict)
    assert {k: verdict[k] for k in expected["verdict"]} == expected["verdict"]
    assert asdict(result.wire) == expected["wire"]
    # the kernel counted the same: probes sent, and windows closed
    counters = recorded[0].kernel["counters"]
    assert (counters["TCPWinProbe"], counters["TCPToZeroWindowAdv"]) == (2, 2)


def test_the_explanation_of_a_recording():
    raw, segments = load("python-pause1.5")
    assert analyse(raw, segments).verdict.findings == [
        "Reader: stopped reading at +0.000 s for 1.5 s (SO_RCVBUF 128.0 KiB).",
        "Receive queue: 125.5 KiB unread during the pause; at +0.261 s the reader advertised "
        "a zero window (frame 12): 3 zero-window segments in 2 episode(s).",
        "Send queue: the writer's kernel queue held 3.70 MiB during the pause (SO_SNDBUF "
        "4.00 MiB, autotuned).",
        "Application buffer (asyncio): at +0.013 s pause_writing(): drain() blocks with "
        "85.0 KiB queued (high-water mark 64.0 KiB), before the zero window: the send queue "
        "was full while the reader's window still had 14.5 KiB unused; the writer filled it "
        "at +0.261 s (frame 11).",
        "Wire: the writer's persist timer sent 2 zero-window probes (2 x 0-byte ACK at "
        "SND.UNA-1 (Linux); Wireshark calls them TCP Keep-Alive); the kernel counted 2 "
        "(TcpExtTCPWinProbe, this run's private network namespace); gaps 436 ms "
        "(exponential backoff); 1 answered with window 0.",
        "Wire: 1 probe(s) got no reply: the reader rate-limits replies to out-of-window "
        "segments (net.ipv4.tcp_invalid_ratelimit = 500 ms; TcpExtTCPACKSkippedSeq +1).",
        "Recovery: the reader resumed at +1.501 s, its window update reopened the window at "
        "+1.501 s, data flowed again at +1.501 s, the writer got 'resume_writing()' at "
        "+1.503 s.",
        "The writer respected backpressure: its application buffer stayed at or below "
        "85.0 KiB.",
        "Integrity: 8,388,608 of 8,388,608 bytes delivered, sha256 matches.",
    ]


def test_done_when_invariants_hold_on_the_recordings(recorded):
    _, _, result, _ = recorded
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
    kept = analyse(*load("python-pause1.5")).verdict
    ignored = analyse(*load("node-ignore-pause1.5")).verdict
    assert (kept.peak_app_buffer, kept.high_water_mark) == (87040, 65536)
    assert (ignored.peak_app_buffer, ignored.high_water_mark) == (4521984, 16384)
    assert ignored.findings[-2] == (
        "--ignore-backpressure: the writer kept writing; its application buffer reached "
        "4.31 MiB, 276 x the high-water mark; the writer's RSS grew from 44.80 MiB to "
        "56.41 MiB.")


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
