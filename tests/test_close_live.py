"""Live close runs: real sockets on loopback, real capture, real ss, real tracepoints.

Every assertion is a fact about TCP on Linux that the run must show on the wire or in the
kernel; the runs are repeated so a flaky capture or a race in the choreography shows up.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tcptrace.engine import Scan
from tcptrace.errors import TcptraceError
from tcptrace.live.close_run import run_close
from tcptrace.render.jsonout import close_json

from conftest import TCPTRACE_COMMAND as TCPTRACE
from conftest import require, run_tcptrace

pytestmark = pytest.mark.live
RUNS = int(os.environ.get("TCPTRACE_LIVE_RUNS", "5"))


def wait_until(ready, what: str, timeout: float = 10):
    """Poll `ready()` until it returns something true (and return that): the wait ends
    with the event, not after a guessed time; `timeout` only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not (value := ready()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.02)
    return value


def doc_of(run):
    # Through the JSON document: the contract is what programs rely on.
    return json.loads(json.dumps(close_json(run)))["connections"][0]


def first_from(packets, flag):
    return next((p["from"] for p in packets if flag in p["flags"]), None)


def handshake(packets):
    return [(p["from"], p["flags"]) for p in packets[:3]]


HANDSHAKE = [("client", ["SYN"]), ("server", ["SYN", "ACK"]), ("client", ["ACK"])]


@pytest.mark.parametrize("i", range(RUNS))
def test_end_invariants(live, i):
    conn = doc_of(run_close("end"))
    packets, verdict = conn["packets"], conn["verdict"]
    assert handshake(packets) == HANDSHAKE
    assert sum("SYN" in p["flags"] for p in packets) == 2          # handshake exactly once
    assert first_from(packets, "FIN") == "client"
    assert not any("RST" in p["flags"] for p in packets)
    assert verdict["close"] == "fin" and verdict["first_closer"] == "client"
    assert verdict["final"] == {"client": "TIME-WAIT", "server": "CLOSED"}
    assert verdict["time_wait"] == "client"
    states = {s["after"]: (s["client"], s["server"]) for s in conn["states"]}
    assert states["client shutdown(SHUT_WR)"] == ("FIN-WAIT-2", "CLOSE-WAIT")
    tw = conn["states"][-1]["ss"]["client"]
    assert tw["state"] == "TIME-WAIT" and tw["timer"]["name"] == "timewait"


@pytest.mark.parametrize("i", range(RUNS))
def test_destroy_invariants(live, i):
    conn = doc_of(run_close("destroy"))
    packets, verdict = conn["packets"], conn["verdict"]
    assert handshake(packets) == HANDSHAKE
    assert sum("SYN" in p["flags"] for p in packets) == 2
    assert [p["from"] for p in packets if "RST" in p["flags"]] == ["client"]
    assert not any("FIN" in p["flags"] for p in packets if p["from"] == "client")
    assert verdict["close"] == "rst" and verdict["rst_from"] == "client"
    assert verdict["time_wait"] is None
    assert verdict["final"] == {"client": "CLOSED", "server": "CLOSED"}


def test_pending_bytes_end_delivers_all_destroy_loses_the_unsent(live):
    pending = 8 << 20   # more than the kernel buffers take at once
    end = run_close("end", pending=pending)
    assert end.bytes == {"written": pending, "delivered": pending}
    assert end.verdict.close == "fin"
    destroy = run_close("destroy", pending=pending)
    written, delivered = destroy.bytes["written"], destroy.bytes["delivered"]
    assert 0 < written <= pending          # the kernel took what fit before the close
    assert delivered < written             # the RST discarded the closer's send queue
    assert destroy.verdict.rst_from == "client"


def test_kernel_transitions_show_the_short_states(live):
    run = run_close("end")
    if run.kernel_note:
        pytest.fail(f"tracefs must be usable as root: {run.kernel_note}")
    server = [t.new for t in run.transitions if t.side == "server"]
    client = [t.new for t in run.transitions if t.side == "client"]
    assert "LAST-ACK" in server and server[-1] == "CLOSED"
    assert client[-3:] == ["FIN-WAIT-1", "FIN-WAIT-2", "CLOSED"]
    assert run.verdict.final["client"] == "TIME-WAIT"   # only ss sees the timewait socket
    # One clock: the client's FIN-WAIT-1 transition is within a millisecond of its FIN.
    fin = next(v for v in run.views if "FIN" in v.flags)
    fw1 = next(t for t in run.transitions if t.new == "FIN-WAIT-1")
    assert abs(fin.segment.t - fw1.t) < 0.001


@pytest.mark.parametrize("mode,reason", [("unread", "TCP_ABORT_ON_CLOSE"), ("reset", "TCP_STATE")])
def test_rst_reasons_differ(live, mode, reason):
    run = run_close(mode)
    sent = [e for e in run.kernel_events if e.kind == "send_reset"]
    assert [(e.side, e.reason) for e in sent] == [("client", reason)]
    rst = next(v for v in run.views if "RST" in v.flags)
    assert reason in rst.note


@pytest.mark.parametrize("mode", ["end", "close", "half-close"])
def test_server_closing_first_ends_in_time_wait(live, mode):
    run = run_close(mode, closer="server")
    assert run.verdict.first_closer == "server"
    assert run.verdict.final == {"client": "CLOSED", "server": "TIME-WAIT"}


def test_half_close_data_flows_after_the_fin(live):
    run = run_close("half-close")
    fin_t = next(v.t for v in run.views if "FIN" in v.flags and v.sender == "client")
    after = [v for v in run.views if v.sender == "server" and v.length and v.t > fin_t]
    assert len(after) == 3
    assert all(v.server_state == "CLOSE-WAIT" for v in after)


def test_simultaneous_close_passes_closing_on_both_sides(live):
    run = run_close("simultaneous")
    if not run.verdict.simultaneous:
        pytest.fail(f"the FINs never crossed in {run.tries} tries")
    assert run.verdict.final == {"client": "TIME-WAIT", "server": "TIME-WAIT"}
    closing = {t.side for t in run.transitions if t.new == "CLOSING"}
    assert closing == {"client", "server"}


def tcpdump_segments(pcap: Path, ends: set) -> list | None:
    """The segments between the endpoints `ends` in tcpdump's file so far, in frame
    order; None while the file cannot be read whole yet (no header, a record half
    written)."""
    try:
        scan = Scan(pcap, keep="all")
        segs = [seg for s in scan for seg in s.conn.segments
                if {(seg.src, seg.sport), (seg.dst, seg.dport)} == ends]
    except TcptraceError:
        return None
    return None if scan.warnings else sorted(segs, key=lambda s: s.frame)


def wire_fields(seg) -> tuple:
    return (seg.src, seg.sport, seg.flags, seg.seq, seg.ack, seg.length)


@pytest.mark.parametrize("mode", ["end", "destroy"])
def test_segments_match_an_independent_tcpdump_capture(live, tmp_path, mode):
    require(None if shutil.which("tcpdump") else "tcpdump is not installed")
    for repeat in range(3):          # three runs, every one must match
        pcap = tmp_path / f"{mode}-{repeat}.pcap"
        # All TCP on lo: the run picks its own ports (no port chosen here and reused,
        # which another socket could take in between); its connection is picked out
        # below by its endpoints.
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-Z", "root", "--immediate-mode", "-U",
                                 "-w", str(pcap), "tcp"],
                                stderr=subprocess.PIPE, text=True)
        try:
            assert "listening on" in dump.stderr.readline()
            run = run_close(mode)
            mine = run.connection.segments
            ends = {(mine[0].src, mine[0].sport), (mine[0].dst, mine[0].dport)}
            # tcpdump writes each packet as it gets it (-U): stop it once it has written
            # as many of this connection's segments as the run saw (a missing one fails
            # here after the timeout, an extra one in the comparison below).
            wait_until(lambda pcap=pcap, ends=ends, mine=mine:
                       len(tcpdump_segments(pcap, ends) or ()) >= len(mine),
                       f"tcpdump writing the run's {len(mine)} segments")
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=10)
        theirs = tcpdump_segments(pcap, ends)
        assert theirs is not None, "tcpdump's file is damaged"
        assert [wire_fields(s) for s in mine] == [wire_fields(s) for s in theirs]


def test_save_pcapng_has_the_explanations_as_comments(live, tmp_path, tshark):
    out = tmp_path / "end.pcapng"
    code, stdout, err = run_tcptrace("close", "--mode", "end", "--json", "--save", out,
                                     timeout=60)
    assert code == 0, err
    packets = json.loads(stdout)["connections"][0]["packets"]
    fields = subprocess.run([tshark, "-r", str(out), "-T", "fields", "-E", "aggregator=|",
                             "-e", "tcp.flags.str", "-e", "frame.comment"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(fields) == len(packets)
    for line, packet in zip(fields, packets, strict=True):
        assert line.split("\t")[1] == packet["note"]


def test_two_runs_at_once_do_not_see_each_other(live, tmp_path):
    procs = [subprocess.Popen([*TCPTRACE, "close", "--mode", m, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in ("end", "destroy")]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        conn = json.loads(out)["connections"][0]
        assert handshake(conn["packets"]) == HANDSHAKE
        assert sum("SYN" in p["flags"] for p in conn["packets"]) == 2


def test_port_in_use_is_one_line(live):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_tcptrace("close", "--port", port, timeout=60)
    assert code != 0
    assert err.count("\n") == 1 and "already in use" in err


def test_without_capture_privilege_one_line_says_how(live):
    require(None if shutil.which("capsh") else "capsh (libcap2-bin) is not installed")
    proc = subprocess.run(["capsh", "--drop=cap_net_raw", "--", "-c",
                           " ".join([*TCPTRACE, "close"])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "needs CAP_NET_RAW" in proc.stderr
    assert "setcap" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ss_missing_is_one_line_naming_iproute2(live, tmp_path):
    # A PATH with python but without ss.
    (tmp_path / "bin").mkdir()
    code, _, err = run_tcptrace("close", env={"PATH": str(tmp_path / "bin")}, timeout=60)
    assert code != 0
    assert err.count("\n") == 1 and "iproute2" in err


def test_ctrl_c_exits_130_and_cleans_up(live):
    proc = subprocess.Popen([*TCPTRACE, "close", "--mode", "end", "--pending", str(1 << 30)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    instances = Path("/sys/kernel/tracing/instances")

    def traces() -> list[Path]:
        return [p for p in instances.iterdir() if p.name.startswith(f"tcptrace-{proc.pid}-")]

    def in_the_middle() -> bool:
        # Ready when the run's connection is up (ss shows it owned by the child), and,
        # where tracefs is, its trace instance exists: there is something to clean up.
        ss = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True,
                            text=True).stdout
        return f"pid={proc.pid}," in ss and (not instances.is_dir() or bool(traces()))

    interrupt_when(proc, in_the_middle, "the run's connection (1 GiB pending) coming up")


def run_traces(pid: int) -> list[Path]:
    """The trace instances of the tcptrace process `pid` (none without tracefs)."""
    instances = Path("/sys/kernel/tracing/instances")
    if not instances.is_dir():
        return []
    return [p for p in instances.iterdir() if p.name.startswith(f"tcptrace-{pid}-")]


def interrupt_when(proc: subprocess.Popen, ready, what: str) -> None:
    """Ctrl-C once `ready()`: exit status 130, one line, no trace instance left."""
    try:
        wait_until(ready, what, 30)
    finally:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not run_traces(proc.pid)


@pytest.mark.parametrize("mode", ["end", "unread"])
@pytest.mark.parametrize("width", [80, 200])
def test_ladder_fits_the_width_and_cuts_nothing(live, tmp_path, mode, width):
    # The ladder of a live run, against the same segments read back from its capture.
    from test_layout import check_ladder, expected_views

    saved = tmp_path / "run.pcapng"
    code, out, err = run_tcptrace("close", "--mode", mode, "--width", width, "--save", saved)
    assert code == 0, err
    check_ladder(out, expected_views(saved), width)
    legend = out[out.index("Legend"):]
    for glyph, key in (("┄ ss ┄", "┄┄ ss ┄┄"), ("· kernel ·", "··· kernel ···"),
                       ("▸ client app", "▸ client app / server app ◂")):
        assert glyph in out and key in legend
    code, out, err = run_tcptrace("close", "--mode", mode, "--width", width,
                                  env={"PYTHONIOENCODING": "ascii"})
    assert code == 0 and out.isascii(), err
    assert max(len(line) for line in out.splitlines()) <= width
