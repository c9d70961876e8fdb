"""Frame decoding: hand-built frames for every link type and header twist, and every TCP
segment of the real captures against tshark's dissection.

Through the engine's Python face: `decode_frames` for whole frames, and a written pcap
(`Scan`) where a frame's captured length is less than its length on the wire."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tcptrace.engine import Scan, decode_frames
from tcptrace.model import ACK, FIN, PSH, SYN, Segment

from conftest import SHARED_CAPTURES as CAPTURES
from conftest import real_captures, require
from frames import ether, ipv4, ipv6, tcp

# -- decoding one frame (the frames are built by tests/frames.py) ----------------------------

def decode(linktype: int, frame: bytes) -> Segment | None:
    """The segment in one whole frame captured at t=1.5, or None."""
    segs = decode_frames([(1.5, frame)], linktype)
    assert len(segs) <= 1
    return segs[0] if segs else None


def decode_cut(tmp_path: Path, frame: bytes, caplen: int, linktype: int = 1) -> Segment | None:
    """The segment in a frame of which only the first `caplen` bytes were captured (the
    record keeps the frame's length on the wire), read from a classic pcap."""
    data = frame[:caplen]
    raw = (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
           + struct.pack("<IIII", 1, 500_000, len(data), len(frame)) + data)
    path = tmp_path / "cut.pcap"
    path.write_bytes(raw)
    scan = Scan(path, keep="all")
    segs = [seg for s in scan for seg in s.conn.segments]
    assert scan.warnings == [] and len(segs) <= 1
    return segs[0] if segs else None


# -- hand-built frames -------------------------------------------------------------------

def test_ethernet_ipv4_segment_fields():
    frame = ether(ipv4(tcp(seq=0xFFFFFFF0, ack=77, flags=PSH | ACK, win=65535, payload=b"hello")))
    seg = decode(1, frame)
    assert (seg.t, seg.src, seg.sport, seg.dst, seg.dport) == (1.5, "10.0.0.1", 40000,
                                                                "10.0.0.2", 80)
    assert (seg.seq, seg.ack, seg.flags, seg.length, seg.win) == (0xFFFFFFF0, 77, PSH | ACK, 5,
                                                                  65535)
    assert (seg.mss, seg.wscale, seg.vlan, seg.frame, seg.comments) == (None, None, (), 1, ())


def test_frames_are_numbered_as_a_file_numbers_its_records():
    # Numbered from 1, counting the frames that are not TCP segments too.
    arp = ether(b"\0" * 28, etype=0x0806)
    segs = decode_frames([(1.0, arp), (2.0, ether(ipv4(tcp(seq=1)))), (3.0, arp),
                          (4.0, ether(ipv4(tcp(seq=2))))])
    assert [(s.frame, s.t, s.seq) for s in segs] == [(2, 2.0, 1), (4, 4.0, 2)]


SYN_OPTIONS = (b"\x02\x04\x05\xb4" b"\x01" b"\x03\x03\x07" b"\x04\x02"
               b"\x08\x0a" + bytes(8))


def test_syn_options_mss_and_window_scale():
    seg = decode(1, ether(ipv4(tcp(flags=SYN, options=SYN_OPTIONS))))
    assert (seg.mss, seg.wscale, seg.length) == (1460, 7, 0)


def test_options_are_only_read_on_syn_segments():
    seg = decode(1, ether(ipv4(tcp(flags=ACK, options=SYN_OPTIONS))))
    assert (seg.mss, seg.wscale) == (None, None)


@pytest.mark.parametrize("tags, vlan", [
    ([(0x8100, 42)], (42,)),
    ([(0x8100, 0xE00A)], (10,)),                        # priority bits are not the VLAN ID
    ([(0x88A8, 10), (0x8100, 20)], (10, 20)),
    ([(0x9100, 5), (0x8100, 6)], (5, 6)),
    ([(0x8100, 0)], (0,)),                              # priority-tagged frame
])
def test_vlan_stacks_outermost_first(tags, vlan):
    seg = decode(1, ether(ipv4(tcp()), tags=tags))
    assert seg.vlan == vlan and seg.src == "10.0.0.1"


@pytest.mark.parametrize("etype", [0x8847, 0x8848])
def test_mpls_label_stack(etype):
    labels = struct.pack("!II", 100 << 12 | 64, 200 << 12 | 1 << 8 | 64)
    assert decode(1, ether(labels + ipv4(tcp()), etype=etype)).dport == 80
    assert decode(1, ether(labels + ipv6(tcp()), etype=etype)).src == "2001:db8::1"


def sll(l3: bytes, proto: int) -> bytes:
    return struct.pack("!HHH8sH", 0, 772, 6, bytes(8), proto) + l3


def sll2(l3: bytes, proto: int) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 1, 772, 0, 6, bytes(8)) + l3


V4, V6 = ipv4(tcp()), ipv6(tcp())


@pytest.mark.parametrize("linktype, frame, src", [
    (113, sll(V4, 0x0800), "10.0.0.1"),
    (113, sll(V6, 0x86DD), "2001:db8::1"),
    (276, sll2(V4, 0x0800), "10.0.0.1"),
    (276, sll2(V6, 0x86DD), "2001:db8::1"),
    (101, V4, "10.0.0.1"), (101, V6, "2001:db8::1"),
    (12, V4, "10.0.0.1"), (14, V6, "2001:db8::1"),
    (228, V4, "10.0.0.1"), (229, V6, "2001:db8::1"),
    (0, struct.pack("<I", 2) + V4, "10.0.0.1"),          # NULL, little-endian host
    (0, struct.pack(">I", 2) + V4, "10.0.0.1"),          # NULL, big-endian host
    (0, struct.pack("<I", 24) + V6, "2001:db8::1"),      # NetBSD/OpenBSD AF_INET6
    (0, struct.pack("<I", 28) + V6, "2001:db8::1"),      # FreeBSD
    (0, struct.pack("<I", 30) + V6, "2001:db8::1"),      # macOS
    (0, struct.pack(">I", 30) + V6, "2001:db8::1"),
    (108, struct.pack(">I", 2) + V4, "10.0.0.1"),        # OpenBSD LOOP: network order
    (108, struct.pack(">I", 24) + V6, "2001:db8::1"),
])
def test_link_types(linktype, frame, src):
    seg = decode(linktype, frame)
    assert (seg.src, seg.sport, seg.dport, seg.seq) == (src, 40000, 80, 1000)


@pytest.mark.parametrize("linktype, frame", [
    (1, ether(b"\0" * 28, etype=0x0806)),                # ARP
    (1, ether(ipv4(b"\0" * 16, proto=17))),              # UDP
    (1, ether(ipv6(tcp(), nh=17))),
    (1, ether(ipv6(tcp()))),                             # IPv4 ethertype, IPv6 header
    (101, b"\x50" + V4[1:]),                             # neither IPv4 nor IPv6
    (0, struct.pack("<I", 7) + V4),                      # unknown address family
    (147, V4),                                           # a user link type
    (1, ether(ipv4(tcp()))[:20]),                        # cut inside the IP header
    (1, ether(ipv4(tcp()))[:14 + 20 + 15]),              # TCP header cut before the window
])
def test_not_a_tcp_segment(linktype, frame):
    assert decode(linktype, frame) is None


def test_ipv4_header_options():
    seg = decode(1, ether(ipv4(tcp(payload=b"abc"), options=b"\x01\x01\x01\x00")))
    assert (seg.sport, seg.seq, seg.length) == (40000, 1000, 3)


def test_ipv4_fragments():
    first = ipv4(tcp(payload=b"x" * 8), frag=0x2000)     # more-fragments set, offset 0
    later = ipv4(tcp(payload=b"x" * 8), frag=0x2003)     # offset 24 bytes
    assert decode(1, ether(first)).length == 8
    assert decode(1, ether(later)) is None


def ext(nh: int, size=8) -> bytes:
    return bytes([nh, size // 8 - 1]) + bytes(size - 2)


def test_ipv6_extension_headers():
    # hop-by-hop -> destination options -> routing -> fragment (offset 0, more follow) -> TCP
    chain = ext(60) + ext(43) + ext(44, 16) + struct.pack("!BxHI", 6, 0x0001, 99)
    seg = decode(1, ether(ipv6(tcp(payload=b"data!"), nh=0, ext=chain), etype=0x86DD))
    assert (seg.dst, seg.dport, seg.length) == ("2001:db8::1:0:0:2", 80, 5)


def test_ipv6_later_fragment_and_unknown_header():
    later = struct.pack("!BxHI", 6, 0x0008, 99)          # fragment offset 1 (8 bytes)
    assert decode(101, ipv6(tcp(), nh=44, ext=later)) is None
    assert decode(101, ipv6(b"", nh=59)) is None         # no next header
    assert decode(101, ipv6(tcp(), nh=0, ext=ext(6))[:44]) is None   # chain cut short


def test_payload_length_comes_from_ip_not_from_capture(tmp_path):
    frame = ether(ipv4(tcp(payload=b"p" * 1000)))
    seg = decode_cut(tmp_path, frame, 68)
    assert seg.length == 1000


def test_ethernet_padding_is_not_payload():
    frame = ether(ipv4(tcp(flags=FIN | ACK))) + b"\0" * 6
    assert len(frame) == 60 and decode(1, frame).length == 0


def test_ipv4_total_length_zero_from_segmentation_offload(tmp_path):
    frame = ether(ipv4(tcp(payload=b"z" * 3000), total=0))
    assert decode_cut(tmp_path, frame, 100).length == 3000


def test_tcp_header_cut_after_the_window_still_decodes(tmp_path):
    frame = ether(ipv4(tcp(flags=SYN, options=SYN_OPTIONS)))
    assert decode_cut(tmp_path, frame, 14 + 20 + 16).mss is None
    # Cut inside the window-scale option: the MSS before it is still read.
    seg = decode_cut(tmp_path, frame, 14 + 20 + 20 + 6)
    assert (seg.mss, seg.wscale, seg.length) == (1460, None, 0)


@pytest.mark.parametrize("segment", [
    struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 4 << 4, ACK, 5, 0, 0),     # data offset < 5 words
    tcp(options=b"\x01" * 8)[:20],                                   # header longer than IP says
])
def test_malformed_tcp_header(segment):
    assert decode(1, ether(ipv4(segment))) is None


def test_malformed_options_do_not_loop_or_raise():
    options = b"\x02\x00\x05\xb4" + b"\x03\x01\x07\x00"   # zero and one-byte option lengths
    seg = decode(1, ether(ipv4(tcp(flags=SYN, options=options))))
    assert (seg.mss, seg.wscale) == (None, None)


def test_random_frames_never_raise():
    rng = random.Random(1)
    templates = [ether(V4), ether(V6, etype=0x86DD), sll(V4, 0x0800), sll2(V6, 0x86DD), V4]
    frames = []
    for _ in range(3000):
        frame = bytearray(rng.choice(templates))
        for _ in range(rng.randrange(1, 6)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        frames.append((0.0, bytes(frame[:rng.randrange(len(frame) + 1)])))
    for linktype in (0, 1, 101, 108, 113, 276):
        for seg in decode_frames(frames, linktype):
            assert 1 <= seg.frame <= len(frames) and 0 <= seg.length < 1 << 16


def test_random_records_with_any_wire_length_never_raise(tmp_path):
    # As above through a file, where a record's length on the wire may exceed what
    # was captured by any amount.
    rng = random.Random(2)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(2000):
        frame = bytearray(rng.choice([ether(V4), ether(V6, etype=0x86DD)]))
        for _ in range(rng.randrange(1, 6)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        frame = bytes(frame[:rng.randrange(len(frame) + 1)])
        out.append(struct.pack("<IIII", 1_600_000_000 + i, 0, len(frame),
                               len(frame) + rng.randrange(2000)) + frame)
    path = tmp_path / "random.pcap"
    path.write_bytes(b"".join(out))
    scan = Scan(path)
    list(scan)
    assert scan.warnings == []


# -- real captures -----------------------------------------------------------------------

def segments(name: str) -> list[Segment]:
    """Every TCP segment of a capture, in file order."""
    scan = Scan(CAPTURES / name, keep="all")
    return sorted((seg for s in scan for seg in s.conn.segments), key=lambda s: s.frame)


TSHARK_FIELDS = ["frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport",
                 "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "tcp.flags",
                 "tcp.window_size_value", "tcp.options.mss_val", "tcp.options.wscale.shift",
                 "vlan.id"]


def tshark_segments(path: Path) -> dict[int, tuple]:
    """Frame number -> the fields of our Segment, as tshark dissects them."""
    require(None if shutil.which("tshark") else "tshark is not installed (apt install tshark)")
    args = ["tshark", "-r", str(path), "-Y", "tcp and not icmp and not icmpv6", "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in TSHARK_FIELDS:
        args += ["-e", field]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    rows = {}
    for line in out.splitlines():
        cols = [col.split(",") for col in line.split("\t")]
        frame, src4, src6, dst4, dst6, *numbers = [col[0] for col in cols[:-1]]
        sport, dport, seq, ack, length, flags, win, mss, wscale = (
            int(x, 0) if x else None for x in numbers)
        rows[int(frame)] = (src4 or src6, dst4 or dst6, sport, dport, seq, ack, length,
                            flags & 0xFF, win, mss, wscale, tuple(int(x) for x in cols[-1] if x))
    return rows


@pytest.mark.parametrize("name", real_captures())
def test_segments_match_tshark(name):
    expected = tshark_segments(CAPTURES / name)
    got = {s.frame: (s.src, s.dst, s.sport, s.dport, s.seq, s.ack, s.length, s.flags, s.win,
                     s.mss, s.wscale, s.vlan)
           for s in segments(name)}
    if name == "sv_smtp-to-comma_corrupt.pcap":   # tshark stops at the damage
        got = {n: v for n, v in got.items() if n <= max(expected)}
    assert expected and got == expected


def test_snaplen_cut_capture_counts_payload_from_ip_length():
    raw = (CAPTURES / "zeek_tcp_truncated-header.pcap").read_bytes()
    assert struct.unpack_from("<I", raw, 16)[0] == 68         # the file's snaplen
    segs = segments("zeek_tcp_truncated-header.pcap")
    assert len(segs) == 24 and max(s.length for s in segs) > 68


def test_vlan_captures():
    assert {s.vlan for s in segments("zeek_http-vlan-0.pcap")} == {(0,)}
    assert {s.vlan for s in segments("zeek_vlan-collisions.pcap")} == {(), (42,), (10, 20)}
    ldap = segments("zeek_ldap_modify-request.pcapng")
    by_direction = {(s.dport == 389, s.vlan) for s in ldap}
    assert len(by_direction) == 2 and {v for _, v in by_direction} == {(80,), (81,)}


def test_bsd_loopback_mixes_ipv4_and_ipv6():
    segs = segments("zeek_redis_attr.pcap")
    assert {s.dst for s in segs if s.flags == SYN} == {"::1", "127.0.0.1"}
