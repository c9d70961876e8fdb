"""The benchmark's synthetic captures, checked two ways: the summary must give every
connection the verdict the generator scripted (fresh seeds each run, so captures the
tests have never seen), and tshark must read the file as we do."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import subprocess
from collections import Counter

import pytest

from tcptrace.bench import accuracy, first_difference
from tcptrace.bench.synth import (
    KINDS,
    TAIL_KINDS,
    VERDICT_FIELDS,
    ensure,
    generate,
    header_then_zeros,
    load_truth,
    one_syn_capture,
)
from tcptrace.engine import Scan

SEEDS = [random.randrange(1 << 30) for _ in range(3)]


def verdicts(path, **options) -> dict[tuple, tuple]:
    return {(s.conn.client, s.conn.server, round(s.first * 1e6)):
            tuple(getattr(s.verdict, k) for k in VERDICT_FIELDS)
            for s in Scan(path, **options)}


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_every_verdict_matches_the_generator(tmp_path, seed):
    path = tmp_path / "synth.pcap"
    expected, _ = generate(path, 800, seed)
    got = verdicts(path)
    assert len(got) == len(expected)
    wrong = [(e.kind, got.get((e.client, e.server, e.start_us)))
             for e in expected
             if got.get((e.client, e.server, e.start_us))
             != tuple(getattr(e, k) for k in VERDICT_FIELDS)]
    assert wrong == [], f"seed {seed}"


def test_the_capture_holds_every_kind_loopback_and_port_reuse(tmp_path):
    expected, max_open = generate(tmp_path / "synth.pcap", 2000, 5)
    assert set(Counter(e.kind for e in expected)) == set(KINDS) | set(TAIL_KINDS)
    loopback = [e for e in expected if e.client.startswith("127.0.0.1:")]
    assert 0.05 < len(loopback) / len(expected) < 0.15
    assert all(e.server.startswith("127.0.0.1:") for e in loopback)
    reused = Counter((e.client, e.server) for e in loopback)
    assert max(reused.values()) > 1                 # a 4-tuple used again
    assert {e.kind for e in expected if e.simultaneous} == {"simultaneous-client",
                                                            "simultaneous-server"}
    assert max_open > 100


def test_short_linger_forgets_early_and_stays_right(tmp_path):
    path = tmp_path / "synth.pcap"
    expected, max_open = generate(path, 1500, 11, rate=20)
    run = Scan(path, linger=0.5)
    got = {(s.conn.client, s.conn.server, round(s.first * 1e6)): s for s in run}
    assert all(tuple(getattr(got[e.client, e.server, e.start_us].verdict, k)
                     for k in VERDICT_FIELDS) == tuple(getattr(e, k) for k in VERDICT_FIELDS)
               for e in expected)
    assert run._scan.peak_open < 2 * max_open < len(expected)


def test_generation_is_deterministic_and_cached(tmp_path):
    first = ensure(tmp_path, 300, seed=3)
    digest = hashlib.sha256(open(first[0], "rb").read()).hexdigest()
    assert ensure(tmp_path, 300, seed=3) == first
    again, _ = generate(tmp_path / "again.pcap", 300, 3)
    assert hashlib.sha256(open(tmp_path / "again.pcap", "rb").read()).hexdigest() == digest
    assert load_truth(first[1])[0] == again


def test_bench_accuracy_reads_our_json_lines(tmp_path):
    path = tmp_path / "synth.pcap"
    expected, _ = generate(path, 200, 2)
    out = tmp_path / "out.jsonl"
    scan = Scan(path)
    out.write_text("".join(s.json_line() + "\n" for s in scan))
    acc, segments = accuracy(expected, out)
    assert (acc.right, acc.missing, acc.extra, acc.wrong) == (200, 0, 0, [])
    bad = expected[0]._replace(close="open")
    acc, _ = accuracy([bad] + expected[1:], out)
    assert acc.right == 199 and acc.wrong[0][0] == bad
    assert segments == scan.segments


def test_tshark_reads_the_synthetic_capture(tmp_path, tshark):
    path = tmp_path / "synth.pcap"
    generate(path, 100, 4)
    out = subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout.split()
    scan = Scan(path)
    list(scan)
    assert len(out) == scan.segments
    assert len(set(out)) == 100                     # no port reuse at this size


def test_one_syn_capture_is_n_unanswered_connections(tmp_path):
    path = tmp_path / "syns.pcap"
    one_syn_capture(path, 500)
    got = list(Scan(path))
    assert len(got) == 500
    assert {s.verdict.close for s in got} == {"unanswered"}
    assert len({s.conn.client for s in got}) == 500


def test_tshark_reads_one_syn_capture_as_n_syns(tmp_path, tshark):
    path = tmp_path / "syns.pcap"
    one_syn_capture(path, 3000)
    out = subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "tcp.flags", "-e",
                          "ip.src", "-e", "tcp.srcport"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == 3000
    assert {line.split()[0] for line in out} == {"0x0002"}      # a SYN and nothing else
    assert len(set(out)) == 3000                                # each its own client


def test_header_then_zeros_is_sparse(tmp_path):
    path = tmp_path / "zeros.pcap"
    header_then_zeros(path, 1 << 30)
    st = os.stat(path)
    assert st.st_size == 1 << 30 and st.st_blocks * 512 < 1 << 20
    with open(path, "rb") as f:
        magic, major, minor, _, _, _, linktype = struct.unpack("<IHHiIII", f.read(24))
        assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
        assert f.read(1 << 16) == bytes(1 << 16)


def test_first_difference(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1\n2\n3\n")
    b.write_bytes(b"1\n2\n3\n")
    assert first_difference(a, b) is None
    b.write_bytes(b"1\n2\n")
    assert first_difference(a, b) == 3
    b.write_bytes(b"1\nX\n3\n")
    assert first_difference(a, b) == 2
