"""The capture-file reader: real captures, hand-built pcap/pcapng files, damaged input."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tcptrace.errors import TcptraceError
from tcptrace.pcapfile import CHUNK, CaptureReader, read_records

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures-real"

# File -> (records, link types), as the "Pkts" and "Link type" columns of the README table
# in CAPTURES state them. The corrupt file holds 199 records for a reader that resyncs.
README_TABLE = {
    "cs_tcp_teardown.pcapng": (4, {1}),
    "cs_nowebaccess2.pcapng": (8, {1}),
    "cs_tcp_zerowindowrecovery.pcapng": (7, {1}),
    "cs_tcp_zerowindowdead.pcapng": (8, {1}),
    "cs_http_ip4and6.pcapng": (20, {1}),
    "lw_200722_tcp_anon.pcapng": (35, {1}),
    "lw_simple_http_sll2.pcap": (24, {276}),
    "zeek_http_get-gzip.pcap": (14, {1}),
    "zeek_tcp_fin_retransmission.pcap": (5, {1}),
    "zeek_http_206_example_b.pcap": (1556, {1}),
    "zeek_http-vlan-0.pcap": (14, {1}),
    "zeek_vlan-collisions.pcap": (42, {1}),
    "zeek_tls_irc-starttls.pcap": (20, {113}),
    "zeek_tcp_truncated-header.pcap": (24, {1}),
    "zeek_nmap-vsn.pcap": (547, {1}),
    "zeek_ftp_ipv6-violation.pcap": (19, {1}),
    "zeek_redis_attr.pcap": (28, {0}),
    "zeek_ldap_modify-request.pcapng": (17, {1}),
    "zeek_http_get-to-ssh-server.pcap": (9, {1}),
    "sv_community-id-ipv6.pcap": (70, {1}),
    "sv_mqtt-limit-2.pcap": (37, {1}),
    "sv_tcp-empty-sack_tcp-opt.pcap": (42, {101}),
    "sv_smtp-to-comma_corrupt.pcap": (199, {1}),
    "tcpreplay_test.pcap": (179, {1}),
    "tcpdump_pptp.pcap": (23, {1}),
}
CORRUPT = "sv_smtp-to-comma_corrupt.pcap"
T0 = 1_600_000_000      # a realistic capture time: resync rejects records far from the last


def need_tshark() -> None:
    """Skip a cross-check when tshark is missing, except in CI where it must be there."""
    if shutil.which("tshark") is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is required in CI for the cross-checks against it")
        pytest.skip("tshark is not installed (apt install tshark) - cross-check skipped")


def tshark_times(path: Path) -> list[float]:
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=False).stdout
    return [float(line) for line in out.split()]


# -- real captures -----------------------------------------------------------------------

def test_readme_table_covers_every_capture():
    assert sorted(README_TABLE) == sorted(p.name for p in CAPTURES.glob("*.pcap*"))


@pytest.mark.parametrize("name", sorted(README_TABLE))
def test_real_capture_counts_and_link_types(name):
    reader = CaptureReader(CAPTURES / name)
    records = list(reader)
    count, linktypes = README_TABLE[name]
    assert len(records) == count
    assert {r.linktype for r in records} == linktypes
    assert [r.index for r in records] == list(range(1, count + 1))
    assert all(len(r.data) <= r.orig_len for r in records)
    assert reader.bytes_read == reader.size == (CAPTURES / name).stat().st_size
    assert bool(reader.warnings) == (name == CORRUPT)


@pytest.mark.parametrize("name", [
    "zeek_http_get-to-ssh-server.pcap",     # nanosecond timestamps
    "tcpdump_pptp.pcap",                    # big-endian
    "cs_http_ip4and6.pcapng",
    "zeek_ldap_modify-request.pcapng",      # 126 interface blocks
    "lw_simple_http_sll2.pcap",
    "zeek_redis_attr.pcap",
    CORRUPT,                                # tshark stops at the damage
])
def test_timestamps_match_tshark(name):
    need_tshark()
    expected = tshark_times(CAPTURES / name)
    got = [r.ts for r in read_records(CAPTURES / name)][:len(expected)]
    assert expected and got == pytest.approx(expected, abs=1e-6, rel=0)


def test_nanosecond_file_keeps_sub_microsecond_digits():
    first = next(read_records(CAPTURES / "zeek_http_get-to-ssh-server.pcap"))
    raw = (CAPTURES / "zeek_http_get-to-ssh-server.pcap").read_bytes()
    sec, nsec = struct.unpack_from("<II", raw, 24)
    assert raw[:4] == bytes.fromhex("4d3cb2a1")
    assert first.ts == pytest.approx(sec + nsec / 1e9, abs=1e-7, rel=0)


def test_big_endian_pcap():
    raw = (CAPTURES / "tcpdump_pptp.pcap").read_bytes()
    assert raw[:4] == bytes.fromhex("a1b2c3d4")
    records = list(read_records(CAPTURES / "tcpdump_pptp.pcap"))
    sec, usec, caplen, orig = struct.unpack_from(">IIII", raw, 24)
    assert records[0].ts == pytest.approx(sec + usec / 1e6, abs=1e-7, rel=0)
    assert (len(records[0].data), records[0].orig_len) == (caplen, orig)
    assert records[0].data == raw[40:40 + caplen]


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
    reader = CaptureReader(CAPTURES / CORRUPT)
    records = list(reader)
    assert len(records) == 199
    assert reader.warnings == [f"record 19 at byte {damage_at}: damaged record header; "
                               "skipped 3 bytes and resynchronised"]
    sec, usec = struct.unpack_from("<II", raw, damage_at + 3)
    assert records[18].ts == sec + usec / 1e6
    assert 0 <= records[18].ts - records[17].ts < 60


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
    path = write(tmp_path, pcap([(1_700_000_000, 123_456_789, b"abc"),
                                 (1_700_000_001, 999_999_999, b"defg", 70)],
                                endian=">", nano=True, linktype=101))
    first, second = read_records(path)
    assert first.ts == 1_700_000_000 + 123_456_789 / 1e9
    assert second.ts == 1_700_000_001 + 999_999_999 / 1e9
    assert (first.linktype, first.data, first.orig_len) == (101, b"abc", 3)
    assert (second.data, second.orig_len, second.index) == (b"defg", 70, 2)


def test_pcap_linktype_drops_fcs_flag_bits(tmp_path):
    path = write(tmp_path, pcap([(1, 0, b"x")], linktype=0x1000_0001))
    assert next(read_records(path)).linktype == 1


def test_pcapng_two_comments_on_one_packet(tmp_path):
    comments = option(1, b"first comment") + option(1, "zweite \u00e4".encode()) + option(0, b"")
    raw = shb() + idb() + epb(5_000_000, b"frame", options=comments) + epb(6_000_000, b"next")
    first, second = read_records(write(tmp_path, raw, "c.pcapng"))
    assert first.comments == ("first comment", "zweite \u00e4")
    assert (first.data, first.orig_len, first.ts) == (b"frame", 15, 5.0)
    assert second.comments == ()


@pytest.mark.parametrize("tsresol, ticks, seconds", [
    (0x8A, 1024 * 3 + 512, 3.5),            # 2^-10
    (9, 1_500_000_000, 1.5),                # 10^-9
    (3, 2500, 2.5),                         # 10^-3
])
def test_pcapng_timestamp_resolution(tmp_path, tsresol, ticks, seconds):
    raw = shb() + idb(options=option(9, bytes([tsresol]))) + epb(ticks, b"x")
    assert next(read_records(write(tmp_path, raw, "r.pcapng"))).ts == seconds


def test_pcapng_time_offset(tmp_path):
    raw = shb() + idb(options=option(14, struct.pack("<q", 1000))) + epb(2_000_000, b"x")
    assert next(read_records(write(tmp_path, raw, "o.pcapng"))).ts == 1002.0


def test_pcapng_sections_of_both_byte_orders(tmp_path):
    # Interface ids restart with each section; the second section is big-endian.
    raw = (shb() + idb(1) + idb(113) + epb(1_000_000, b"a", iface=1)
           + shb(">") + idb(101, endian=">") + epb(2_000_000, b"b", endian=">"))
    records = list(read_records(write(tmp_path, raw, "s.pcapng")))
    assert [(r.linktype, r.data, r.ts) for r in records] == [(113, b"a", 1.0), (101, b"b", 2.0)]


def test_pcapng_simple_and_obsolete_packet_blocks_and_unknown_blocks(tmp_path):
    spb = block(3, struct.pack("<I", 9) + b"simple!!!")
    old = block(2, struct.pack("<HHIIII", 0, 0, 0, 7_000_000, 3, 60) + b"old")
    custom = block(0x0BAD, b"\x00\x00\x7e\x9d whatever")
    raw = shb() + idb(snaplen=5) + custom + spb + old + block(4, b"\0" * 8)
    spb_rec, old_rec = read_records(write(tmp_path, raw, "b.pcapng"))
    assert (spb_rec.data, spb_rec.orig_len) == (b"simpl", 9)      # the interface's snaplen
    assert (old_rec.data, old_rec.orig_len, old_rec.ts, old_rec.index) == (b"old", 60, 7.0, 2)


def test_pcapng_packet_on_undefined_interface_is_skipped_with_warning(tmp_path):
    raw = shb() + idb() + epb(1, b"bad", iface=3) + epb(2, b"good")
    reader = CaptureReader(write(tmp_path, raw, "u.pcapng"))
    assert [r.data for r in reader] == [b"good"]
    assert reader.warnings == ["record 1 at byte 48: packet block names an undefined "
                               "interface; skipped"]


def test_large_file_streams_across_chunks(tmp_path):
    # Records straddle the 1 MiB chunk boundaries; each one's bytes encode its number.
    records = [(1000 + i, i, struct.pack("<I", i) * (200 + i % 700)) for i in range(4000)]
    raw = pcap(records, snaplen=0)
    assert len(raw) > 3 * CHUNK
    reader = CaptureReader(write(tmp_path, raw))
    seen, progress = [], []
    for rec in reader:
        seen.append(rec)
        progress.append(reader.bytes_read)
    assert [r.data for r in seen] == [r[2] for r in records]
    assert progress == sorted(progress) and progress[-1] == len(raw)


def test_pcapng_block_larger_than_a_chunk(tmp_path):
    raw = shb() + idb() + block(4, b"\1" * (CHUNK * 2)) + epb(3_000_000, b"after")
    assert [r.data for r in read_records(write(tmp_path, raw, "big.pcapng"))] == [b"after"]


# -- bad input ---------------------------------------------------------------------------

def error_of(path) -> str:
    with pytest.raises(TcptraceError) as info:
        list(CaptureReader(path))
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
    reader = CaptureReader(write(tmp_path, raw[:cut]))
    records = list(reader)
    assert len(records) == 39
    need = 16 + struct.unpack_from("<I", raw, offsets[39] + 8)[0] if where == "data" else 16
    assert reader.warnings == [f"record 40 at byte {offsets[39]}: file ends in the middle of "
                               f"the record ({cut - offsets[39]} of {need} bytes); stopped there"]


def test_pcapng_cut_in_the_middle_of_a_block(tmp_path):
    raw = (CAPTURES / "cs_http_ip4and6.pcapng").read_bytes()
    reader = CaptureReader(write(tmp_path, raw[:-50], "cut.pcapng"))
    assert len(list(reader)) == 19
    assert len(reader.warnings) == 1 and "file ends in the middle" in reader.warnings[0]


@pytest.mark.parametrize("junk", [b"\xff\xff\xff", b"\x00" * 7, random.Random(2).randbytes(301)])
def test_junk_between_records_is_skipped(tmp_path, junk):
    good = [(T0 + i, 1000 * i, bytes([i]) * (60 + i)) for i in range(6)]
    raw = pcap(good[:3])
    raw += junk + pcap(good[3:])[24:]
    reader = CaptureReader(write(tmp_path, raw))
    assert [r.data for r in reader] == [r[2] for r in good]
    assert reader.warnings == [f"record 4 at byte {len(pcap(good[:3]))}: damaged record header; "
                               f"skipped {len(junk)} bytes and resynchronised"]


@pytest.mark.parametrize("field, value", [(1, 1_000_000), (2, 300_000), (3, 5)])
def test_implausible_record_header_is_skipped(tmp_path, field, value):
    # Record 2 claims a microsecond count of a full second, more captured bytes than
    # libpcap's 256 KiB maximum, or more captured bytes than the packet had: it is
    # skipped with its data.
    records = [(T0 + i, 0, b"x" * 20) for i in range(4)]
    raw = bytearray(pcap(records))
    second = 24 + 36
    struct.pack_into("<I", raw, second + 4 * field, value)
    reader = CaptureReader(write(tmp_path, bytes(raw)))
    assert [r.ts for r in reader] == [T0, T0 + 2, T0 + 3]
    assert reader.warnings == [f"record 2 at byte {second}: damaged record header; skipped "
                               "36 bytes and resynchronised"]


def test_record_longer_than_the_header_snaplen_is_read(tmp_path):
    # libpcap and Wireshark read records up to 256 KiB whatever the header's snaplen
    # says: some writers put a wrong snaplen in the file header.
    records = [(T0, 0, b"a" * 100), (T0 + 1, 0, b"b" * 30)]
    reader = CaptureReader(write(tmp_path, pcap(records, snaplen=64)))
    assert [r.data for r in reader] == [b"a" * 100, b"b" * 30]
    assert reader.warnings == []


def test_junk_to_the_end_stops_with_a_warning(tmp_path):
    raw = pcap([(T0, 0, b"abc")]) + b"\xff" * 100
    reader = CaptureReader(write(tmp_path, raw))
    assert [r.data for r in reader] == [b"abc"]
    assert reader.warnings == ["record 2 at byte 43: damaged record header; no valid record in "
                               "the remaining 100 bytes; stopped there"]


def test_resync_lands_on_the_last_record_when_it_ends_the_file(tmp_path):
    raw = pcap([(T0, 0, b"abc")]) + b"\xee" * 5 + pcap([(T0 + 1, 0, b"last")])[24:]
    reader = CaptureReader(write(tmp_path, raw))
    assert [r.data for r in reader] == [b"abc", b"last"]
    assert "skipped 5 bytes" in reader.warnings[0]


def test_junk_across_a_chunk_boundary(tmp_path):
    records = [(T0, i, bytes([i % 251]) * 1000) for i in range(2200)]
    head = pcap(records[:1030])
    assert len(head) < CHUNK < len(head) + 3000
    raw = head + b"\x99" * 3000 + pcap(records[1030:])[24:]
    reader = CaptureReader(write(tmp_path, raw))
    assert [r.data for r in reader] == [r[2] for r in records]
    assert reader.warnings == [f"record 1031 at byte {len(head)}: damaged record header; "
                               "skipped 3000 bytes and resynchronised"]


def test_pcapng_damaged_block_length_resynchronises(tmp_path):
    blocks = [shb(), idb()] + [epb(i * 1_000_000, bytes([65 + i]) * 10) for i in range(4)]
    raw = bytearray(b"".join(blocks))
    third = sum(map(len, blocks[:4]))
    struct.pack_into("<I", raw, third + 4, 0xFFFF)        # the 3rd packet's length is wrong
    reader = CaptureReader(write(tmp_path, bytes(raw), "d.pcapng"))
    assert [r.data for r in reader] == [b"A" * 10, b"B" * 10, b"D" * 10]
    assert reader.warnings == [f"record 3 at byte {third}: damaged record header; skipped "
                               f"{len(blocks[4])} bytes and resynchronised"]
