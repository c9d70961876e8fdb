"""The benchmark's synthetic captures, checked two ways: the summary must give every
connection the verdict the generator scripted (fresh seeds each run, so captures the
tests have never seen), and tshark must read the file as we do."""

from __future__ import annotations

import hashlib
import random
import subprocess
from collections import Counter

import pytest

from tcptrace.bench import accuracy
from tcptrace.bench.synth import KINDS, TAIL_KINDS, VERDICT_FIELDS, ensure, generate, load_truth
from tcptrace.render.summary import json_line
from tcptrace.summary import Summariser

SEEDS = [random.randrange(1 << 30) for _ in range(3)]


def verdicts(path, **options) -> dict[tuple, tuple]:
    return {(s.conn.client, s.conn.server, round(s.first * 1e6)):
            tuple(getattr(s.verdict, k) for k in VERDICT_FIELDS)
            for s in Summariser(path, **options)}


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
    run = Summariser(path, linger=0.5)
    got = {(s.conn.client, s.conn.server, round(s.first * 1e6)): s for s in run}
    assert all(tuple(getattr(got[e.client, e.server, e.start_us].verdict, k)
                     for k in VERDICT_FIELDS) == tuple(getattr(e, k) for k in VERDICT_FIELDS)
               for e in expected)
    assert run.peak_open < 2 * max_open < len(expected)


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
    out.write_text("".join(json_line(s) + "\n" for s in Summariser(path)))
    acc, segments = accuracy(expected, out)
    assert (acc.right, acc.missing, acc.extra, acc.wrong) == (200, 0, 0, [])
    bad = expected[0]._replace(close="open")
    acc, _ = accuracy([bad] + expected[1:], out)
    assert acc.right == 199 and acc.wrong[0][0] == bad
    assert segments == sum(1 for _ in Summariser(path).reader)


def test_tshark_reads_the_synthetic_capture(tmp_path, tshark):
    path = tmp_path / "synth.pcap"
    generate(path, 100, 4)
    out = subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == sum(1 for _ in Summariser(path).reader)
    assert len(set(out)) == 100                     # no port reuse at this size
