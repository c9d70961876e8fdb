"""A classic BPF program, built in Python, that keeps one conversation's TCP frames on `lo`.

scapy's `filter="..."` compiles through libpcap, which a fresh machine lacks, so the few
instructions are assembled here and attached with SO_ATTACH_FILTER. Filtering in the
kernel also drops loopback's PACKET_OUTGOING twin of every frame before Python sees it
(libpcap does the same in user space): each segment is then captured exactly once.
"""

from __future__ import annotations

import ctypes
import socket
import struct

Insn = tuple[int, int, int, int]  # (code, jt, jf, k), as struct sock_filter

# Opcodes (linux/filter.h) for the handful of instructions used below.
LDH_ABS = 0x28   # A = u16 at [k]
LDB_ABS = 0x30   # A = u8 at [k]
LDH_IND = 0x48   # A = u16 at [X + k]
LDXB_MSH = 0xB1  # X = 4 * ([k] & 0xf): the IPv4 header length
JEQ = 0x15       # jump jt if A == k, else jf
JSET = 0x45      # jump jt if A & k, else jf
RET = 0x06       # accept k bytes of the frame (0 = drop)

SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # ancillary load: skb->pkt_type
PACKET_OUTGOING = 4
SNAPLEN = 262144                  # what libpcap accepts: never cut a loopback frame
SO_ATTACH_FILTER = 26

ETH_IPV4, ETH_IPV6, IPPROTO_TCP = 0x0800, 0x86DD, 6


def tcp_ports_program(ports: set[int] | list[int], snaplen: int = SNAPLEN,
                      outgoing: bool = False) -> list[Insn]:
    """Accept inbound Ethernet IPv4/IPv6 TCP frames with either port in `ports`; with
    `outgoing`, the frames this host sends too (on a veth end each frame passes once,
    in one direction; on `lo` that would capture every frame twice).

    Like tcpdump's `inbound and tcp and (port A or port B)`: IPv6 only when TCP is the
    first next header, IPv4 non-first fragments dropped (they carry no TCP header).
    """
    ports = sorted(set(ports))
    if not ports or not all(0 < p < 65536 for p in ports):
        raise ValueError(f"ports must be 1-65535, got {ports!r}")
    direction = [] if outgoing else [(LDH_ABS, 0, 0, SKF_AD_PKTTYPE),
                                     (JEQ, "reject", 0, PACKET_OUTGOING)]
    return _assemble([
        *direction,
        (LDH_ABS, 0, 0, 12),                     # ethertype
        (JEQ, "ipv4", 0, ETH_IPV4),
        (JEQ, 0, "reject", ETH_IPV6),
        (LDB_ABS, 0, 0, 14 + 6),                 # IPv6 next header
        (JEQ, 0, "reject", IPPROTO_TCP),
        *_any_port((LDH_ABS, 0, 0, 14 + 40), ports, miss=0),
        *_any_port((LDH_ABS, 0, 0, 14 + 42), ports, miss="reject"),
        "ipv4",
        (LDB_ABS, 0, 0, 14 + 9),                 # protocol
        (JEQ, 0, "reject", IPPROTO_TCP),
        (LDH_ABS, 0, 0, 14 + 6),                 # flags + fragment offset
        (JSET, "reject", 0, 0x1FFF),
        (LDXB_MSH, 0, 0, 14),                    # IHL: IP options shift the TCP header
        *_any_port((LDH_IND, 0, 0, 14), ports, miss=0),
        *_any_port((LDH_IND, 0, 0, 16), ports, miss="reject"),
        "accept",
        (RET, 0, 0, snaplen),
        "reject",
        (RET, 0, 0, 0),
    ])


def _any_port(load: tuple, ports: list[int], miss) -> list:
    """Load a port, then jump to accept if it is any of `ports`; the last test goes to `miss`."""
    tests = [(JEQ, "accept", 0, p) for p in ports]
    tests[-1] = (JEQ, "accept", miss, ports[-1])
    return [load, *tests]


def _assemble(items: list) -> list[Insn]:
    """Resolve label names (str items mark the next instruction) into relative jumps."""
    labels: dict[str, int] = {}
    insns: list[tuple[int, int | str, int | str, int]] = []   # jumps to labels unresolved
    for item in items:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    program = []
    for i, (code, jt, jf, k) in enumerate(insns):
        jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise ValueError("too many ports for one BPF program (jumps are 8-bit)")
        program.append((code, jt, jf, k))
    return program


def attach(sock: socket.socket, program: list[Insn]) -> None:
    """Attach `program` to `sock` (SO_ATTACH_FILTER); it applies to frames queued after."""
    insns = (ctypes.c_ubyte * (8 * len(program))).from_buffer_copy(
        b"".join(struct.pack("HBBI", *insn) for insn in program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }. The kernel
    # copies the program during setsockopt, so `insns` only has to outlive this call.
    fprog = struct.pack("HL", len(program), ctypes.addressof(insns))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
