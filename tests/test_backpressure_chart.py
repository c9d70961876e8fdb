"""The layer chart (terminal and SVG) from a recorded run."""

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from tcptrace.backpressure.analysis import analyse
from tcptrace.render.backpressure import render
from tcptrace.render.backpressure_chart import backpressure_chart, columns, layer_series, strip
from tcptrace.render.backpressure_json import raw_from_json
from tcptrace.render.backpressure_svg import backpressure_svg

DATA = Path(__file__).parent / "data" / "backpressure"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module", params=["python-pause1.5", "node-ignore-pause1.5"])
def result(request):
    raw, segments = raw_from_json(json.loads((DATA / f"{request.param}.json").read_text()))
    return analyse(raw, segments)


def text_of(renderable, width=120):
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_terminal_chart_has_every_layer_and_event_marker(result):
    text = text_of(backpressure_chart(result, 120))
    for label in ("app buffer", "send queue (Send-Q)", "receive queue (Recv-Q)",
                  "advertised window"):
        assert label in text
    lanes = {line.split()[0] + line.split()[1]: line for line in text.splitlines()
             if line.startswith(("writer app", "wire ", "reader app"))}
    assert "F" in lanes["writerapp"] and "D" in lanes["writerapp"]
    wire = next(line for line in text.splitlines() if line.startswith("wire "))
    assert "0" in wire and "P" in wire
    assert "S" in lanes["readerapp"] and "R" in lanes["readerapp"]
    window = next(line for line in text.splitlines() if line.startswith("advertised window"))
    assert "·" in window                       # the zero window, as dots


def test_strip_and_columns():
    assert strip([None, 0, 50, 100], 100) == " ·▅█"
    from tcptrace.render.backpressure_chart import Series
    s = Series("x", "x", [(0.0, 10), (0.5, 20)])
    assert columns(s, 1.0, 4) == [10, 10, 20, None]


def test_full_render_mentions_verdict_and_wireshark_view(result):
    out = io.StringIO()
    render(result, Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert "Verdict" in text and "TCP Keep-Alive" in text and "What happened" in text
    assert "window_probe" in text


def test_svg_parses_and_has_series_and_event_markers(result):
    root = ET.fromstring(backpressure_svg(result))
    assert root.tag == f"{SVG}svg"
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    for key in ("app_buffer", "send_q", "recv_q", "window"):
        assert f"series-{key}" in ids
        path = next(el for el in root.iter(f"{SVG}path") if el.get("id") == f"series-{key}")
        assert path.get("d").startswith("M")
    classes = [el.get("class") for el in root.iter(f"{SVG}g") if el.get("class")]
    for kind in ("write_false", "drain", "zero_window", "window_probe", "window_update",
                 "pause", "resume"):
        assert f"event {kind}" in classes
    probes = sum(c == "event window_probe" for c in classes)
    assert probes == result.verdict.window_probes


def test_layer_series_are_relative_to_t0(result):
    for s in layer_series(result):
        assert all(t >= -1e-3 for t, _ in s.points)
