"""--step on long connections (issue 10): the keys of `less` (g/G/Home/End, f/F, s,
:N Enter, ?), frame numbers on every slide, letters sized to the terminal, a note shown
once; unit tests on recorded connections, then the real thing in tmux at 80x24 and
200x50: `f` reaches the RST of a 1,302-segment connection, `?` lists the keys, a resize
redraws, `q` leaves the last slide on the screen."""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from itertools import pairwise
from pathlib import Path

import pytest
from rich.console import Console
from test_stepper import screen_with, tmux, wait_for_screen

from tcptrace import replay as rp
from tcptrace.render.stepper import (
    HELP,
    KEY_HELP,
    Stepper,
    big_lines,
    big_state,
    big_width,
    comment_lines,
    frame_index,
    frame_of,
    help_screen,
    incomplete_escape,
    letter_scale,
    next_change,
    segment_screen,
    split_keys,
    verdict_screen,
)

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES, TCPTRACE_ENTRY, require

ZEEK = SHARED_CAPTURES / "zeek_http_206_example_b.pcap"
PROJECT = Path(__file__).resolve().parents[1]


def recorded(path: Path, stream: int = 0):
    require(None if path.exists() else f"{path} is missing")
    kept = rp.list_connections(path, keep=stream).kept
    return (kept.conn, *rp.analyse(kept))


@pytest.fixture(scope="module")
def zeek():
    return recorded(ZEEK)


def rst_frames(path: Path, stream: int = 0) -> list[int]:
    """tshark's own frame numbers of the stream's RSTs: an outside witness."""
    require(None if shutil.which("tshark") else "tshark is not installed")
    out = subprocess.run(["tshark", "-r", str(path), "-Y",
                          f"tcp.stream=={stream} && tcp.flags.reset==1",
                          "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


def press(stepper: Stepper, keys: str) -> Stepper:
    for key in split_keys(keys):
        assert stepper.press(key)
    return stepper


def render(renderable, width: int, height: int) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, record=True)
    console.print(renderable)
    return console.export_text()


# -- keys and jumps ------------------------------------------------------------------------

def test_frames_are_the_captures_own_numbers(zeek):
    _, views, _ = zeek
    assert len(views) == 1302
    assert [frame_of(v) for v in views if "RST" in v.flags] == rst_frames(ZEEK)


def test_f_from_the_first_segment_reaches_the_rst(zeek):
    _, views, _ = zeek
    stepper = press(Stepper(views), "f")
    assert "RST" in views[stepper.pos].flags
    assert frame_of(views[stepper.pos]) == rst_frames(ZEEK)[0]
    press(stepper, "f")                                 # no further FIN or RST: stays
    assert "RST" in views[stepper.pos].flags
    assert stepper.message == "no FIN or RST after this segment"


@pytest.mark.parametrize("first", ["g", "<", "\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~"])
@pytest.mark.parametrize("last", ["G", ">", "\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"])
def test_first_and_last_and_the_verdict_after_the_last(zeek, first, last):
    _, views, _ = zeek
    stepper = press(Stepper(views), last)
    assert stepper.pos == len(views) - 1
    press(stepper, " ")                                 # the verdict is still one step on
    assert stepper.pos == len(views)
    press(stepper, first)
    assert stepper.pos == 0


def test_capital_f_goes_back_to_the_previous_fin_or_rst():
    conn, views, _ = recorded(PROJECT_CAPTURES / "close-end.pcapng")
    closing = [i for i, v in enumerate(views) if {"FIN", "RST"} & set(v.flags)]
    assert len(closing) >= 2
    stepper = press(Stepper(views), "G ")               # from the verdict screen
    press(stepper, "F")
    assert stepper.pos == closing[-1]
    press(stepper, "F")
    assert stepper.pos == closing[-2]
    press(stepper, "g")
    press(stepper, "F")
    assert stepper.pos == 0 and stepper.message == "no FIN or RST before this segment"
    assert [press(Stepper(views), "f" * n).pos for n in (1, 2)] == closing[:2]


def test_s_stops_where_a_state_changes(zeek):
    _, views, _ = zeek
    stepper, stops = Stepper(views), []
    while True:
        press(stepper, "s")
        if stepper.message:
            break
        stops.append(stepper.pos)
    changes = [i for i in range(1, len(views))
               if (views[i].client_state, views[i].server_state)
               != (views[i - 1].client_state, views[i - 1].server_state)]
    assert stops == changes and len(stops) >= 2
    assert stepper.message == "no state change after this segment"
    assert next_change(views, len(views) - 1) is None


def test_colon_number_enter_jumps_to_that_frame_and_echoes_it(zeek):
    _, views, _ = zeek
    stepper = press(Stepper(views), ":12")
    assert stepper.typed == "12" and ":12" in stepper.bottom()
    press(stepper, "9\x7f")                             # Backspace takes back a digit
    assert stepper.typed == "12"
    press(stepper, "\r")
    assert frame_of(views[stepper.pos]) == 12 and stepper.typed is None
    assert stepper.bottom() == HELP


def test_colon_number_goes_to_the_next_frame_of_the_connection():
    _, views, _ = recorded(SHARED_CAPTURES / "tcpreplay_test.pcap", 1)   # interleaved
    frames = [frame_of(v) for v in views]
    gap = next(f + 1 for f, g in pairwise(frames) if g > f + 1)
    stepper = press(Stepper(views), f":{gap}\r")
    assert frame_of(views[stepper.pos]) == min(f for f in frames if f > gap)
    assert stepper.message.startswith(f"frame {gap} is not in this connection")
    stepper = press(Stepper(views), f":{frames[-1] + 1}\r")
    assert stepper.pos == 0 and stepper.message.startswith(f"no frame {frames[-1] + 1}")
    assert frame_index(views, 0) == 0


def test_escape_or_another_key_cancels_the_frame_number(zeek):
    _, views, _ = zeek
    for cancel in ("\x1b", "x", "\r"):
        stepper = press(Stepper(views), ":" + ("5" if cancel != "\r" else "") + cancel)
        assert stepper.typed is None and stepper.pos == 0


def test_question_mark_shows_help_and_any_key_returns(zeek):
    _, views, _ = zeek
    stepper = press(Stepper(views), "  ?")
    assert stepper.help
    assert stepper.press("q")                           # q closes the help, not the stepper
    assert not stepper.help and stepper.pos == 2
    assert not stepper.press("q")


def test_typed_ahead_keys_all_count(zeek):
    _, views, _ = zeek
    # One read carrying several keys, escape sequences of 3 and 4 bytes among them.
    assert split_keys("f\x1b[1~:100\r\x1b[4~\x1b[Db") == [
        "f", "\x1b[1~", ":", "1", "0", "0", "\r", "\x1b[4~", "\x1b[D", "b"]
    stepper = press(Stepper(views), "f\x1b[1~:100\r")
    assert frame_of(views[stepper.pos]) == 100
    press(stepper, "\x1b[4~\x1b[Db")
    assert stepper.pos == len(views) - 3


def test_an_escape_sequence_cut_by_a_read_is_waited_for():
    assert all(incomplete_escape(x) for x in ("\x1b", "b\x1b", "\x1b[", "\x1b[1", "\x1bO"))
    assert not any(incomplete_escape(x) for x in ("", "q", "\x1b[A", "\x1b[1~", "\x1bOH"))


# -- slides --------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height", [(80, 24), (120, 40), (200, 50)])
def test_every_kind_of_slide_fits_the_terminal_uncut(zeek, width, height):
    conn, views, verdict = zeek
    console = Console(width=width, height=height)
    stepper = Stepper(views)
    slides = [segment_screen(console, conn, views, i) for i in (0, 1, 700, len(views) - 1)]
    slides += [verdict_screen(conn, views, verdict, console), help_screen(console)]
    for slide in slides:
        lines = render(slide, width, height).splitlines()
        assert len(lines) == height
        assert all(len(line) <= width for line in lines)
        assert "…" not in "\n".join(lines)
    assert f"frame {rst_frames(ZEEK)[0]}" in render(slides[3], width, height)
    assert stepper.bottom() in render(slides[0], width, height)


def test_big_letters_scale_with_the_terminal(zeek):
    _, views, _ = zeek
    states = {s for v in views for s in (v.client_state, v.server_state)}
    small, big = letter_scale(views, 80 - 6, 24), letter_scale(views, 200 - 6, 50)
    assert small == 1 and big >= 2
    assert all(big_width(s, small) <= 74 for s in states)
    assert all(big_width(s, big) <= 194 for s in states)
    assert len(big_lines("CLOSED", big)) > len(big_lines("CLOSED", 1))
    assert letter_scale(views, 30, 24) == 0             # too narrow: plain words
    assert big_state("client", "SYN-RECEIVED", False, 0).plain == "client\nSYN-RECEIVED"


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_scaled_letters_are_the_font_scaled(scale):
    one, scaled = big_lines("TIME-WAIT"), big_lines("TIME-WAIT", scale)
    assert len(scaled) == (5 * scale + 1) // 2
    assert {len(line) for line in scaled} == {len(one[0]) * scale}


def test_closed_is_bold_and_not_faint(zeek):
    text = big_state("client", "CLOSED", False, 1)
    styles = {str(span.style) for span in text.spans}
    assert "bold" in styles and not any("dim" in s for s in styles if "CLOSED" != s)
    assert all("dim" not in str(span.style) for span in text.spans[1:])


def test_a_comment_that_extends_the_note_shows_only_what_it_adds():
    conn, views, _ = recorded(PROJECT_CAPTURES / "close-reset.pcapng")
    [rst] = [i for i, v in enumerate(views) if "RST" in v.flags]
    view = views[rst]
    assert view.comments and view.comments[0].startswith(view.note)   # how it is saved
    text = render(segment_screen(Console(width=200, height=50), conn, views, rst), 200, 50)
    assert text.count(view.note) == 1
    assert "pcapng comment adds: kernel reason" in text
    assert [t.plain for t in comment_lines(view)] == [
        "pcapng comment adds: " + view.comments[0][len(view.note):].lstrip("; ")]


def test_help_screen_lists_every_key():
    text = render(help_screen(Console(width=80, height=24)), 80, 24)
    for keys, _ in KEY_HELP:
        assert keys in text
    for key in ("g  Home", "G  End", "f  /  F", ":N  Enter", "?", "q  Esc"):
        assert key in text


# -- in tmux: the Done-when --------------------------------------------------------

def framed(width: int):
    """Whether the screen is one whole panel as wide as the terminal: the left and
    right borders on every line, so no stray border of an older, other-sized frame."""
    def ok(screen: str) -> bool:
        lines = screen.rstrip("\n").split("\n")
        return (lines[0].startswith("╭") and lines[-1].startswith("╰")
                and all(len(line) == width and line[-1] in "╮│╯" for line in lines))
    return ok


def showing(session: str, width: int, *texts: str) -> str:
    """The screen once it is a whole frame `width` wide showing all of `texts`."""
    return wait_for_screen(session, lambda s: framed(width)(s) and all(t in s for t in texts),
                           f"a whole {width}-column frame with {texts}")


@pytest.mark.parametrize("width, height", [(80, 24), (200, 50)])
def test_f_reaches_the_rst_and_question_mark_shows_the_keys_in_tmux(width, height):
    require(None if shutil.which("tmux") else "tmux is not installed")
    assert TCPTRACE_ENTRY.exists(), f"{TCPTRACE_ENTRY} is missing (make setup)"
    [rst] = rst_frames(ZEEK)
    session = f"tcptrace-jump-{uuid.uuid4().hex[:8]}"
    command = (f"cd {PROJECT} && {TCPTRACE_ENTRY} replay "
               f"../shared/captures-real/{ZEEK.name} --stream 0 --step; "
               f"echo exit=$?; sleep 60")
    tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), command)
    try:
        screen_with(session, "segment 1 of 1302  ·  frame 1")
        tmux("send-keys", "-t", session, "f")
        # Waits on all that is asserted: a capture may catch a slide half drawn.
        screen = showing(session, width, f"segment 1302 of 1302  ·  frame {rst}", "RST+ACK",
                         "abortive close")
        tmux("send-keys", "-t", session, "?")
        showing(session, width, "keys, as in less", "any key: back", "g  Home", "G  End",
                "f  /  F", "next segment where either side's state", ":N  Enter",
                "q  Esc")
        tmux("send-keys", "-t", session, "x")           # any key: back to the slide
        showing(session, width, f"frame {rst}", "RST+ACK")
        # A resize redraws at the new size, with nothing left of the old frame.
        other = (120, 40) if width == 80 else (80, 24)
        tmux("resize-window", "-t", session, "-x", str(other[0]), "-y", str(other[1]))
        showing(session, other[0], f"frame {rst}", "RST+ACK")
        tmux("send-keys", "-t", session, "q")
        screen = screen_with(session, "exit=0")
        # Quitting leaves the last slide, top border included, on the normal screen.
        assert f"segment 1302 of 1302  ·  frame {rst}" in screen
        assert "RST+ACK" in screen and "abortive close" in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_ascii_only_output_gets_ascii_slides(zeek, monkeypatch):
    """PYTHONIOENCODING=ascii or --ascii: no half blocks, boxes or arrows to fail on."""
    from tcptrace.render import console as output

    monkeypatch.setattr(output.OUTPUT, "ascii", True)
    conn, views, verdict = zeek
    console = Console(width=80, height=24)
    for slide in (segment_screen(console, conn, views, len(views) - 1),
                  verdict_screen(conn, views, verdict, console), help_screen(console)):
        text = render(slide, 80, 24)
        text.encode("ascii")
        assert all(len(line) <= 80 for line in text.splitlines())
    assert "#" in render(segment_screen(console, conn, views, 0), 80, 24)
