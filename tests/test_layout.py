"""`replay`'s output at any width from 80 columns up, piped, and in ASCII: no line
longer than the width, nothing cut (every frame number, time, state name, seq/ack/len
and endpoint printed whole), frame numbers as tshark numbers frames, legends, --close.

Everything runs the real command in a subprocess (the console is sized at start-up)
on real captures; the expected values come from the same capture read in-process.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tcptrace import replay as rp
from tcptrace.bench.synth import generate
from tcptrace.render.ladder import TAG_MEANINGS

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES
from conftest import run_tcptrace as tcptrace

WIDTHS = (80, 120, 200)
LADDERS = [PROJECT_CAPTURES / "close-end.pcapng", PROJECT_CAPTURES / "close-reset.pcapng",
           PROJECT_CAPTURES / "close-unread-node.pcapng",
           PROJECT_CAPTURES / "close-half-close.pcapng",
           SHARED_CAPTURES / "zeek_http_get-gzip.pcap",
           SHARED_CAPTURES / "cs_tcp_zerowindowrecovery.pcapng",
           SHARED_CAPTURES / "sv_community-id-ipv6.pcap",
           SHARED_CAPTURES / "zeek_http_206_example_b.pcap"]
TABLES = [SHARED_CAPTURES / "tcpreplay_test.pcap", SHARED_CAPTURES / "sv_community-id-ipv6.pcap"]


def widths_of(out: str) -> int:
    return max(len(line) for line in out.splitlines())


def ladder_blocks(out: str) -> tuple[str, list[list[str]]]:
    """The ladder's header line and its rows: each segment's lines (the row with its
    frame number, then its continuation lines up to the next row or the end)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("frame "))
    blocks: list[list[str]] = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        if re.match(r"\s*(\d+|-)\s+\d+\.\d{3}\s", line):     # "-": an inferred segment
            blocks.append([line])
        elif blocks:        # a row's continuation, or a row with no segment (live close)
            blocks[-1].append(line)
    return lines[start], blocks


def expected_views(path: Path, stream: int = 0):
    listing = rp.list_connections(path, stream)
    return rp.analyse(listing.kept)[0]


def check_ladder(out: str, views, width: int) -> None:
    """Every segment's row: its frame number, time, both states, flags and numbers,
    whole, in the right columns; no line longer than `width`."""
    assert widths_of(out) <= width
    header, blocks = ladder_blocks(out)
    client, server = header.index("client"), header.index("server")
    assert len(blocks) == len(views)
    for block, view in zip(blocks, views, strict=True):
        first = block[0]
        frame, ms = first.split()[:2]
        # An inferred segment is in no record of the capture: "-", frame 0 in the engine.
        assert frame == ("-" if "inferred" in view.tags else str(view.segment.frame))
        assert ms == f"{view.t * 1000:.3f}"
        assert first[client:].split()[0] == view.client_state
        assert first[server:].split()[0] == view.server_state
        words = " ".join(block).split()
        numbers = [f"seq={view.seq}", f"ack={view.ack}"] + \
            ([f"len={view.length}"] if view.length else [])
        assert "+".join(view.flags) in words and set(numbers) <= set(words)
        assert "…" not in "".join(block)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", LADDERS, ids=lambda p: p.name)
def test_ladder_fits_every_width_and_cuts_nothing(path, width):
    proc = tcptrace("replay", path, "--stream", 0, "--width", width)
    assert proc.code == 0, proc.err
    check_ladder(proc.out, expected_views(path), width)


@pytest.mark.parametrize("path", LADDERS[:4] + LADDERS[-2:], ids=lambda p: p.name)
def test_piped_ladder_honours_columns_without_trailing_blanks(path):
    proc = tcptrace("replay", path, "--stream", 0, env={"COLUMNS": "80"})
    assert proc.code == 0, proc.err
    check_ladder(proc.out, expected_views(path), 80)
    assert all(line == line.rstrip() for line in proc.out.splitlines())


def test_why_goes_under_the_arrow_when_narrow_and_beside_when_wide():
    path = PROJECT_CAPTURES / "close-end.pcapng"
    narrow = ladder_blocks(tcptrace("replay", path, "--width", 80).out)
    wide = ladder_blocks(tcptrace("replay", path, "--width", 200).out)
    assert "why" not in narrow[0] and "why" in wide[0]
    assert all(len(block) >= 2 for block in narrow[1])      # a second line per segment
    assert [len(block) for block in wide[1]] == [1] * len(wide[1])
    assert "client opens: SYN" in narrow[1][0][1] and "client opens: SYN" in wide[1][0][0]


def test_json_frame_numbers_are_tsharks(tshark):
    for path in (SHARED_CAPTURES / "zeek_http_get-gzip.pcap",
                 SHARED_CAPTURES / "tcpreplay_test.pcap", PROJECT_CAPTURES / "close-end.pcapng"):
        doc = json.loads(tcptrace("replay", path, "--json").out)
        fields = subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "frame.number",
                                 "-e", "tcp.stream", "-Y", "tcp"],
                                capture_output=True, text=True, check=True).stdout
        by_stream: dict[str, list[int]] = {}
        for line in fields.splitlines():
            number, stream = line.split("\t")
            by_stream.setdefault(stream, []).append(int(number))
        ours = sorted(sorted(p["frame"] for p in c["packets"]) for c in doc["connections"])
        assert ours == sorted(by_stream.values()), path.name


def test_close_shows_the_close_and_what_was_skipped():
    path = SHARED_CAPTURES / "zeek_http_206_example_b.pcap"
    views = expected_views(path)
    first = next(i for i, v in enumerate(views) if {"FIN", "RST"} & set(v.flags))
    out = tcptrace("replay", path, "--stream", 0, "--close", "--width", 80).out
    check_ladder(out, views[first - 3:], 80)
    assert f"({first - 3:,} earlier segments skipped" in out
    full = tcptrace("replay", path, "--stream", 0, "--width", 200).out
    assert "skipped" not in full and len(ladder_blocks(full)[1]) == len(views)


def test_legend_explains_the_tags_present_and_goes_with_no_legend():
    path = SHARED_CAPTURES / "zeek_http_get-gzip.pcap"
    tags = {t for v in expected_views(path) for t in v.tags}
    out = tcptrace("replay", path, "--width", 100).out
    legend = out[out.index("Legend"):]
    for tag in TAG_MEANINGS:
        assert (f"[{tag}]" in legend) == (tag in tags)
    assert "a segment, towards its receiver" in legend
    assert "Legend" not in tcptrace("replay", path, "--no-legend").out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.name)
def test_table_keeps_the_essential_columns_at_every_width(path, width):
    proc = tcptrace("replay", path, "--width", width)
    out = proc.out
    assert proc.code == 0, proc.err
    assert widths_of(out) <= width
    words = out.split()
    for row in rp.list_connections(path).rows:
        stream, client, server, _, _, segs, how = row.cells[:7]
        for cell in (client, server, segs):
            assert cell in words
        assert set(how.replace(",", "").split()) <= {w.strip(",") for w in words}
    left_out = re.search(r"Left out at \d+ columns: (.*?)\s+\(--width (\d+) shows", out,
                         re.S)
    if width >= 200:
        assert left_out is None and "conn_state (Zeek's codes)" in out
    else:
        assert left_out and "conn_state" in left_out.group(1)
        full = tcptrace("replay", path, "--width", left_out.group(2)).out
        assert "Left out" not in full and "conn_state" in full


def test_table_piped_honours_columns():
    for path in TABLES:
        out = tcptrace("replay", path, env={"COLUMNS": "80"}).out
        assert widths_of(out) <= 80
        assert all(line == line.rstrip() for line in out.splitlines())


def test_zeek_legend_has_the_codes_in_the_table():
    path = SHARED_CAPTURES / "tcpreplay_test.pcap"
    out = tcptrace("replay", path, "--width", 200).out
    legend = out[out.index("conn_state (Zeek's codes)"):]
    codes = {row.verdict.conn_state for row in rp.list_connections(path).rows}
    assert {line.split()[0] for line in legend.splitlines()[1:]} == codes


def test_big_plain_table_fits_too(tmp_path):
    path = tmp_path / "synth.pcap"
    generate(path, 2500, 3)                 # beyond PLAIN_ROWS: the engine's table
    rows = rp.list_connections(path).rows
    for width in (80, 200):
        out = tcptrace("replay", path, "--width", width).out
        assert widths_of(out) <= width
        lines = {line.split()[0]: line for line in out.splitlines() if line[:6].strip().isdigit()}
        for row in rows[::97]:
            cells = lines[str(row.index)].split()
            assert row.cells[1] in cells and row.cells[2] in cells and row.cells[5] in cells
        assert ("Left out" in out) == (width == 80)


@pytest.mark.parametrize("path", [LADDERS[0], LADDERS[2], TABLES[1],
                                  SHARED_CAPTURES / "zeek_http_206_example_b.pcap"],
                         ids=lambda p: p.name)
def test_ascii_output_never_fails(path):
    for env, args in (({"PYTHONIOENCODING": "ascii"}, ()), ({}, ("--ascii",)),
                      ({"TERM": "dumb", "PYTHONIOENCODING": "ascii"}, ("--width", 80))):
        proc = tcptrace("replay", path, *args, env=env)
        assert proc.code == 0, proc.err
        assert proc.out.isascii() and "client" in proc.out
