"""`--svg` and `--svg-states`: the ladder as a standalone SVG, checked as XML against the
engine's own rows (`replay --json` of the same file is the truth), rendered to PNG once
by an independent renderer (rsvg-convert), and fed the hostile-capture corpus."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_untrusted import HOSTILE, connection_frames, write_hostile

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES, require, run_tcptrace

NS = "{http://www.w3.org/2000/svg}"
# Every element an SVG ladder may hold; anything else came from somewhere else.
ELEMENTS = {"svg", "title", "defs", "marker", "path", "rect", "text", "line", "g", "circle"}


def truth(capture: Path, *extra: str) -> dict:
    """The engine's rows for the connection, from `replay --json`."""
    result = run_tcptrace("replay", capture, "--json", *extra)
    assert result.code == 0, result.err
    return json.loads(result.out)["connections"][0]


def export_svg(tmp_path: Path, capture: Path, *extra: str) -> ET.Element:
    out = tmp_path / "ladder.svg"
    result = run_tcptrace("replay", capture, "--svg", out, *extra)
    assert result.code == 0, result.err
    assert f"wrote {out}" in result.err
    return ET.parse(out).getroot()


def text_of(element: ET.Element) -> str:
    return "".join(element.itertext())


def segment_groups(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if g.get("class") == "seg"]


def test_every_segment_is_an_arrow_with_the_engines_numbers(tmp_path):
    capture = PROJECT_CAPTURES / "close-end-pending-200000.pcapng"
    packets = truth(capture)["packets"]
    root = export_svg(tmp_path, capture)
    groups = segment_groups(root)
    assert [int(g.get("data-i")) for g in groups] == list(range(len(packets)))
    for g, p in zip(groups, packets, strict=True):
        label = f"{'+'.join(p['flags'])} seq={p['seq']} ack={p['ack']}" + (
            f" len={p['len']}" if p["len"] else "")
        texts = [text_of(t) for t in g.iter(f"{NS}text")]
        assert label in texts
        assert f"#{p['frame']}" in texts
        line = next(g.iter(f"{NS}line"))
        x1, x2 = float(line.get("x1")), float(line.get("x2"))
        assert (x2 > x1) == (p["from"] == "client")      # the head points at the receiver
        assert line.get("y1") == line.get("y2")          # level: one timestamp per segment
        assert p["note"].split()[0] in " ".join(texts)


def test_states_are_written_where_they_change(tmp_path):
    capture = PROJECT_CAPTURES / "close-end.pcapng"
    packets = truth(capture)["packets"]
    root = export_svg(tmp_path, capture)
    for side, anchor in (("client", "end"), ("server", "start")):
        written = [text_of(t) for g in segment_groups(root) for t in g.iter(f"{NS}text")
                   if t.get("text-anchor") == anchor and t.get("font-weight") == "bold"
                   and "seq=" not in text_of(t)]
        changes = [p[f"{side}_state"] for n, p in enumerate(packets)
                   if n == 0 or p[f"{side}_state"] != packets[n - 1][f"{side}_state"]]
        assert written == changes, side


def test_the_state_diagram_draws_each_sides_path(tmp_path):
    capture = PROJECT_CAPTURES / "close-simultaneous.pcapng"
    conn = truth(capture)
    root = export_svg(tmp_path, capture, "--svg-states")
    for side in ("client", "server"):
        states = [p[f"{side}_state"] for p in conn["packets"]]
        path = [s for n, s in enumerate(states) if n == 0 or s != states[n - 1]]
        group = next(g for g in root.iter(f"{NS}g") if g.get("class") == f"path path-{side}")
        drawn = [text_of(t) for t in group.iter(f"{NS}title")][1:]
        assert [d.split(" (")[0] for d in drawn] == [
            f"{side}: {a} → {b}" for a, b in zip(path, path[1:], strict=False)]
        lit = [g.get("data-state") for g in root.iter(f"{NS}g")
               if f"lit-{side}" in (g.get("class") or "")]
        assert lit == [conn["verdict"]["final"][side]]
    assert "CLOSING" in [p["client_state"] for p in conn["packets"]]


def test_nothing_is_referenced_from_outside(tmp_path):
    root = export_svg(tmp_path, PROJECT_CAPTURES / "close-unread.pcapng", "--svg-states")
    for element in root.iter():
        assert element.tag.removeprefix(NS) in ELEMENTS, element.tag
        for name, value in element.attrib.items():
            assert not name.endswith("href"), (element.tag, name)
            assert "url(" not in value or value.startswith("url(#"), value
            assert "http" not in value, value


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_rendered_to_png_by_rsvg(tmp_path):
    """An independent renderer draws it at its own size (examples/record.sh keeps one
    such PNG in examples/ for people to look at)."""
    require(None if shutil.which("rsvg-convert") else "rsvg-convert (librsvg2-bin) is missing")
    root = export_svg(tmp_path, PROJECT_CAPTURES / "close-end.pcapng", "--svg-states")
    png = tmp_path / "ladder.png"
    subprocess.run(["rsvg-convert", tmp_path / "ladder.svg", "-o", png], check=True,
                   capture_output=True, timeout=60)
    assert png_size(png) == (int(root.get("width")), int(root.get("height")))
    assert png.stat().st_size > 50_000          # drawn, not blank


def test_hostile_comments_stay_text(tmp_path):
    capture = tmp_path / "hostile.pcapng"
    write_hostile(capture, connection_frames(), HOSTILE)
    root = export_svg(tmp_path, capture, "--svg-states")
    for element in root.iter():
        assert element.tag.removeprefix(NS) in ELEMENTS, element.tag
        assert not any(name.startswith("on") for name in element.attrib)
    text = "\n".join(text_of(t) for t in root.iter(f"{NS}text"))
    assert not any(ord(ch) < 0x20 and ch != "\n" for ch in text)
    flat = text.replace("\n", "")
    for visible in ("\\x1b[2J\\x1b[31mred", "<script>alert(1)</script>", "\\u202etxt.exe",
                    "onerror=alert(1)", "]]>"):
        assert visible in flat, visible


@pytest.mark.parametrize("args, message", [
    (["--svg", "/nonexistent-dir/x.svg"], "cannot write /nonexistent-dir/x.svg"),
    (["--svg-states"], "--svg-states adds the state diagram to --svg FILE"),
    (["--html", "/nonexistent-dir/x.html"], "cannot write /nonexistent-dir/x.html"),
])
def test_bad_output_is_one_line(args, message):
    result = run_tcptrace("replay", PROJECT_CAPTURES / "close-end.pcapng", *args)
    assert result.code == 2
    assert result.err.strip().splitlines() == [f"tcptrace: {result.err.strip()[10:]}"]
    assert message in result.err


def test_several_connections_export_the_first_close(tmp_path):
    capture = SHARED_CAPTURES / "tcpreplay_test.pcap"
    result = run_tcptrace("replay", capture, "--json")
    conns = json.loads(result.out)["connections"]
    first = next(c["stream"] for c in conns if c["verdict"]["close"] in ("fin", "rst"))
    out = tmp_path / "x.svg"
    result = run_tcptrace("replay", capture, "--svg", out)
    assert result.code == 0, result.err
    assert f"show stream {first}, the first of its {len(conns)} connections" in result.err
    expected = next(c for c in conns if c["stream"] == first)
    assert len(segment_groups(ET.parse(out).getroot())) == len(expected["packets"])
    assert f"stream {first} of {len(conns)}" in text_of(ET.parse(out).getroot())


def test_markup_and_script_json_cannot_break_out():
    from tcptrace.untrusted import markup, script_json

    assert markup("\ufffe<a href='x'>&\x1b") == "\\ufffe&lt;a href=&#x27;x&#x27;&gt;&amp;\\x1b"
    raw = json.dumps({"c": "</script><!-- \u2028\u2029 &amp;"}, ensure_ascii=False)
    safe = script_json(raw)
    assert not set("<>&\u2028\u2029") & set(safe)
    assert json.loads(safe) == json.loads(raw)


def test_megabyte_comments_are_cut_in_both_exports(tmp_path):
    """16 comments of 65,535 characters on one segment (about 1 MB): the SVG shows each
    cut to a few lines, the page each cut as the terminal does, and both stay small."""
    from test_untrusted import BIG, BIG_COUNT

    from tcptrace.pcapwrite import write_capture

    comments: list[list[str]] = [[] for _ in range(7)]
    comments[3] = [chr(ord("a") + i) * BIG for i in range(BIG_COUNT)]
    capture = tmp_path / "big.pcapng"
    write_capture(capture, connection_frames(), comments)
    svg, page = tmp_path / "big.svg", tmp_path / "big.html"
    result = run_tcptrace("replay", capture, "--svg", svg, "--html", page)
    assert result.code == 0, result.err
    text = text_of(ET.parse(svg).getroot())
    assert text.count(f"[cut: {BIG - 300:,} characters]") == BIG_COUNT
    html = page.read_text()
    assert html.count(f"[cut: {BIG - 4096:,} characters]") == 2 * BIG_COUNT  # list, data
    assert svg.stat().st_size < 100_000 and page.stat().st_size < 400_000
