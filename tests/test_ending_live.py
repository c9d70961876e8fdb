"""Live runs of the modes where nobody closes on purpose (a killed process, SO_LINGER with
a timeout, close() with data unsent, TIME-WAIT reuse, a vanished host) and of --ipv6:
real sockets, real kernel, real nftables in namespaces of the run's own. Each run's
segments are compared with an independent tcpdump capture taken where ours was (lo, or
the client's veth end inside the run's namespace), and each asserts what TCP on Linux
must show on the wire or in the kernel.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_close_live import (
    interrupt_when,
    run_traces,
    tcpdump_segments,
    wait_until,
    wire_fields,
)

from tcptrace.live import close_run, port_reuse, vanish
from tcptrace.live.close_run import run_close
from tcptrace.live.ending_modes import LINGER_SECONDS
from tcptrace.model import FIN, RST

from conftest import TCPTRACE_COMMAND as TCPTRACE
from conftest import require, run_tcptrace

pytestmark = pytest.mark.live


@pytest.fixture
def nft():
    require(None if shutil.which("nft") else "nft (nftables) is not installed")


@contextmanager
def tcpdump(pcap: Path, iface: str = "lo"):
    """tcpdump writing every TCP frame on `iface` (in the calling thread's namespace)."""
    require(None if shutil.which("tcpdump") else "tcpdump is not installed")
    dump = subprocess.Popen(["tcpdump", "-i", iface, "-Z", "root", "--immediate-mode", "-U",
                             "-w", str(pcap), "tcp"], stderr=subprocess.PIPE, text=True)
    try:
        assert dump.stderr is not None
        assert "listening on" in dump.stderr.readline()
        yield dump
    finally:
        if dump.poll() is None:
            dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)


def all_segments(run) -> list:
    return [*run.connection.segments, *(s for c in run.later for s in c.connection.segments)]


def same_as_tcpdump(run, pcap: Path, dump) -> None:
    mine = all_segments(run)
    ends = {(mine[0].src, mine[0].sport), (mine[0].dst, mine[0].dport)}
    wait_until(lambda: len(tcpdump_segments(pcap, ends) or ()) >= len(mine),
               f"tcpdump writing the run's {len(mine)} segments")
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    theirs = tcpdump_segments(pcap, ends)
    assert theirs is not None, "tcpdump's file is damaged"
    assert [wire_fields(s) for s in mine] == [wire_fields(s) for s in theirs]


def witnessed(tmp_path: Path, mode: str, **kw):
    """Run `mode` on loopback with tcpdump on lo as the witness; the run."""
    pcap = tmp_path / f"{mode}.pcap"
    with tcpdump(pcap) as dump:
        run = run_close(mode, **kw)
        same_as_tcpdump(run, pcap, dump)
    return run


@contextmanager
def witness_in_namespaces(monkeypatch, tmp_path: Path, where: str):
    """tcpdump started inside the run's own namespace, as soon as it exists: on the
    client's veth end (vanish modes) or on the namespace's lo (--ipv6). Yields a list
    that receives (pcap, process)."""
    started: list = []

    def start(pcap: Path, iface: str):
        cm = tcpdump(pcap, iface)
        started.append((pcap, cm.__enter__(), cm))

    if where == "veth":
        link = vanish.VethStage._link

        def link_and_watch(self, prefix):
            link(self, prefix)
            with self.client_ns.entered():
                start(tmp_path / "veth.pcap", vanish.CLIENT_VETH)
        monkeypatch.setattr(vanish.VethStage, "_link", link_and_watch)
    else:
        run_once = close_run._run_once

        def watch_and_run(*args, **kw):     # with addresses: inside the run's namespace
            if "addresses" in kw and not started:
                start(tmp_path / "lo6.pcap", "lo")
            return run_once(*args, **kw)
        monkeypatch.setattr(close_run, "_run_once", watch_and_run)
    try:
        yield started
    finally:
        for _, _, cm in started:
            cm.__exit__(None, None, None)


def sent(run, side: str, flag: int) -> list:
    conn = run.connection
    return [s for s in conn.segments if conn.side_of(s) == side and s.flags & flag]


def reasons(run, side: str) -> list:
    return [e.reason for e in run.kernel_events if e.kind == "send_reset" and e.side == side]


# --- a killed process ------------------------------------------------------------------

@pytest.mark.parametrize("closer", ["client", "server"])
def test_a_killed_process_closes_with_a_fin(live, tmp_path, closer):
    run = witnessed(tmp_path, "kill", closer=closer)
    assert any("SIGKILL" in e.what for e in run.events)
    assert sent(run, closer, FIN) and not sent(run, closer, RST)
    assert run.verdict.close == "fin" and run.verdict.first_closer == closer
    assert run.verdict.final[closer] == "TIME-WAIT"


def test_a_killed_process_with_unread_data_resets(live, tmp_path):
    run = witnessed(tmp_path, "kill-unread")
    assert sent(run, "client", RST) and not sent(run, "client", FIN)
    assert reasons(run, "client") == ["TCP_ABORT_ON_CLOSE"]
    assert run.verdict.final == {"client": "CLOSED", "server": "CLOSED"}


@pytest.mark.parametrize("mode,flag,other", [("kill", FIN, RST), ("kill-unread", RST, FIN)])
def test_a_killed_node_process_closes_as_a_python_one_does(live, tmp_path, mode, flag, other):
    require(None if shutil.which("node") else "node is not installed")
    run = witnessed(tmp_path, mode, runtime="node")
    assert any("Node.js process owning it" in e.what for e in run.events)
    assert sent(run, "client", flag) and not sent(run, "client", other)


# --- SO_LINGER with a timeout, close() with data unsent --------------------------------

def test_linger_blocks_then_returns_and_the_orphan_delivers(live, tmp_path):
    run = witnessed(tmp_path, "linger")
    assert run.facts["close_blocked_s"] >= LINGER_SECONDS - 0.05
    # No RST on Linux when the linger time runs out: the data is delivered later.
    assert not sent(run, "client", RST)
    assert run.bytes["delivered"] == run.bytes["written"] > 0
    orphan = [o for o in run.observations if o.after.startswith("client close() returned")]
    assert orphan and orphan[0].client == "FIN-WAIT-1"
    assert orphan[0].details["client"]["send_q"] > 0
    fin = sent(run, "client", FIN)[0]
    assert max(s.seq + s.length for s in run.connection.segments        # the FIN after
               if run.connection.side_of(s) == "client" and s.length) == fin.seq + fin.length


def test_linger_returns_at_the_ack_when_the_reader_resumes(live, tmp_path):
    run = witnessed(tmp_path, "linger-in-time")
    assert run.facts["close_blocked_s"] < LINGER_SECONDS
    assert run.bytes["delivered"] == run.bytes["written"] > 0
    fin = sent(run, "client", FIN)[0]
    returned = next(e.t for e in run.events if e.what.startswith("close() returned"))
    acked = [s for s in run.connection.segments if run.connection.side_of(s) == "server"
             and s.ack == (fin.seq + fin.length + 1) & 0xFFFFFFFF]
    assert acked and acked[0].t <= returned       # close() waited for the FIN's ACK


def test_close_with_data_unsent_keeps_sending_in_fin_wait_1(live, tmp_path):
    run = witnessed(tmp_path, "unsent")
    queues = [o.details["client"]["send_q"] for o in run.observations
              if o.client == "FIN-WAIT-1" and "client" in o.details]
    assert len(queues) >= 2 and queues == sorted(queues, reverse=True) and queues[0] > queues[-1]
    fin = sent(run, "client", FIN)[0]
    data = [s for s in run.connection.segments if run.connection.side_of(s) == "client"
            and s.length]
    assert data[-1].t <= fin.t and run.bytes["delivered"] == run.bytes["written"]


# --- TIME-WAIT reuse ---------------------------------------------------------------------

@pytest.mark.parametrize("closer", ["client", "server"])
def test_time_wait_reuse_opens_a_new_connection_on_the_same_4_tuple(live, tmp_path, closer):
    run = witnessed(tmp_path, "tw-reuse", closer=closer)
    assert run.verdict.final[closer] == "TIME-WAIT"
    assert run.facts["connect"] == "ok" and len(run.later) == 1
    new = run.later[0].connection
    assert (new.client, new.server) == (run.connection.client, run.connection.server)
    assert run.later[0].verdict.close == "fin"
    if closer == "client":     # the bind beside the TIME-WAIT needs SO_REUSEADDR
        assert run.facts["bind_without_reuseaddr"] == "EADDRINUSE"


@pytest.mark.parametrize("ipv6", [False, True])
def test_tcp_tw_reuse_governs_a_port_chosen_by_connect(live, monkeypatch, tmp_path, ipv6):
    host = Path("/proc/sys/net/ipv4/tcp_tw_reuse").read_text()
    with witness_in_namespaces(monkeypatch, tmp_path, "lo") as started:
        run = run_close("tw-reuse-port", ipv6=ipv6)
        same_as_tcpdump(run, *started[0][:2])
    assert Path("/proc/sys/net/ipv4/tcp_tw_reuse").read_text() == host   # untouched
    delay = run.facts["tcp_tw_reuse_delay_ms"]
    for a in run.facts["attempts"]:    # only tcp_tw_reuse on and an old enough TIME-WAIT
        want = "ok" if a["tcp_tw_reuse"] and a["time_wait_age_ms"] > delay else "EADDRNOTAVAIL"
        assert a["result"] == want, a
    [new] = run.later
    assert new.connection.client_port == run.connection.client_port == port_reuse.ONE_PORT
    assert [s.flags & 0x12 for s in new.connection.segments[:2]] == [0x02, 0x12]  # SYN, SYN+ACK


# --- a vanished host ---------------------------------------------------------------------

def _after_power_off(run, side: str) -> list:
    off = next(e.t for e in run.events if e.what.startswith("the host loses power"))
    conn = run.connection
    return [s for s in conn.segments if conn.side_of(s) == side and s.t >= off]


def test_vanished_host_retransmissions_then_etimedout(live, nft, monkeypatch, tmp_path):
    with witness_in_namespaces(monkeypatch, tmp_path, "veth") as started:
        run = run_close("vanish")
        same_as_tcpdump(run, *started[0][:2])
    assert _after_power_off(run, "server") == []          # a dead host says nothing
    client = _after_power_off(run, "client")
    assert len(client) >= 4 and not any(s.flags & (FIN | RST) for s in client)
    assert run.facts["error"] == "ETIMEDOUT"
    rtos = run.facts["rto_ms"]
    assert len(rtos) >= 3 and all(b == 2 * a for a, b in zip(rtos, rtos[1:], strict=False))
    assert run.verdict.final == {"client": "CLOSED", "server": "ESTABLISHED"}
    assert run.facts["tcp_retries2"] == int(Path("/proc/sys/net/ipv4/tcp_retries2").read_text())


def test_vanished_host_keepalive_probes_then_rst(live, nft, monkeypatch, tmp_path):
    with witness_in_namespaces(monkeypatch, tmp_path, "veth") as started:
        run = run_close("vanish-keepalive")
        same_as_tcpdump(run, *started[0][:2])
    assert _after_power_off(run, "server") == []
    probes = [s for s in _after_power_off(run, "client") if not s.length and not s.flags & RST]
    assert len(probes) == vanish.KEEPCNT      # each unanswered, then the RST
    assert run.facts["error"] == "ETIMEDOUT"
    assert reasons(run, "client") == ["TCP_KEEPALIVE_TIMEOUT"]
    # The client's end saw its RST leave; the server's kernel never got it.
    rst = next(v for v in run.views if "RST" in v.flags)
    assert rst.server_state == "ESTABLISHED" and "never saw it" in rst.note
    assert run.verdict.final == {"client": "CLOSED", "server": "ESTABLISHED"}


def test_returned_host_answers_with_an_rst(live, nft, monkeypatch, tmp_path):
    with witness_in_namespaces(monkeypatch, tmp_path, "veth") as started:
        run = run_close("vanish-return")
        same_as_tcpdump(run, *started[0][:2])
    back = next(e.t for e in run.events if e.what.startswith("the host is back"))
    server = _after_power_off(run, "server")
    assert [s.flags & RST for s in server] == [RST] and server[0].t > back
    assert reasons(run, "server") == ["NO_SOCKET"]
    assert run.facts["error"] == "ECONNRESET"


def test_vanish_leaves_no_namespace_or_interface_behind(live, nft):
    before = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    code, _, err = run_tcptrace("close", "--mode", "vanish-return", "--no-kernel", timeout=60)
    assert code == 0, err
    after = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert after == before and "tcptrace" not in after


# --- IPv6 ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["end", "unread", "kill", "tw-reuse"])
def test_ipv6_on_loopback_matches_tcpdump(live, monkeypatch, tmp_path, mode):
    with witness_in_namespaces(monkeypatch, tmp_path, "lo") as started:
        run = run_close(mode, ipv6=True)
        same_as_tcpdump(run, *started[0][:2])
    assert (run.connection.client_ip, run.connection.server_ip) == ("::2", "::1")
    four = run_close(mode)
    assert (run.verdict.close, run.verdict.first_closer, run.verdict.final) == \
        (four.verdict.close, four.verdict.first_closer, four.verdict.final)
    assert {t.side for t in run.transitions} == {"client", "server"}   # v6 tracepoints


def test_ipv6_vanish(live, nft, monkeypatch, tmp_path):
    with witness_in_namespaces(monkeypatch, tmp_path, "veth") as started:
        run = run_close("vanish-return", ipv6=True)
        same_as_tcpdump(run, *started[0][:2])
    assert run.connection.server_ip == vanish.ADDRESSES[True][0]
    assert reasons(run, "server") == ["NO_SOCKET"]
    # The same backoff as over IPv4: nothing (neighbour discovery) delayed the SYN and
    # skewed the kernel's RTT estimate.
    assert run.facts["rto_ms"] == run_close("vanish-return").facts["rto_ms"]


def test_ipv6_node_runtime(live):
    require(None if shutil.which("node") else "node is not installed")
    run = run_close("reset", runtime="node", ipv6=True)
    assert run.connection.client_ip == "::2"
    assert sent(run, "client", RST) and run.verdict.final == {"client": "CLOSED",
                                                              "server": "CLOSED"}


def test_ctrl_c_in_a_vanish_run_exits_130_and_leaves_nothing(live, nft):
    host = [subprocess.run(c, capture_output=True, text=True).stdout
            for c in (["ip", "-br", "link"], ["nft", "list", "ruleset"])]
    proc = subprocess.Popen([*TCPTRACE, "close", "--mode", "vanish"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Ready once the trace instance exists: the namespaces, veth and capture are up.
    interrupt_when(proc, lambda: not Path("/sys/kernel/tracing/instances").is_dir()
                   or run_traces(proc.pid), "the run's trace instance")
    assert host == [subprocess.run(c, capture_output=True, text=True).stdout
                    for c in (["ip", "-br", "link"], ["nft", "list", "ruleset"])]


# vanish, not vanish-return: the replay's observer assumes every segment arrived, so for
# what the powered-off host dropped the live ladder shows the server's real state, and
# only vanish has none whose state that changes.
@pytest.mark.parametrize("mode", ["linger", "vanish"])
@pytest.mark.parametrize("width", [80, 200])
def test_new_ladders_fit_the_width_and_cut_nothing(live, nft, tmp_path, mode, width):
    from test_layout import check_ladder, expected_views

    saved = tmp_path / "run.pcapng"
    code, out, err = run_tcptrace("close", "--mode", mode, "--width", width, "--save", saved)
    assert code == 0, err
    check_ladder(out, expected_views(saved), width)
    assert max(len(line) for line in out.splitlines()) <= width
    assert "Where:" in out or mode != "vanish"


def test_vanish_without_nft_is_one_line_naming_nftables(live, tmp_path):
    # A PATH with ss and ip but without nft.
    (tmp_path / "bin").mkdir()
    for tool in ("ss", "ip"):
        (tmp_path / "bin" / tool).symlink_to(shutil.which(tool))
    code, _, err = run_tcptrace("close", "--mode", "vanish",
                                env={"PATH": str(tmp_path / "bin")}, timeout=60)
    assert code == 2 and err.count("\n") == 1 and "nftables" in err


def test_namespaces_without_cap_sys_admin_are_one_line(live):
    require(None if shutil.which("capsh") else "capsh (libcap2-bin) is not installed")
    for args in (["--mode", "vanish"], ["--mode", "end", "--ipv6"]):
        proc = subprocess.run(["capsh", "--drop=cap_sys_admin", "--", "-c",
                               " ".join([*TCPTRACE, "close", *args])],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 77, proc.stderr
        assert proc.stderr.count("\n") == 1 and "CAP_SYS_ADMIN" in proc.stderr


def test_a_silent_timeout_is_told_as_half_open():
    from tcptrace.model import Verdict
    from tcptrace.render.ladder import conclusion_lines

    verdict = Verdict("open", None, None, False, None,
                      {"client": "CLOSED", "server": "ESTABLISHED"})
    first = conclusion_lines(verdict)[0]
    assert "no FIN or RST on the wire" in first and "half-open" in first
    verdict.final = {"client": "ESTABLISHED", "server": "ESTABLISHED"}
    assert "still open" in conclusion_lines(verdict)[0]


def test_a_mode_without_a_node_call_says_which_have_one(live):
    code, _, err = run_tcptrace("close", "--mode", "linger", "--runtime", "node", timeout=60)
    assert code == 2 and err.count("\n") == 1
    assert "SO_LINGER" in err and "kill-unread" in err


def test_the_retries_model_matches_the_kernel_documentation():
    # Documentation/networking/ip-sysctl.rst, tcp_retries2: "The default value of 15
    # yields a hypothetical timeout of 924.6 seconds".
    assert round(vanish._retries_model(15), 1) == 924.6
