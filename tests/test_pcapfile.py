"""The capture-file reader: real captures, hand-built pcap/pcapng files, damaged input.

Through the engine's Python face: a record shows as the TCP segment decoded from it (its
time, record number, pcapng comments), so the hand-built files carry TCP frames; damage
shows in `Scan.warnings`, and a file that is not a capture at all as `TcptraceError`.
"""

from __future__ import annotations

import random
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from tcptrace.engine import Scan, decode_frames
from tcptrace.errors import TcptraceError
from tcptrace.model import Segment

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures-real"

# File -> records, as the "Pkts" column of the README table in CAPTURES states it. The
# corrupt file holds 199 records for a reader that resyncs.
README_TABLE = {
    "cs_tcp_teardown.pcapng": 4,
    "cs_nowebaccess2.pcapng": 8,
    "cs_tcp_zerowindowrecovery.pcapng": 7,
    "cs_tcp_zerowindowdead.pcapng": 8,
    "cs_http_ip4and6.pcapng": 20,
    "lw_200722_tcp_anon.pcapng": 35,
    "lw_simple_http_sll2.pcap": 24,
    "zeek_http_get-gzip.pcap": 14,
    "zeek_tcp_fin_retransmission.pcap": 5,
    "zeek_http_206_example_b.pcap": 1556,
    "zeek_http-vlan-0.pcap": 14,
    "zeek_vlan-collisions.pcap": 42,
    "zeek_tls_irc-starttls.pcap": 20,
    "zeek_tcp_truncated-header.pcap": 24,
    "zeek_nmap-vsn.pcap": 547,
    "zeek_ftp_ipv6-violation.pcap": 19,
    "zeek_redis_attr.pcap": 28,
    "zeek_ldap_modify-request.pcapng": 17,
    "zeek_http_get-to-ssh-server.pcap": 9,
    "sv_community-id-ipv6.pcap": 70,
    "sv_mqtt-limit-2.pcap": 37,
    "sv_tcp-empty-sack_tcp-opt.pcap": 42,
    "sv_smtp-to-comma_corrupt.pcap": 199,
    "tcpreplay_test.pcap": 179,
    "tcpdump_pptp.pcap": 23,
}
CORRUPT = "sv_smtp-to-comma_corrupt.pcap"
T0 = 1_600_000_000      # a realistic capture time: resync rejects records far from the last


def read(path: Path) -> tuple[list[Segment], list[str]]:
    """Every TCP segment of a capture in file order, and the reader's warnings."""
    scan = Scan(path, keep="all")
    segs = sorted((seg for s in scan for seg in s.conn.segments), key=lambda s: s.frame)
    return segs, scan.warnings


def tshark_times(path: Path, tshark: str) -> dict[int, float]:
    """Record number -> capture time of every TCP record, as tshark reads them."""
    out = subprocess.run([tshark, "-r", str(path), "-Y", "tcp", "-T", "fields",
                          "-e", "frame.number", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=False).stdout
    return {int(n): float(t) for n, t in (line.split() for line in out.splitlines())}


# -- TCP frames to put in hand-built files -------------------------------------------------

def tcp_ip(n: int, payload: int = 0, sport: int = 40000) -> bytes:
    """An IPv4/TCP packet from 10.0.0.1:sport to 10.0.0.2:80 whose sequence number is n."""
    tcp = struct.pack("!HHIIBBHHH", sport, 80, n, 0, 5 << 4, 0x10, 512, 0, 0) + bytes(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                       socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")) + tcp


def tcp_frame(n: int, payload: int = 0, sport: int = 40000) -> bytes:
    """The same in an Ethernet frame."""
    return b"\x02" * 12 + b"\x08\x00" + tcp_ip(n, payload, sport)


def sll_frame(n: int) -> bytes:
    """The same behind a Linux cooked (SLL) header."""
    return struct.pack("!HHH8sH", 0, 772, 6, bytes(8), 0x0800) + tcp_ip(n)


# -- real captures -----------------------------------------------------------------------

def test_readme_table_covers_every_capture():
    assert sorted(README_TABLE) == sorted(p.name for p in CAPTURES.glob("*.pcap*"))


@pytest.mark.parametrize("name", sorted(README_TABLE))
def test_real_capture_counts(name):
    path = CAPTURES / name
    calls = []
    scan = Scan(path, keep="all", progress=lambda done, size: calls.append((done, size)))
    frames = [seg.frame for s in scan for seg in s.conn.segments]
    count = README_TABLE[name]
    assert scan._scan.records == count           # every record, TCP or not
    assert len(set(frames)) == len(frames) == scan.segments
    assert frames and min(frames) >= 1 and max(frames) <= count
    size = path.stat().st_size
    assert calls and calls[-1] == (size, size)   # read to the end
    assert bool(scan.warnings) == (name == CORRUPT)


@pytest.mark.parametrize("name", [
    "zeek_http_get-to-ssh-server.pcap",     # nanosecond timestamps
    "tcpdump_pptp.pcap",                    # big-endian
    "cs_http_ip4and6.pcapng",
    "zeek_ldap_modify-request.pcapng",      # 126 interface blocks
    "lw_simple_http_sll2.pcap",
    "zeek_redis_attr.pcap",
    CORRUPT,                                # tshark stops at the damage
])
def test_timestamps_and_record_numbers_match_tshark(name, tshark):
    expected = tshark_times(CAPTURES / name, tshark)
    segs, _ = read(CAPTURES / name)
    got = {s.frame: s.t for s in segs if s.frame <= max(expected)}
    assert expected and sorted(got) == sorted(expected)
    for frame, t in expected.items():
        assert got[frame] == pytest.approx(t, abs=1e-6, rel=0), frame


def test_nanosecond_file_keeps_sub_microsecond_digits():
    raw = (CAPTURES / "zeek_http_get-to-ssh-server.pcap").read_bytes()
    first = read(CAPTURES / "zeek_http_get-to-ssh-server.pcap")[0][0]
    sec, nsec = struct.unpack_from("<II", raw, 24)
    assert raw[:4] == bytes.fromhex("4d3cb2a1")
    assert first.frame == 1
    assert first.t == pytest.approx(sec + nsec / 1e9, abs=1e-7, rel=0)


def test_big_endian_pcap():
    raw = (CAPTURES / "tcpdump_pptp.pcap").read_bytes()
    assert raw[:4] == bytes.fromhex("a1b2c3d4")
    first = read(CAPTURES / "tcpdump_pptp.pcap")[0][0]
    sec, usec, caplen, _ = struct.unpack_from(">IIII", raw, 24)
    assert first.frame == 1
    assert first.t == pytest.approx(sec + usec / 1e6, abs=1e-7, rel=0)
    # The record's bytes, exactly: decoded on their own they give the same segment.
    [alone] = decode_frames([(first.t, raw[40:40 + caplen])])
    assert alone == first


def pcap_offsets(raw: bytes, count: int) -> list[int]:
    """Byte offsets of the first `count` record headers of a little-endian classic pcap."""
    offsets, pos = [], 24
    for _ in range(count):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", raw, pos + 8)[0]
    return offsets + [pos]


def test_corrupt_capture_resynchronises_after_three_stray_bytes():
    raw = (CAPTURES / CORRUPT).read_bytes()
    damage_at = pcap_offsets(raw, 18)[-1]
    segs, warnings = read(CAPTURES / CORRUPT)
    assert [s.frame for s in segs] == list(range(1, 200))
    assert warnings == [f"record 19 at byte {damage_at}: damaged record header; "
                        "skipped 3 bytes and resynchronised"]
    sec, usec = struct.unpack_from("<II", raw, damage_at + 3)
    assert segs[18].t == sec + usec / 1e6
    assert 0 <= segs[18].t - segs[17].t < 60


# -- hand-built files --------------------------------------------------------------------

def pcap(records, endian="<", nano=False, snaplen=65535, linktype=1) -> bytes:
    """A classic pcap; records are (seconds, fraction ticks, data[, orig_len])."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, *orig in records:
        out += [struct.pack(endian + "IIII", sec, frac, len(data), orig[0] if orig else len(data)),
                data]
    return b"".join(out)


def block(btype: int, body: bytes, endian="<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(endian + "II", btype, size) + body + struct.pack(endian + "I", size)


def option(code: int, value: bytes, endian="<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(endian="<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def idb(linktype=1, options=b"", endian="<", snaplen=0) -> bytes:
    return block(1, struct.pack(endian + "HHI", linktype, 0, snaplen) + options, endian)


def epb(ticks: int, data: bytes, iface=0, options=b"", endian="<") -> bytes:
    body = struct.pack(endian + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) + 10)
    body += data + b"\0" * (-len(data) % 4) + options
    return block(6, body, endian)


def write(tmp_path: Path, raw: bytes, name="t.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_nanosecond_big_endian_pcap(tmp_path):
    path = write(tmp_path, pcap([(1_700_000_000, 123_456_789, tcp_ip(1)),
                                 (1_700_000_001, 999_999_999, tcp_ip(2, payload=4), 70)],
                                endian=">", nano=True, linktype=101))
    (first, second), warnings = read(path)
    assert warnings == []
    assert first.t == 1_700_000_000 + 123_456_789 / 1e9
    assert second.t == 1_700_000_001 + 999_999_999 / 1e9
    assert [(s.frame, s.seq, s.length) for s in (first, second)] == [(1, 1, 0), (2, 2, 4)]


def test_pcap_linktype_drops_fcs_flag_bits(tmp_path):
    # 0x10000001: Ethernet, with the "FCS length" bits of the link-type field set.
    [seg], _ = read(write(tmp_path, pcap([(T0, 0, tcp_frame(7))], linktype=0x1000_0001)))
    assert seg.seq == 7


def test_pcapng_two_comments_on_one_packet(tmp_path):
    comments = option(1, b"first comment") + option(1, "zweite \u00e4".encode()) + option(0, b"")
    raw = (shb() + idb() + epb(5_000_000, tcp_frame(1), options=comments)
           + epb(6_000_000, tcp_frame(2)))
    (first, second), _ = read(write(tmp_path, raw, "c.pcapng"))
    assert first.comments == ("first comment", "zweite \u00e4")
    assert (first.seq, first.t, first.frame) == (1, 5.0, 1)
    assert second.comments == ()


@pytest.mark.parametrize("tsresol, ticks, seconds", [
    (0x8A, 1024 * 3 + 512, 3.5),            # 2^-10
    (9, 1_500_000_000, 1.5),                # 10^-9
    (3, 2500, 2.5),                         # 10^-3
])
def test_pcapng_timestamp_resolution(tmp_path, tsresol, ticks, seconds):
    raw = shb() + idb(options=option(9, bytes([tsresol]))) + epb(ticks, tcp_frame(1))
    [seg], _ = read(write(tmp_path, raw, "r.pcapng"))
    assert seg.t == seconds


def test_pcapng_time_offset(tmp_path):
    raw = shb() + idb(options=option(14, struct.pack("<q", 1000))) + epb(2_000_000, tcp_frame(1))
    [seg], _ = read(write(tmp_path, raw, "o.pcapng"))
    assert seg.t == 1002.0


def test_pcapng_sections_of_both_byte_orders(tmp_path):
    # Interface ids restart with each section; the second section is big-endian. Each
    # frame decodes only with its own interface's link type.
    raw = (shb() + idb(1) + idb(113) + epb(1_000_000, sll_frame(1), iface=1)
           + shb(">") + idb(101, endian=">") + epb(2_000_000, tcp_ip(2), endian=">"))
    segs, warnings = read(write(tmp_path, raw, "s.pcapng"))
    assert [(s.seq, s.t, s.frame) for s in segs] == [(1, 1.0, 1), (2, 2.0, 2)]
    assert warnings == []


def test_pcapng_simple_and_obsolete_packet_blocks_and_unknown_blocks(tmp_path):
    frame = tcp_frame(1, payload=10)
    spb = block(3, struct.pack("<I", len(frame)) + frame)
    old_frame = tcp_frame(2)
    old = block(2, struct.pack("<HHIIII", 0, 0, 0, 7_000_000, len(old_frame), 60) + old_frame)
    custom = block(0x0BAD, b"\x00\x00\x7e\x9d whatever")
    # The interface's snaplen (54) cuts the simple block's packet to its headers.
    raw = shb() + idb(snaplen=54) + custom + spb + old + block(4, b"\0" * 8)
    (spb_seg, old_seg), warnings = read(write(tmp_path, raw, "b.pcapng"))
    assert (spb_seg.seq, spb_seg.length, spb_seg.frame) == (1, 10, 1)   # length from IP
    assert (old_seg.seq, old_seg.t, old_seg.frame) == (2, 7.0, 2)
    assert warnings == []


def test_pcapng_packet_on_undefined_interface_is_skipped_with_warning(tmp_path):
    raw = shb() + idb() + epb(1, tcp_frame(1), iface=3) + epb(2, tcp_frame(2))
    segs, warnings = read(write(tmp_path, raw, "u.pcapng"))
    assert [s.seq for s in segs] == [2]
    assert warnings == ["record 1 at byte 48: packet block names an undefined "
                        "interface; skipped"]


def test_large_file_is_read_whole_and_in_order(tmp_path):
    # 4000 records of varied sizes, more than 3 MiB: every one read, in order, and
    # progress reported up to the file's size.
    records = [(T0 + i, i, tcp_frame(i, payload=500 + i % 700)) for i in range(4000)]
    raw = pcap(records, snaplen=0)
    assert len(raw) > 3 << 20
    path = write(tmp_path, raw)
    calls = []
    scan = Scan(path, keep="all", progress=lambda done, size: calls.append((done, size)))
    segs = [seg for s in scan for seg in s.conn.segments]
    assert [(s.seq, s.frame) for s in segs] == [(i, i + 1) for i in range(4000)]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[-1] == (len(raw), len(raw))


def test_pcapng_block_of_several_mebibytes_is_skipped(tmp_path):
    raw = shb() + idb() + block(4, b"\1" * (2 << 20)) + epb(3_000_000, tcp_frame(9))
    [seg], warnings = read(write(tmp_path, raw, "big.pcapng"))
    assert (seg.seq, seg.t, seg.frame) == (9, 3.0, 1)
    assert warnings == []


# -- bad input ---------------------------------------------------------------------------

def error_of(path) -> str:
    with pytest.raises(TcptraceError) as info:
        list(Scan(path))
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "no such file" in error_of(tmp_path / "nope.pcap")


def test_directory(tmp_path):
    assert "is a directory" in error_of(tmp_path)


def test_empty_file(tmp_path):
    assert "empty" in error_of(write(tmp_path, b""))


def test_random_bytes_are_not_a_capture(tmp_path):
    message = error_of(write(tmp_path, random.Random(1).randbytes(4096)))
    assert "not a capture file" in message and "unknown magic" in message


def test_gzip_file_says_so(tmp_path):
    assert "gzip" in error_of(write(tmp_path, b"\x1f\x8b\x08\x00" + bytes(40)))


def test_pcap_header_cut_short(tmp_path):
    assert "too short" in error_of(write(tmp_path, pcap([])[:10]))


def test_pcapng_with_bad_byte_order_magic(tmp_path):
    assert "pcapng" in error_of(write(tmp_path, shb()[:8] + b"\xde\xad\xbe\xef" + shb()[12:]))


@pytest.mark.parametrize("where", ["data", "header"])
def test_real_capture_cut_in_the_middle_of_a_record(tmp_path, where):
    raw = (CAPTURES / "sv_community-id-ipv6.pcap").read_bytes()
    offsets = pcap_offsets(raw, 40)
    cut = offsets[39] + (30 if where == "data" else 9)
    whole, _ = read(CAPTURES / "sv_community-id-ipv6.pcap")
    segs, warnings = read(write(tmp_path, raw[:cut]))
    assert segs == [s for s in whole if s.frame <= 39]
    need = 16 + struct.unpack_from("<I", raw, offsets[39] + 8)[0] if where == "data" else 16
    assert warnings == [f"record 40 at byte {offsets[39]}: file ends in the middle of "
                        f"the record ({cut - offsets[39]} of {need} bytes); stopped there"]


def test_pcapng_cut_in_the_middle_of_a_block(tmp_path):
    raw = (CAPTURES / "cs_http_ip4and6.pcapng").read_bytes()
    whole, _ = read(CAPTURES / "cs_http_ip4and6.pcapng")
    segs, warnings = read(write(tmp_path, raw[:-50], "cut.pcapng"))
    assert len(whole) == 20 and segs == whole[:19]
    assert len(warnings) == 1 and "file ends in the middle" in warnings[0]


@pytest.mark.parametrize("junk", [b"\xff\xff\xff", b"\x00" * 7, random.Random(2).randbytes(301)])
def test_junk_between_records_is_skipped(tmp_path, junk):
    good = [(T0 + i, 1000 * i, tcp_frame(i, payload=6 + i)) for i in range(6)]
    raw = pcap(good[:3])
    raw += junk + pcap(good[3:])[24:]
    segs, warnings = read(write(tmp_path, raw))
    assert [(s.seq, s.length) for s in segs] == [(i, 6 + i) for i in range(6)]
    assert warnings == [f"record 4 at byte {len(pcap(good[:3]))}: damaged record header; "
                        f"skipped {len(junk)} bytes and resynchronised"]


@pytest.mark.parametrize("field, value", [(1, 1_000_000), (2, 300_000), (3, 5)])
def test_implausible_record_header_is_skipped(tmp_path, field, value):
    # Record 2 claims a microsecond count of a full second, more captured bytes than
    # libpcap's 256 KiB maximum, or more captured bytes than the packet had: it is
    # skipped with its data.
    frames = [tcp_frame(i) for i in range(4)]
    raw = bytearray(pcap([(T0 + i, 0, f) for i, f in enumerate(frames)]))
    second = 24 + 16 + len(frames[0])
    struct.pack_into("<I", raw, second + 4 * field, value)
    segs, warnings = read(write(tmp_path, bytes(raw)))
    assert [s.t for s in segs] == [T0, T0 + 2, T0 + 3]
    assert warnings == [f"record 2 at byte {second}: damaged record header; skipped "
                        f"{16 + len(frames[1])} bytes and resynchronised"]


def test_record_longer_than_the_header_snaplen_is_read(tmp_path):
    # libpcap and Wireshark read records up to 256 KiB whatever the header's snaplen
    # says: some writers put a wrong snaplen in the file header.
    records = [(T0, 0, tcp_frame(1, payload=100)), (T0 + 1, 0, tcp_frame(2, payload=30))]
    segs, warnings = read(write(tmp_path, pcap(records, snaplen=64)))
    assert [(s.seq, s.length) for s in segs] == [(1, 100), (2, 30)]
    assert warnings == []


def test_junk_to_the_end_stops_with_a_warning(tmp_path):
    first = pcap([(T0, 0, tcp_frame(1))])
    segs, warnings = read(write(tmp_path, first + b"\xff" * 100))
    assert [s.seq for s in segs] == [1]
    assert warnings == [f"record 2 at byte {len(first)}: damaged record header; no valid "
                        "record in the remaining 100 bytes; stopped there"]


def test_resync_lands_on_the_last_record_when_it_ends_the_file(tmp_path):
    raw = (pcap([(T0, 0, tcp_frame(1))]) + b"\xee" * 5
           + pcap([(T0 + 1, 0, tcp_frame(2))])[24:])
    segs, warnings = read(write(tmp_path, raw))
    assert [s.seq for s in segs] == [1, 2]
    assert len(warnings) == 1 and "skipped 5 bytes" in warnings[0]


def test_pcapng_damaged_block_length_resynchronises(tmp_path):
    blocks = [shb(), idb()] + [epb(i * 1_000_000, tcp_frame(i, payload=10)) for i in range(4)]
    raw = bytearray(b"".join(blocks))
    third = sum(map(len, blocks[:4]))
    struct.pack_into("<I", raw, third + 4, 0xFFFF)        # the 3rd packet's length is wrong
    segs, warnings = read(write(tmp_path, bytes(raw), "d.pcapng"))
    assert [s.seq for s in segs] == [0, 1, 3]
    assert warnings == [f"record 3 at byte {third}: damaged record header; skipped "
                        f"{len(blocks[4])} bytes and resynchronised"]
