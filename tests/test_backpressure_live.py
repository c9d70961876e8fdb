"""Real backpressure runs on loopback: the issue's "done when" invariants, both runtimes."""

import os
import shutil
import time

import pytest

from tcptrace.backpressure import BackpressureOptions, backpressure_json, run_backpressure, scenario
from tcptrace.errors import TcptraceError

from conftest import require

pytestmark = pytest.mark.live

PAUSE = 1.2     # the persist timer probes at about +0.2 s, +0.6 s, +1.4 s... of the stall


def need_root():
    require(None if os.geteuid() == 0 else
            "needs root: capture on lo and a private network namespace")


def need_node():
    require(None if shutil.which("node") else "node is not installed")


def run(**kw):
    need_root()
    if kw.get("runtime") == "node":
        need_node()
    return run_backpressure(BackpressureOptions(**{"pause": PAUSE, **kw}))


@pytest.fixture(scope="module", params=["python", "node"])
def default_run(request):
    return run(runtime=request.param)


def test_default_run_meets_the_done_when_invariants(default_run):
    r = default_run
    v = r.verdict
    assert r.kernel["netns"] == "private"
    assert v.problems == [], v.problems
    assert v.zero_windows >= 1
    assert v.window_probes >= 2
    assert v.write_false >= 1 and v.first_write_false < v.first_zero_window
    resume = next(e for e in r.events if e.kind == "resume")
    assert v.first_drain_after_resume is not None
    assert v.first_drain_after_resume + r.t0 >= resume.t
    assert v.bytes_delivered == v.bytes_written == r.options.bytes and v.digest_match
    # the probes we classify are the ones the kernel counted, in this run's own netns
    assert v.kernel_probes == v.window_probes
    assert v.peak_app_buffer <= 2 * max(v.high_water_mark, 64 * 1024)
    assert any(s.writer and s.writer.timer == "persist" for s in r.samples)
    assert backpressure_json(r)["verdict"]["window_probes"] == v.window_probes


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_ignoring_backpressure_grows_the_application_buffer(runtime, default_run):
    r = run(runtime=runtime, ignore_backpressure=True)
    v = r.verdict
    assert v.digest_match and v.bytes_delivered == v.bytes_written
    assert v.peak_app_buffer > 20 * v.high_water_mark
    assert v.peak_app_buffer > 1 << 20
    assert v.peak_rss - v.rss_start > 1 << 20


def test_sndbuf_and_rcvbuf_are_doubled_and_fixed():
    r = run(runtime="python", sndbuf=65536, rcvbuf=16384, bytes=2 << 20)
    assert r.app["connected"]["sndbuf"] == 131072
    assert r.reader["rcvbuf"] == 32768
    writers = [s.writer for s in r.samples if s.writer and s.writer.sndbuf is not None]
    readers = [s.reader for s in r.samples if s.reader and s.reader.rcvbuf is not None]
    assert {w.sndbuf for w in writers} == {131072}     # no send autotuning
    assert {x.rcvbuf for x in readers} == {32768}      # no receive autotuning
    assert r.verdict.zero_windows >= 1 and r.verdict.digest_match


def test_node_writer_with_sndbuf_gets_a_prepared_socket():
    r = run(runtime="node", sndbuf=65536, bytes=2 << 20)
    assert {s.writer.sndbuf for s in r.samples if s.writer and s.writer.sndbuf} == {131072}
    assert r.verdict.write_false >= 1 and r.verdict.digest_match


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_refused_last_write_still_ends_the_stream(runtime):
    # 64 KiB in one chunk into tiny buffers: the last (only) write is refused, and the
    # writer must still end() the socket once it drains, so the reader sees EOF (if it
    # did not, the run's own 10 s timeout would fail the test; speed is `make bench`'s).
    r = run(runtime=runtime, bytes=65536, sndbuf=4096, rcvbuf=4096, pause=0.5, timeout=10)
    v = r.verdict
    assert v.bytes_delivered == v.bytes_written == 65536 and v.digest_match
    assert "eof" in r.reader and "error" not in r.reader
    if runtime == "node":       # the case at hand: the one write returned false
        assert v.write_false == 1


def test_the_timeout_fires_while_the_writer_is_still_writing():
    need_root()
    start = time.monotonic()
    with pytest.raises(TcptraceError, match="did not finish within 0.5 s"):
        scenario.record(BackpressureOptions(bytes=1 << 31, pause=0, timeout=0.5, netns="host"))
    # The message says the timeout fired; this bound only guards against a hang (how
    # fast it fires is not asserted: speed is measured by `make bench`).
    assert time.monotonic() - start < 30


class FailingSampler(scenario.Sampler):
    def stop(self):
        samples = super().stop()
        self.error = RuntimeError("ss broke")
        return samples


def test_a_sampler_error_does_not_mask_the_timeout(monkeypatch):
    need_root()
    monkeypatch.setattr(scenario, "Sampler", FailingSampler)
    with pytest.raises(TcptraceError, match="did not finish"):
        scenario.record(BackpressureOptions(bytes=1 << 31, pause=0, timeout=0.5, netns="host"))


def test_a_sampler_error_is_reported_after_a_clean_run(monkeypatch):
    need_root()
    monkeypatch.setattr(scenario, "Sampler", FailingSampler)
    with pytest.raises(TcptraceError, match="sampling ss failed: ss broke"):
        scenario.record(BackpressureOptions(bytes=65536, pause=0, netns="host"))
