"""summary, buffers, claims and backpressure at every width from 80 columns up: no line
longer than the width, nothing cut ("…"), no trailing blanks when piped, ASCII when the
output cannot carry more; summary's flow-control tables and Zeek legends; the engine's
window-probe counter against tshark."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from tcptrace.backpressure.analysis import analyse
from tcptrace.claims import judge
from tcptrace.engine import Scan
from tcptrace.render import console as output
from tcptrace.render.backpressure import render as render_backpressure
from tcptrace.render.backpressure_json import raw_from_json
from tcptrace.render.claims import render_claims
from tcptrace.render.fit import Col, fitted_table
from tcptrace.render.summary import CONN_STATES

from conftest import SHARED_CAPTURES as CAPTURES
from conftest import require

BACKPRESSURE = Path(__file__).parent / "data" / "backpressure"
WIDTHS = (80, 120, 200)
SUMMARISED = ("sv_community-id-ipv6.pcap", "zeek_http_206_example_b.pcap",
              "zeek_nmap-vsn.pcap", "cs_http_ip4and6.pcapng", "zeek_ldap_modify-request.pcapng",
              "cs_tcp_zerowindowdead.pcapng", "tcpreplay_test.pcap")


@pytest.fixture(autouse=True)
def fresh_output():
    """--width/--ascii set process-wide options: each test starts from the defaults."""
    output.configure()
    yield
    output.configure()


def assert_fits(text: str, width: int, piped: bool = True) -> None:
    assert text.strip()
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"
        assert "…" not in line, line
        if piped:
            assert line == line.rstrip(), f"trailing blanks: {line!r}"


def rendered(render, width: int, ascii: bool = False) -> str:
    output.configure(ascii=ascii)
    out = io.StringIO()
    render(Console(file=out, width=width, color_system=None))
    return out.getvalue()


# -- summary --------------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", SUMMARISED)
def test_summary_fits_every_width(summary, name, width):
    code, out, err = summary("--width", width, CAPTURES / name)
    assert code == 0, err
    assert_fits(out, width)
    # Every stream of the RST and "most" tables, every endpoint, whole (an endpoint
    # may break before its port: joined again here).
    joined = out.replace("\n", "")
    for s in Scan(CAPTURES / name):
        for host in (s.conn.client_ip, s.conn.server_ip):
            assert host.split(":")[0] in joined


@pytest.mark.parametrize("name", SUMMARISED[:3])
def test_summary_piped_honours_columns(summary, monkeypatch, name):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = summary(CAPTURES / name)
    assert code == 0
    assert_fits(out, 80)
    assert max(cell_len(line) for line in out.splitlines()) > 60     # the room is used


def test_summary_shows_flow_control_with_stream_numbers(summary):
    path = CAPTURES / "zeek_http_206_example_b.pcap"
    code, out, _ = summary("--width", 80, path)
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines()
            if line.startswith("│") and line.count("│") == 6}
    # 57 zero windows (all advertised by the client), 108 retransmissions (the server).
    assert rows["zero windows"].split("│")[2].strip() == "57"
    assert rows["retransmissions"].split("│")[2].strip() == "108"
    assert "Connections with the most" in out
    most = out[out.index("Connections with the most"):out.index("Ended by RST")]
    first = [line for line in most.splitlines() if line.startswith("│")][0]
    assert [c.strip() for c in first.split("│")[1:2]] == ["0"]      # stream 0
    assert "57" in first and "108" in first
    assert "tcptrace replay FILE --stream N" in most.replace("\n", " ")


def test_summary_legends_explain_the_codes_shown(summary):
    code, out, _ = summary("--width", 80, CAPTURES / "zeek_nmap-vsn.pcap")
    assert code == 0
    for state in ("S0", "REJ", "RSTO"):
        assert CONN_STATES[state] in out.replace("\n", " ").replace("│", "")
    legend = out[out.index("history (Zeek)"):].replace("\n", " ")
    assert "S/s SYN" in legend and "R/r RST" in legend and "Upper case" in legend
    assert "W/w" not in legend          # only the letters used


def test_summary_without_flow_events_says_so(summary):
    code, out, _ = summary(CAPTURES / "zeek_nmap-vsn.pcap")
    assert "no zero windows, window probes or retransmissions" in out


@pytest.mark.parametrize("command", [["summary", str(CAPTURES / "zeek_http_206_example_b.pcap")],
                                     ["summary", str(CAPTURES / "sv_community-id-ipv6.pcap")],
                                     ["buffers"]])
def test_ascii_only_output_is_readable(tcptrace, command):
    code, text, err = tcptrace(*command, env={"PYTHONIOENCODING": "ascii", "COLUMNS": "80",
                                              "TERM": "dumb"})
    assert code == 0, err
    assert text.isascii()                       # nothing else got through
    assert "+--" in text and "internal error" not in err
    assert_fits(text, 80)


def test_ascii_flag_draws_ascii_boxes(summary):
    code, out, _ = summary("--ascii", "--width", 80, CAPTURES / "zeek_http_206_example_b.pcap")
    assert code == 0
    out.encode("ascii")
    assert "+--" in out


# -- the window-probe counter ----------------------------------------------------------------

def tshark_probes(path: Path, tshark: str) -> dict[str, int]:
    """Probes per sender IP as Wireshark names them: zero-window probes, and Linux's
    0-byte probe at SND.UNA-1, which it calls a keep-alive (README: backpressure)."""
    out = subprocess.run([tshark, "-r", str(path), "-Y",
                          "tcp.analysis.zero_window_probe || tcp.analysis.keep_alive",
                          "-T", "fields", "-e", "ip.src"],
                         capture_output=True, text=True, timeout=60).stdout
    counts: dict[str, int] = {}
    for ip in out.split():
        counts[ip] = counts.get(ip, 0) + 1
    return counts


@pytest.mark.parametrize("name", ["cs_tcp_zerowindowdead.pcapng",
                                  "cs_tcp_zerowindowrecovery.pcapng"])
def test_window_probes_match_tshark(tshark, name):
    path = CAPTURES / name
    ours: dict[str, int] = {}
    for s in Scan(path):
        for ip, sent in ((s.conn.client_ip, s.client), (s.conn.server_ip, s.server)):
            if sent.window_probes:
                ours[ip] = ours.get(ip, 0) + sent.window_probes
        line = json.loads(s.json_line())
        assert line["sent"]["client"]["window_probes"] == s.client.window_probes
        # Fields added later come after: the first five keep their places.
        assert list(line["sent"]["server"])[3:5] == ["zero_windows", "window_probes"]
    assert ours == tshark_probes(path, tshark)
    if name == "cs_tcp_zerowindowdead.pcapng":
        assert ours == {"195.81.202.68": 3}


# -- buffers, claims, backpressure ----------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_buffers_fit(width):
    from tcptrace.buffers import gather_buffers
    from tcptrace.render.buffers import render_buffers

    report = gather_buffers()
    text = rendered(lambda c: render_buffers(report, c), width)
    assert_fits(text, width, piped=False)
    for layer in report.layers:
        for v in layer.values if layer.available else ():
            if isinstance(v.value, int) and v.value < 0xFFFFFFFF:
                assert f"{v.value:,}" in text                   # numbers whole


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("ascii", [False, True])
def test_claims_fit(width, ascii):
    from test_claims import measured

    found = judge(measured())
    text = rendered(lambda c: render_claims(found, c), width, ascii)
    assert_fits(text, width, piped=False)
    if ascii:
        text.encode("ascii")


@pytest.fixture(scope="module", params=["python-pause1.5", "node-ignore-pause1.5"])
def bp_result(request):
    raw, segments = raw_from_json(json.loads((BACKPRESSURE / f"{request.param}.json")
                                             .read_text()))
    return analyse(raw, segments)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("ascii", [False, True])
def test_backpressure_fits(bp_result, width, ascii):
    text = rendered(lambda c: render_backpressure(bp_result, c), width, ascii)
    assert_fits(text, width, piped=False)
    if ascii:
        text.encode("ascii")
        assert "+---" in text or "+--" in text


# -- the fitting itself ---------------------------------------------------------------------

def test_fitted_table_drops_the_least_important_column_and_says_so():
    cols = [Col("stream", "right"), Col("client", flex=True, split=":"),
            Col("server", flex=True, split=":"), Col("first closer", drop=2),
            Col("RST from", drop=1), Col("conn_state"), Col("history")]
    rows = [("12", "[2600:1f13:f8:d400:3a6:303c:e011:18eb]:443", "192.168.72.14:3254",
             "server", "client", "RSTOS0", "ShADdWWtttr")]
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    console.print(fitted_table(console, cols, rows, title="t"))
    text = out.getvalue()
    assert_fits(text, 80, piped=False)
    assert "not shown at this width: first closer" in text
    assert "RSTOS0" in text and "ShADdWWtttr" in text and ":3254" in text
    wide = io.StringIO()
    console = Console(file=wide, width=200, color_system=None)
    console.print(fitted_table(console, cols, rows, title="t"))
    assert "not shown" not in wide.getvalue() and "192.168.72.14:3254" in wide.getvalue()


@pytest.mark.live
def test_live_backpressure_at_80_columns_piped(tcptrace):
    require(None if os.geteuid() == 0 else
            "backpressure needs root (capture and a private network namespace)")
    code, out, err = tcptrace("backpressure", "--pause", 1, "--bytes", 2 << 20,
                              env={"COLUMNS": "80"}, timeout=60)
    assert code == 0, err
    assert_fits(out, 80)
    assert "Verdict" in out
