"""Real loopback connections captured by LoopbackCapture, checked against tcpdump."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6  # noqa: F401  lets Ether() dissect IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from tcptrace.errors import NeedPrivilege, TcptraceError
from tcptrace.live.capture import LoopbackCapture

from conftest import require

SYN, ACK = 0x02, 0x10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def need(what: str, available: bool) -> None:
    """Skip without `what`, except in CI, where live checks are mandatory (conftest)."""
    require(None if available else f"{what} is not available")


def bound_pair(server_ip="127.0.0.1", client_ip="127.0.0.2"):
    """A listening server and a bound client: both ports are known before the SYN."""
    family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
    server = socket.create_server((server_ip, 0), family=family)
    client = socket.socket(family)
    client.bind((client_ip, 0))
    return server, client


def ports(server, client) -> set[int]:
    return {server.getsockname()[1], client.getsockname()[1]}


def converse(server: socket.socket, client: socket.socket) -> None:
    """Handshake, a little data each way, client FIN first, then the server's FIN."""
    client.connect(server.getsockname())
    conn, _ = server.accept()
    client.sendall(b"hello")
    assert conn.recv(100) == b"hello"
    conn.sendall(b"world!")
    assert client.recv(100) == b"world!"
    client.shutdown(socket.SHUT_WR)
    assert conn.recv(100) == b""
    conn.close()
    assert client.recv(100) == b""
    client.close()
    server.close()


def segments(frames, client_endpoint) -> list[tuple]:
    """(direction, seq, ack, flags, payload length) of each frame, in order."""
    out = []
    for data in frames:
        ip = Ether(data).payload
        tcp = ip[TCP]
        direction = "c2s" if (ip.src, tcp.sport) == client_endpoint[:2] else "s2c"
        payload = ip.plen if ip.version == 6 else ip.len - 4 * ip.ihl
        out.append((direction, tcp.seq, tcp.ack, int(tcp.flags), payload - 4 * tcp.dataofs))
    return out


class Tcpdump:
    """An independent `tcpdump -w` of the same run, started before ours and stopped after."""

    def __init__(self, path, port: int) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-w", str(path), "--immediate-mode", "-U", "-Z", "root",
             f"tcp port {port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        line = ""
        while "listening on" not in line:
            ready, _, _ = select.select([self.proc.stderr], [], [], deadline - time.monotonic())
            if not ready:
                self.proc.kill()
                pytest.fail("tcpdump did not start listening")
            line = self.proc.stderr.readline()

    def frames(self) -> list[tuple[float, bytes]]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=10)
        return [(float(p.time), bytes(p)) for p in rdpcap(str(self.path))]


@pytest.fixture
def start_tcpdump(tmp_path):
    """start_tcpdump(port) -> Tcpdump, or None without tcpdump; never outlives the test."""
    started = []

    def start(port: int) -> Tcpdump | None:
        if shutil.which("tcpdump") is None:
            return None
        started.append(Tcpdump(tmp_path / "ref.pcap", port))
        return started[-1]

    yield start
    for tcpdump in started:
        tcpdump.proc.kill()
        tcpdump.proc.wait()


@pytest.mark.live
@pytest.mark.parametrize("run", range(10))
def test_each_segment_once_and_as_tcpdump_sees_it(live, start_tcpdump, run):
    server, client = bound_pair()
    client_endpoint = client.getsockname()
    tcpdump = start_tcpdump(client_endpoint[1])
    with LoopbackCapture(ports(server, client)) as cap:
        converse(server, client)
    ours = segments([data for _, data in cap.frames], client_endpoint)

    assert cap.drops == 0
    syn, synack = ours[0], ours[1]
    flags = [s[3] for s in ours]
    assert (flags.count(SYN), flags.count(SYN | ACK)) == (1, 1)
    assert (syn[0], syn[3], synack[0], synack[3]) == ("c2s", SYN, "s2c", SYN | ACK)
    assert ours.count(("c2s", syn[1] + 1, synack[1] + 1, ACK, 0)) == 1
    assert len(set(ours)) == len(ours), "a frame was captured twice"
    assert sum(length for *_, length in ours) == len(b"hello") + len(b"world!")

    need("tcpdump", tcpdump is not None)
    theirs = tcpdump.frames()
    assert ours == segments([data for _, data in theirs], client_endpoint)
    # The same wall clock, read by the kernel: libpcap's ring and recvmsg() stamp at
    # slightly different points (measured: mostly < 1 us apart, at times ~10 us).
    for (t_ours, _), (t_theirs, _) in zip(cap.frames, theirs, strict=True):
        assert abs(t_ours - t_theirs) < 5e-3


@pytest.mark.live
def test_ipv6_each_segment_once(live):
    server, client = bound_pair("::1", "::1")
    client_endpoint = client.getsockname()
    with LoopbackCapture(ports(server, client)) as cap:
        converse(server, client)
    ours = segments([data for _, data in cap.frames], client_endpoint)
    assert [s[3] for s in ours[:3]] == [SYN, SYN | ACK, ACK]
    assert len(set(ours)) == len(ours) >= 9


@pytest.mark.live
def test_concurrent_captures_are_isolated(live):
    barrier = threading.Barrier(2)
    results: dict[int, tuple[set[int], list]] = {}

    def one(i: int) -> None:
        server, client = bound_pair()
        mine = ports(server, client)
        with LoopbackCapture(mine) as cap:
            barrier.wait()  # both sniffers are reading before either connection starts
            converse(server, client)
        results[i] = (mine, cap.frames)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2
    for mine, frames in results.values():
        seen = {Ether(data)[TCP].sport for _, data in frames} | \
            {Ether(data)[TCP].dport for _, data in frames}
        assert seen == mine
        assert len(frames) >= 8


@pytest.mark.live
def test_unrelated_loopback_traffic_is_not_captured(live):
    server, client = bound_pair()
    other_server, other_client = bound_pair()
    mine = ports(server, client)
    with LoopbackCapture(mine) as cap:
        converse(other_server, other_client)
        # UDP to the very port the capture watches: still not TCP.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("127.0.0.1", server.getsockname()[1]))
        converse(server, client)
    for _, data in cap.frames:
        tcp = Ether(data)[TCP]
        assert {tcp.sport, tcp.dport} == mine


def test_missing_interface_is_one_line_error():
    with pytest.raises(TcptraceError, match="no network interface named 'nosuch0'"):
        with LoopbackCapture({1234}, iface="nosuch0"):
            pass


def test_without_cap_net_raw_says_how_to_get_it():
    need("capsh, and root to drop a capability", bool(shutil.which("capsh")) and os.geteuid() == 0)
    code = ("from tcptrace.live.capture import LoopbackCapture\n"
            "from tcptrace.errors import NeedPrivilege\n"
            "try:\n    LoopbackCapture({1234}).__enter__()\n"
            "except NeedPrivilege as e:\n    print(e)\n")
    out = subprocess.run(
        ["capsh", "--drop=cap_net_raw", "--", "-c", f"{sys.executable} -c '{code}'"],
        capture_output=True, text=True, check=True, cwd=ROOT)
    message = out.stdout.strip()
    assert "\n" not in message and "needs CAP_NET_RAW: run as root or with sudo" in message
    assert "setcap" not in message      # never on the shared interpreter (README has a recipe)
    assert issubclass(NeedPrivilege, TcptraceError)


def test_importing_capture_does_not_import_scapy():
    out = subprocess.run([sys.executable, "-c",
                          "import sys, tcptrace.live.capture, tcptrace.live.bpf;"
                          "print(any(m.startswith('scapy') for m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.live
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupted_scenario_leaves_no_socket_or_thread(live, error):
    fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    with pytest.raises(error):
        with LoopbackCapture({1234}):
            raise error()
    assert (len(os.listdir("/proc/self/fd")), threading.active_count()) == (fds, threads)
