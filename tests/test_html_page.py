"""`--html` and `tcptrace site`, tested as a user would: the page opened from file:// in
headless Chromium, keys pressed and segments clicked, and what is lit compared row by
row with `replay --json` of the same capture (the engine's truth, not the page's data).
No request may leave the page, no console error may appear, and no element or script
from a hostile capture may reach the DOM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser import Browser
from test_untrusted import HOSTILE, connection_frames, write_hostile

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES, run_tcptrace

LIT = """return ['client', 'server'].map(side => Array.from(
    document.querySelectorAll('svg.state-diagram .state.lit-' + side))
    .map(g => g.dataset.state))"""
SELECTED = """return [
    Array.from(document.querySelectorAll('svg.ladder .seg.sel')).map(g => g.dataset.i),
    Array.from(document.querySelectorAll('#segments tr.sel')).map(r => r.dataset.i),
    document.getElementById('p-frame').textContent,
    document.getElementById('p-client').textContent,
    document.getElementById('p-server').textContent]"""


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def packets_of(capture: Path, *extra: str) -> list[dict]:
    result = run_tcptrace("replay", capture, "--json", *extra)
    assert result.code == 0, result.err
    return json.loads(result.out)["connections"][0]["packets"]


def write_page(tmp_path: Path, capture: Path, *extra: str) -> Path:
    page = tmp_path / (capture.name + ".html")
    result = run_tcptrace("replay", capture, "--html", page, *extra)
    assert result.code == 0, result.err
    return page


def press(browser: Browser, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(browser.driver)
    for key in keys:
        chain.send_keys(key)
    chain.perform()


def assert_selected(browser: Browser, i: int, packet: dict) -> None:
    segs, rows, frame, client, server = browser.js(SELECTED)
    assert (segs, rows) == ([str(i)], [str(i)])
    assert frame == f"frame {packet['frame']}"
    assert (client, server) == (packet["client_state"], packet["server_state"])
    lit = browser.js(LIT)
    for side, states in zip(("client", "server"), lit, strict=True):
        state = packet[f"{side}_state"]
        assert states == ([] if state == "?" else [state]), (i, side)


def assert_clean(browser: Browser) -> None:
    assert browser.requests() == [browser.page]      # the page itself, nothing else
    assert browser.console_errors() == []


def test_step_keys_light_the_ladders_states_row_by_row(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    capture = PROJECT_CAPTURES / "close-unread.pcapng"
    packets = packets_of(capture)
    browser.open(write_page(tmp_path, capture))
    assert browser.js("return document.documentElement.dataset.ready") is not None
    assert_selected(browser, 0, packets[0])
    for i in range(1, len(packets)):
        press(browser, Keys.ARROW_RIGHT if i % 2 else " ")
        assert_selected(browser, i, packets[i])
    press(browser, Keys.ARROW_RIGHT)                 # past the end: stays on the last
    assert_selected(browser, len(packets) - 1, packets[-1])
    for i in reversed(range(len(packets) - 1)):
        press(browser, Keys.ARROW_LEFT if i % 2 else Keys.ARROW_UP)
        assert_selected(browser, i, packets[i])
    press(browser, Keys.END)
    assert_selected(browser, len(packets) - 1, packets[-1])
    press(browser, Keys.HOME)
    assert_selected(browser, 0, packets[0])
    assert_clean(browser)


def test_f_jumps_to_each_fin_or_rst_and_a_click_selects(browser, tmp_path):
    capture = PROJECT_CAPTURES / "close-end.pcapng"
    packets = packets_of(capture)
    page = write_page(tmp_path, capture)
    browser.open(page)
    closes = [i for i, p in enumerate(packets) if {"FIN", "RST"} & set(p["flags"])]
    assert len(closes) >= 2
    for i in closes:
        press(browser, "f")
        assert_selected(browser, i, packets[i])
    press(browser, "F")
    assert_selected(browser, closes[-2], packets[closes[-2]])
    for i in (3, 1, len(packets) - 1):
        browser.driver.find_element("css selector", f'#segments tr[data-i="{i}"]').click()
        assert_selected(browser, i, packets[i])
    arrow = browser.driver.find_element("css selector", 'svg.ladder .seg[data-i="2"] rect.hit')
    arrow.click()
    assert_selected(browser, 2, packets[2])
    assert browser.js("return location.hash") == "#3"        # a link to this segment
    assert_clean(browser)
    browser.open(page, fragment="5")
    assert_selected(browser, 4, packets[4])


def test_keyboard_only_projector_and_the_policy(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    page = write_page(tmp_path, PROJECT_CAPTURES / "close-end.pcapng")
    browser.open(page)
    order = []
    for _ in range(4):
        press(browser, Keys.TAB)
        order.append(browser.js("return document.activeElement.id"))
    assert order == ["projector", "print", "ladder", "segments"]
    from selenium.webdriver.common.action_chains import ActionChains

    back = ActionChains(browser.driver).key_down(Keys.SHIFT)
    for _ in range(3):
        back.send_keys(Keys.TAB)
    back.key_up(Keys.SHIFT).perform()
    assert browser.js("return document.activeElement.id") == "projector"
    press(browser, Keys.ENTER)
    assert browser.js("return document.body.classList.contains('projector')")
    press(browser, "p")
    assert not browser.js("return document.body.classList.contains('projector')")
    policy = browser.js("return document.querySelector("
                        "'meta[http-equiv=\"Content-Security-Policy\"]').content")
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    assert "'unsafe-inline'" not in policy
    # The page's own text for screen readers: every segment carries a title.
    titles = browser.js("return Array.from(document.querySelectorAll('svg.ladder .seg > title'))"
                        ".map(t => t.textContent)")
    assert len(titles) == len(packets_of(PROJECT_CAPTURES / "close-end.pcapng"))
    assert all("seq=" in t for t in titles)
    assert_clean(browser)


def test_a_hostile_capture_stays_text_and_runs_no_script(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.keys import Keys

    capture = tmp_path / "hostile <img src=x onerror=alert(2)>.pcapng"
    write_hostile(capture, connection_frames(), HOSTILE)
    browser.open(write_page(tmp_path, capture))
    seen = []
    for _ in range(len(HOSTILE)):
        seen.append(browser.js("return document.getElementById('p-comments').textContent"))
        press(browser, Keys.ARROW_RIGHT)
    with pytest.raises(NoAlertPresentException):
        browser.driver.switch_to.alert.text          # noqa: B018 (no alert() ran)
    dom = browser.js("""return {
        scripts: document.scripts.length,
        imgs: document.images.length,
        handlers: Array.from(document.querySelectorAll('*')).flatMap(e =>
            Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => a.name)),
        tags: Array.from(new Set(Array.from(document.querySelectorAll('*'))
            .map(e => e.tagName.toLowerCase()))),
        table: document.getElementById('segments').textContent,
        title: document.title}""")
    assert dom["scripts"] == 2 and dom["imgs"] == 0 and dom["handlers"] == []
    assert "img" not in dom["tags"]
    assert "<img src=x onerror=alert(2)>" in dom["title"]
    joined = "".join(seen)
    for visible in ("\\x1b[2J\\x1b[31mred", "\\x1b]52;c;cm0gLXJmIH4=\\x07", "\\u202etxt.exe",
                    "[red]x[/red]", "<script>alert(1)</script>", "onerror=alert(1)", "]]>"):
        assert visible in joined, visible
        assert visible in dom["table"], visible
    assert_clean(browser)


def test_sizes_and_a_big_connection(browser, tmp_path):
    """Issue 11's sizes: a ~20-segment close at most 200 KB, the 1,302-segment stream
    0 of zeek_http_206_example_b.pcap at most 2 MB, and that page steps to its end."""
    from selenium.webdriver.common.keys import Keys

    small = write_page(tmp_path, PROJECT_CAPTURES / "close-end-pending-200000.pcapng")
    assert 20 <= len(packets_of(PROJECT_CAPTURES / "close-end-pending-200000.pcapng")) <= 30
    assert small.stat().st_size <= 200_000
    capture = SHARED_CAPTURES / "zeek_http_206_example_b.pcap"
    packets = packets_of(capture, "--stream", "0")
    assert len(packets) == 1302
    big = write_page(tmp_path, capture, "--stream", "0")
    assert big.stat().st_size <= 2_000_000
    browser.open(big)
    press(browser, Keys.END)
    assert_selected(browser, 1301, packets[-1])
    press(browser, Keys.HOME, "f")
    first = next(i for i, p in enumerate(packets) if {"FIN", "RST"} & set(p["flags"]))
    assert_selected(browser, first, packets[first])
    assert_clean(browser)


def test_the_library_as_a_site(browser, tmp_path):
    out = tmp_path / "site"
    result = run_tcptrace("site", PROJECT_CAPTURES, "--out", out)
    assert result.code == 0, result.err
    captures = sorted(p.name for p in PROJECT_CAPTURES.glob("*.pcapng"))
    for name in captures:
        assert (out / name).read_bytes() == (PROJECT_CAPTURES / name).read_bytes()
        assert (out / f"{name}.html").stat().st_size > 0
    browser.open(out / "index.html")
    links = browser.js("return Array.from(document.querySelectorAll('table.pages a'))"
                       ".map(a => a.getAttribute('href'))")
    assert links == [f"{name}.html" for name in captures]
    readme = browser.js("return document.querySelector('.readme').textContent")
    assert "What to look for" in readme and "TCP_ABORT_ON_CLOSE" in readme
    assert_clean(browser)
    browser.driver.find_element("link text", "close-reset.pcapng").click()
    assert browser.driver.title.startswith("tcptrace replay close-reset.pcapng")
    assert browser.console_errors() == []


def test_a_hostile_readme_is_text(browser, tmp_path):
    src, out = tmp_path / "lib", tmp_path / "site"
    src.mkdir()
    write_hostile(src / "a.pcapng", connection_frames(), HOSTILE)
    (src / "README.md").write_text(
        "# Lib <script>alert(3)</script>\n\nSee `a.pcapng` and <img src=x onerror=alert(4)>"
        " **bold** `</code><script>alert(5)</script>`\n\n| File | x |\n|---|---|\n"
        "| `a.pcapng` | <iframe src=\"https://evil.example/\"></iframe> \x1b[2J |\n")
    result = run_tcptrace("site", src, "--out", out)
    assert result.code == 0, result.err
    browser.open(out / "index.html")
    tags = browser.js("return Array.from(document.querySelectorAll('*'))"
                      ".map(e => e.tagName.toLowerCase())")
    assert not {"script", "img", "iframe"} & set(tags)
    text = browser.js("return document.body.textContent")
    assert "<script>alert(3)</script>" in text and "<img src=x onerror=alert(4)>" in text
    assert "\\x1b[2J" in text
    assert browser.js("return document.querySelectorAll('.readme a').length") == 2
    assert_clean(browser)


def test_an_unreadable_capture_in_the_library(tmp_path):
    src, out = tmp_path / "lib", tmp_path / "site"
    src.mkdir()
    (src / "empty.pcap").write_bytes(b"")
    write_hostile(src / "ok.pcapng", connection_frames(), [[] for _ in range(7)])
    result = run_tcptrace("site", src, "--out", out)
    assert result.code == 2
    assert re.search(r"tcptrace: warning: .*empty\.pcap", result.err)
    assert (out / "ok.pcapng.html").exists() and not (out / "empty.pcap.html").exists()
    assert "no page" in (out / "index.html").read_text()


@pytest.mark.live
def test_a_live_close_page_and_svg(live, browser, tmp_path):
    """`tcptrace close --mode end --html --svg` on real loopback sockets: the page's lit
    states follow the ladder's, checked against `replay --json` of the same run's
    capture (--save), and the ss snapshots and kernel transitions are in the panel."""
    import xml.etree.ElementTree as ET

    from selenium.webdriver.common.keys import Keys

    page, svg, saved = tmp_path / "end.html", tmp_path / "end.svg", tmp_path / "end.pcapng"
    result = run_tcptrace("close", "--mode", "end", "--html", page, "--svg", svg,
                          "--svg-states", "--save", saved)
    assert result.code == 0, result.err
    packets = packets_of(saved)
    root = ET.parse(svg).getroot()
    marks = [g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")
             if (g.get("class") or "").startswith("mark")]
    assert "mark ss" in marks and "mark kernel" in marks
    browser.open(page)
    around = []
    for i, packet in enumerate(packets):
        assert_selected(browser, i, packet)
        around.append(browser.js("return document.getElementById('p-around').textContent"))
        press(browser, Keys.ARROW_DOWN)
    joined = "\n".join(around)
    assert "ss: client ESTABLISHED, server ESTABLISHED" in joined
    assert "sock:inet_sock_set_state" in joined and "client shutdown(SHUT_WR)" in joined
    assert_clean(browser)
