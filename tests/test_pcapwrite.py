"""pcapng/pcap writing: exact round trip, comments for Wireshark, all-or-nothing files."""

from __future__ import annotations

import os
import struct
import subprocess

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapReader

from tcptrace.errors import TcptraceError
from tcptrace.live.bpf import SNAPLEN
from tcptrace.pcapwrite import write_capture

TS = [1795759443.1710446, 1795759443.9999999, 1795759444.000001]
FRAMES = [
    (TS[0], bytes(Ether() / IP(src="127.0.0.2", dst="127.0.0.1") / TCP(flags="S"))),
    (TS[1], bytes(Ether() / IP(src="127.0.0.1", dst="127.0.0.2") / TCP(flags="SA"))),
    # A full loopback frame: 14 bytes beyond 65535.
    (TS[2], bytes(Ether() / IP(src="127.0.0.2", dst="127.0.0.1") / TCP(flags="A")
                  / (b"x" * (65535 - 40)))),
]
COMMENTS = [["client connect(): SYN"], [], ["ACK completes the handshake", "1 → 2, with comma"]]


def read_back(path) -> list:
    """scapy's rdpcap cuts frames at 65535 bytes; a full loopback frame is 65549."""
    packets = []
    with PcapReader(str(path)) as reader:
        while True:
            try:
                packets.append(reader.read_packet(size=SNAPLEN))
            except EOFError:
                return packets


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True)


def test_pcapng_round_trip_with_comments(tmp_path):
    path = tmp_path / "run.pcapng"
    write_capture(path, FRAMES, COMMENTS)
    packets = read_back(path)
    assert [bytes(p) for p in packets] == [data for _, data in FRAMES]
    for p, ts in zip(packets, TS, strict=True):
        assert abs(float(p.time) - ts) < 1e-7  # nanosecond resolution in the file
    assert [p.comments or [] for p in packets] == [[c.encode() for c in cs] for cs in COMMENTS]


def test_tshark_shows_comments(tmp_path, tshark):
    path = tmp_path / "run.pcapng"
    write_capture(path, FRAMES, COMMENTS)
    result = run(tshark, "-r", path, "-T", "fields", "-E", "aggregator=|", "-e", "frame.comment")
    assert result.stdout.split("\n")[:3] == ["|".join(cs) for cs in COMMENTS]


@pytest.mark.parametrize("name, frames", [("run.pcapng", FRAMES), ("run.pcap", FRAMES),
                                          ("empty.pcapng", [])])
def test_tshark_reads_without_warnings(tmp_path, tshark, name, frames):
    write_capture(tmp_path / name, frames)
    result = run(tshark, "-r", tmp_path / name, "-T", "fields", "-e", "frame.protocols")
    assert result.stdout.split() == ["eth:ethertype:ip:tcp"] * len(frames)
    assert [line for line in result.stderr.splitlines() if "Running as user" not in line] == []


@pytest.mark.parametrize("name", ["run.pcap", "RUN.PCAP"])
def test_classic_pcap_when_named_so(tmp_path, name):
    path = tmp_path / name
    write_capture(path, FRAMES, COMMENTS)
    assert path.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")  # microsecond pcap, LE
    packets = read_back(path)
    assert [bytes(p) for p in packets] == [data for _, data in FRAMES]
    for p, ts in zip(packets, TS, strict=True):
        assert abs(float(p.time) - ts) <= 5e-7 + 1e-9


def test_new_file_mode_follows_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        write_capture(tmp_path / "run.pcapng", FRAMES)
    finally:
        os.umask(umask)
    assert (tmp_path / "run.pcapng").stat().st_mode & 0o777 == 0o644


def test_missing_directory_is_one_line_error(tmp_path):
    target = tmp_path / "nope" / "run.pcapng"
    with pytest.raises(TcptraceError, match=r"^cannot write .*: No such file or directory$"):
        write_capture(target, FRAMES)
    assert not target.parent.exists()


def test_directory_as_target_is_one_line_error(tmp_path):
    (tmp_path / "run.pcapng").mkdir()
    with pytest.raises(TcptraceError, match="cannot write"):
        write_capture(tmp_path / "run.pcapng", FRAMES)
    assert os.listdir(tmp_path) == ["run.pcapng"]


def test_failure_midway_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "run.pcapng"
    write_capture(path, FRAMES, COMMENTS)
    before = path.read_bytes()
    with pytest.raises(struct.error):
        write_capture(path, FRAMES + [(-1.0, b"bad timestamp")])  # fails after some blocks
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.pcapng"]


def test_comment_lists_must_match_frames(tmp_path):
    with pytest.raises(ValueError):
        write_capture(tmp_path / "run.pcapng", FRAMES, COMMENTS[:1])
