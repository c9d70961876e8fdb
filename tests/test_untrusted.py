"""Everything a capture says is untrusted: the sanitiser (tcptrace.untrusted.shown), and a
hostile-capture corpus, built at test time, run through every terminal output and --json.

No control byte of the file's reaches a terminal output; its escapes are shown visibly;
rich markup in it is printed literally; a huge comment is cut with a marker; JSON keeps
the exact text."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from test_stepper import screen_with, tmux

from tcptrace.pcapwrite import write_capture
from tcptrace.untrusted import shown

from conftest import TCPTRACE_ENTRY, require, run_tcptrace
from frames import frame

SYN, FIN, ACK = 0x02, 0x01, 0x10

# -- the sanitiser -------------------------------------------------------------------------


@pytest.mark.parametrize("raw, out", [
    ("plain text, ünïcödé — ok", "plain text, ünïcödé — ok"),
    ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    ("bell\x07nul\x00del\x7f", "bell\\x07nul\\x00del\\x7f"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("csi\x9b31m nel\x85", "csi\\x9b31m nel\\x85"),
    ("\u202eevil\u202c \u2066iso\u2069", "\\u202eevil\\u202c \\u2066iso\\u2069"),
    ("zero\u200bwidth\ufeff line\u2028sep", "zero\\u200bwidth\\ufeff line\\u2028sep"),
    ("caf\ufffd", "caf\ufffd"),
    ("[red]x[/red] <script>", "[red]x[/red] <script>"),
])
def test_shown_escapes_controls_and_invisible_characters(raw, out):
    assert shown(raw) == out


def test_shown_cuts_long_text_with_a_marker():
    assert shown("x" * 10, limit=10) == "x" * 10
    assert shown("x" * 1_048_586, limit=10) == "x" * 10 + "… [cut: 1,048,576 characters]"
    # Counted before escaping: the cut keeps `limit` characters of the file's text.
    assert shown("\x1b" * 20, limit=4) == "\\x1b" * 4 + "… [cut: 16 characters]"


# -- the hostile corpus --------------------------------------------------------------------

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 80)
BAD_UTF8_MARK = "BAD-UTF8-XXXX"               # replaced in the file by invalid bytes
BAD_UTF8_BYTES = b"BAD-UTF8-\xff\xfe\xc3X"   # same length, so the block lengths hold

HOSTILE = [
    ["csi \x1b[2J\x1b[31mred", "bell\x07 nul\x00 end"],
    ["osc0 \x1b]0;pwned\x07", "osc8 \x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"],
    ["osc52 \x1b]52;c;cm0gLXJmIH4=\x07", "dcs \x1bPq#0;2;0;0;0\x1b\\"],
    ["bidi \u202etxt.exe\u202c \u2066iso\u2069", "c1 \x9b31m"],
    ["markup [red]x[/red] [link=https://evil.example]y[/link] [bold"],
    ["html <script>alert(1)</script> <img src=x onerror=alert(1)> ]]> </script>"],
    [BAD_UTF8_MARK],
]
# What the terminal must show for them (the visible escapes, the markup literally).
VISIBLE = ["\\x1b[2J\\x1b[31mred", "bell\\x07 nul\\x00 end", "\\x1b]0;pwned\\x07",
           "\\x1b]8;;https://evil.example/\\x1b\\click", "\\x1b]52;c;cm0gLXJmIH4=\\x07",
           "\\x1bPq#0;2;0;0;0\\x1b\\", "\\u202etxt.exe\\u202c", "\\u2066iso\\u2069",
           "c1 \\x9b31m", "[red]x[/red]", "[link=https://evil.example]y[/link]",
           "<script>alert(1)</script>", "onerror=alert(1)", "]]>", "BAD-UTF8-\ufffd\ufffd\ufffdX"]

BIG = 65_535                                   # the longest pcapng option
BIG_COUNT = 16                                 # 16 of them: about 1 MB on one segment

# Bytes no terminal output may hold: C0 but tab and newline, DEL; C1 and the bidi
# overrides and isolates as characters.
FORBIDDEN_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
FORBIDDEN_CHARS = re.compile("[\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def connection_frames(t0: float = 0.0, port: int = 40000) -> list[tuple[float, bytes]]:
    c, s = (CLIENT[0], port), SERVER
    segs = [(c, s, SYN, 1000, 0), (s, c, SYN | ACK, 5000, 1001), (c, s, ACK, 1001, 5001),
            (c, s, FIN | ACK, 1001, 5001), (s, c, ACK, 5001, 1002),
            (s, c, FIN | ACK, 5001, 1002), (c, s, ACK, 1002, 5002)]
    return [(t0 + i * 0.01, frame(src, dst, flags, seq, ack))
            for i, (src, dst, flags, seq, ack) in enumerate(segs)]


def write_hostile(path, frames, comments) -> None:
    write_capture(path, frames, comments)
    data = path.read_bytes()
    mark = BAD_UTF8_MARK.encode()
    if mark in data:
        path.write_bytes(data.replace(mark, BAD_UTF8_BYTES))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    hostile = d / "hostile.pcapng"
    write_hostile(hostile, connection_frames(), HOSTILE)
    big = d / "big.pcapng"
    comments: list[list[str]] = [[] for _ in range(7)]
    comments[3] = [chr(ord("a") + i) * BIG for i in range(BIG_COUNT)]
    write_capture(big, connection_frames(), comments)
    # Two connections, and a file name that holds escapes of its own.
    many = d / "many \x1b]0;pwned\x07\x1b[2J.pcapng"
    frames = connection_frames() + connection_frames(1.0, 40001)
    write_hostile(many, frames, HOSTILE + HOSTILE)
    return {"hostile": hostile, "big": big, "many": many}


ENV = {k: v for k, v in os.environ.items() if k != "TCPTRACE_DEBUG"}


def terminal_run(*args) -> str:
    """`tcptrace ARGS`, piped and wide enough that no escape is wrapped; the output
    checked for forbidden bytes before it is decoded."""
    done = subprocess.run([str(TCPTRACE_ENTRY), *map(str, args)], capture_output=True,
                          timeout=60, env={**ENV, "COLUMNS": "400"})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    for stream in (done.stdout, done.stderr):
        assert not FORBIDDEN_BYTES.search(stream), FORBIDDEN_BYTES.search(stream)
        text = stream.decode()                 # strictly UTF-8
        assert not FORBIDDEN_CHARS.search(text), FORBIDDEN_CHARS.search(text)
    return done.stdout.decode()


@pytest.mark.parametrize("extra", [[], ["--stream", "0", "--close"], ["--speed", "1000"],
                                   ["--ascii"]])
def test_hostile_comments_are_shown_escaped(corpus, extra):
    out = terminal_run("replay", corpus["hostile"], *extra)
    flat = out.replace("\n", "")
    for visible in VISIBLE:
        if "--ascii" in extra:                 # non-ASCII is '?' there, escapes are kept
            visible = visible.replace("\ufffd", "?")
        assert visible in flat, visible


def test_huge_comments_are_cut_with_a_marker(corpus):
    start = time.monotonic()
    out = terminal_run("replay", corpus["big"])
    assert out.count(f"… [cut: {BIG - 4096:,} characters]") == BIG_COUNT
    joined = re.sub(r"\n *", "", out)          # the wrapped lines, unwrapped
    assert "b" * 4096 + "…" in joined and "b" * 4097 not in joined
    assert time.monotonic() - start < 60       # generous: the corpus is meant to be fast


def test_the_table_and_a_hostile_file_name(corpus):
    out = terminal_run("replay", corpus["many"])
    assert "2 TCP connections" in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    out = terminal_run("replay", corpus["many"], "--stream", "1")
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in out.replace("\n", "")
    terminal_run("summary", corpus["many"])


def test_json_keeps_the_exact_text(corpus):
    result = run_tcptrace("replay", corpus["hostile"], "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    comments = [p.get("comments", []) for p in doc["connections"][0]["packets"]]
    expected = [[c.replace(BAD_UTF8_MARK, "BAD-UTF8-\ufffd\ufffd\ufffdX") for c in cs]
                for cs in HOSTILE]
    assert comments == expected
    big = run_tcptrace("replay", corpus["big"], "--json")
    packets = json.loads(big.out)["connections"][0]["packets"]
    assert packets[3]["comments"] == [chr(ord("a") + i) * BIG for i in range(BIG_COUNT)]


def test_step_in_tmux_shows_escapes_and_keeps_the_title(corpus, tmp_path):
    """--step on the hostile capture: the escapes are shown, and OSC 0 did not retitle
    the pane (tmux applies a title sequence that reaches it)."""
    require(None if shutil.which("tmux") else "tmux is not installed")
    session = f"tcptrace-hostile-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "run.sh"
    script.write_text(f"{TCPTRACE_ENTRY} replay {corpus['hostile']} --step\nsleep 60\n")
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", f"sh {script}")
    try:
        title = tmux("display", "-p", "-t", session, "#{pane_title}").strip()
        screen_with(session, "segment 1 of 7")
        assert "\\x1b[2J\\x1b[31mred" in screen_with(session, "bell\\x07 nul\\x00 end")
        for key, visible in [("Enter", "\\x1b]0;pwned\\x07"), ("Enter", "\\x1bPq#0;2;0;0;0"),
                             ("Enter", "\\u202etxt.exe\\u202c"), ("Enter", "[red]x[/red]"),
                             ("Enter", "<script>alert(1)</script>")]:
            tmux("send-keys", "-t", session, key)
            screen_with(session, visible)
        assert tmux("display", "-p", "-t", session, "#{pane_title}").strip() == title
        assert "pwned" not in title
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
