"""The BPF program, run over crafted frames by a small cBPF interpreter (no privileges)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Ether

from tcptrace.live.bpf import PACKET_OUTGOING, SKF_AD_PKTTYPE, SNAPLEN, tcp_ports_program

from conftest import require

PACKET_HOST = 0
P, Q, OTHER = 5000, 41234, 6000


def run_bpf(program, frame: bytes, pkttype: int = PACKET_HOST) -> int:
    """Interpret classic BPF as the kernel does; an out-of-bounds load drops the frame."""
    a = x = pc = 0

    def load(off, size):
        if off == SKF_AD_PKTTYPE:
            return pkttype
        if off + size > len(frame):
            raise IndexError
        return int.from_bytes(frame[off:off + size], "big")

    try:
        while True:
            code, jt, jf, k = program[pc]
            pc += 1
            cls, size, mode = code & 0x07, code & 0x18, code & 0xE0
            nbytes = {0x00: 4, 0x08: 2, 0x10: 1}[size]
            if cls == 0x00 and mode == 0x20:        # ld [k]
                a = load(k, nbytes)
            elif cls == 0x00 and mode == 0x40:      # ld [x + k]
                a = load(x + k, nbytes)
            elif cls == 0x00 and mode == 0x00:      # ld #k
                a = k
            elif cls == 0x01 and mode == 0xA0:      # ldxb 4*([k]&0xf)
                x = 4 * (load(k, 1) & 0xF)
            elif cls == 0x05:
                op = code & 0xF0
                taken = {0x10: a == k, 0x20: a > k, 0x30: a >= k, 0x40: bool(a & k)}[op]
                pc += jt if taken else jf
            elif cls == 0x06:
                return k
            else:
                raise NotImplementedError(f"opcode {code:#x}")
    except IndexError:
        return 0


def frames() -> dict[str, tuple[bytes, int, bool]]:
    """name -> (frame, pkttype, should a capture of {P, Q} keep it)."""
    eth = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
    v4 = eth / IP(src="127.0.0.2", dst="127.0.0.1")
    v6 = eth / IPv6(src="::1", dst="::1")
    cases = {
        "v4 to server": (v4 / TCP(sport=Q, dport=P), PACKET_HOST, True),
        "v4 from server": (v4 / TCP(sport=P, dport=Q), PACKET_HOST, True),
        "v4 outgoing copy": (v4 / TCP(sport=Q, dport=P), PACKET_OUTGOING, False),
        "v4 other ports": (v4 / TCP(sport=OTHER, dport=OTHER + 1), PACKET_HOST, False),
        "v4 UDP same port": (v4 / UDP(sport=Q, dport=P), PACKET_HOST, False),
        "v4 with IP options": (eth / IP(src="127.0.0.2", dst="127.0.0.1", options=b"\x01" * 8)
                               / TCP(sport=OTHER, dport=P), PACKET_HOST, True),
        # Read at a fixed offset, these options would pass for the ports.
        "v4 options look like ports": (eth / IP(options=struct.pack("!HH", P, P))
                                       / TCP(sport=OTHER, dport=OTHER), PACKET_HOST, False),
        "v4 later fragment": (eth / IP(frag=100, proto=6) / struct.pack("!HH", Q, P),
                              PACKET_HOST, False),
        "v4 first fragment": (eth / IP(flags="MF") / TCP(sport=Q, dport=P), PACKET_HOST, True),
        "v6": (v6 / TCP(sport=Q, dport=P), PACKET_HOST, True),
        "v6 from server": (v6 / TCP(sport=P, dport=Q), PACKET_HOST, True),
        "v6 outgoing copy": (v6 / TCP(sport=P, dport=Q), PACKET_OUTGOING, False),
        "v6 other ports": (v6 / TCP(sport=OTHER, dport=OTHER), PACKET_HOST, False),
        "v6 UDP": (v6 / UDP(sport=Q, dport=P), PACKET_HOST, False),
        "v6 extension header": (v6 / IPv6ExtHdrHopByHop() / TCP(sport=Q, dport=P),
                                PACKET_HOST, False),
        "ARP": (eth / ARP(), PACKET_HOST, False),
        "truncated v4": (bytes(v4 / TCP(sport=Q, dport=P))[:30], PACKET_HOST, False),
    }
    return {name: (bytes(f), t, keep) for name, (f, t, keep) in cases.items()}


@pytest.mark.parametrize("name", list(frames()))
def test_program_keeps_only_this_conversation(name):
    frame, pkttype, keep = frames()[name]
    assert run_bpf(tcp_ports_program({P, Q}), frame, pkttype) == (SNAPLEN if keep else 0)


def test_one_port_matches_either_direction():
    program = tcp_ports_program([P])
    frame, _, _ = frames()["v4 from server"]
    assert run_bpf(program, frame) == SNAPLEN
    frame, _, _ = frames()["v6"]
    assert run_bpf(program, frame) == SNAPLEN


@pytest.mark.parametrize("ports", [set(), {0}, {70000}])
def test_bad_ports_rejected(ports):
    with pytest.raises(ValueError):
        tcp_ports_program(ports)


def test_too_many_ports_for_8bit_jumps():
    tcp_ports_program(range(1, 40))
    with pytest.raises(ValueError, match="too many ports"):
        tcp_ports_program(range(1, 100))


def tcpdump_program(expr: str):
    out = subprocess.run(["tcpdump", "-y", "EN10MB", "-ddd", expr], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    count = int(out[0])
    return [tuple(int(v) for v in line.split()) for line in out[1:1 + count]]


@pytest.mark.parametrize("expr, ports", [
    (f"inbound and tcp port {P}", {P}),
    (f"inbound and tcp and (port {P} or port {Q})", {P, Q}),
])
def test_agrees_with_tcpdump(expr, ports):
    """libpcap's compiled program and ours keep and drop the same crafted frames."""
    require(None if shutil.which("tcpdump") else "tcpdump is not installed (the cross-check)")
    theirs, ours = tcpdump_program(expr), tcp_ports_program(ports)
    for name, (frame, pkttype, _) in frames().items():
        assert run_bpf(ours, frame, pkttype) == run_bpf(theirs, frame, pkttype), name
