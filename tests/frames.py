"""Hand-built Ethernet frames, the one set the tests share (checksums left at 0: the
decoders do not check them).

The layers compose: `ether(ipv4(tcp(...)))`, with every field a test may twist; `frame`
is the common case, a TCP segment between two (ip, port) endpoints over IPv4.
"""

from __future__ import annotations

import socket
import struct

ACK = 0x10


def tcp(sport=40000, dport=80, seq=1000, ack=2000, flags=ACK, win=512, options=b"",
        payload=b"") -> bytes:
    offset = (20 + len(options)) // 4
    return (struct.pack("!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, offset << 4,
                        flags, win, 0, 0)
            + options + payload)


def ipv4(segment: bytes, src="10.0.0.1", dst="10.0.0.2", proto=6, options=b"", frag=0,
         total=None) -> bytes:
    ihl = (20 + len(options)) // 4
    total = 20 + len(options) + len(segment) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 7, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + options + segment


def ipv6(segment: bytes, src="2001:db8::1", dst="2001:db8:0:0:1::2", nh=6, ext=b"") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(segment), nh, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + ext + segment


def ether(l3: bytes, etype=0x0800, tags=()) -> bytes:
    """tags: (TPID, TCI) pairs, outermost first, e.g. ((0x8100, 5),)."""
    head = b"\x02" * 6 + b"\x04" * 6
    for tpid, tci in tags:
        head += struct.pack("!HH", tpid, tci)
    return head + struct.pack("!H", etype) + l3


def frame(src: tuple[str, int], dst: tuple[str, int], flags: int, seq: int, ack: int = 0,
          length: int = 0, win: int = 512, vlan: int | None = None) -> bytes:
    """An Ethernet/IPv4/TCP frame from `src` to `dst` carrying `length` zero bytes,
    on 802.1Q VLAN `vlan` if given."""
    segment = tcp(src[1], dst[1], seq, ack, flags, win, payload=bytes(length))
    tags = () if vlan is None else ((0x8100, vlan),)
    return ether(ipv4(segment, src[0], dst[0]), tags=tags)
