"""--step and --speed: the key handling as a pure state machine, the screens rendered to
a recording console, the playback's waits; and --step for real in tmux when available."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import uuid
from dataclasses import replace
from itertools import pairwise

import pytest
from rich.console import Console

from tcptrace import replay as rp
from tcptrace.errors import TcptraceError
from tcptrace.model import TcpState
from tcptrace.render.stepper import (
    MAX_WAIT,
    big_lines,
    letter_scale,
    play,
    require_terminal,
    segment_screen,
    step_key,
    verdict_screen,
    waits,
)

from conftest import PROJECT_CAPTURES, SHARED_CAPTURES, TCPTRACE_ENTRY, require

TEARDOWN = SHARED_CAPTURES / "cs_tcp_teardown.pcapng"


def teardown():
    kept = rp.list_connections(TEARDOWN, keep=0).kept
    return (kept.conn, *rp.analyse(kept))


def render(renderable, width: int = 120, height: int = 40) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, record=True)
    console.print(renderable)
    return console.export_text()


# -- key handling --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["\r", "\n", " ", "n", "\x1b[C"])
def test_next_keys_advance(key):
    assert step_key(0, key, 4) == 1
    assert step_key(3, key, 4) == 4         # the last segment -> the verdict screen


@pytest.mark.parametrize("key", ["b", "p", "\x1b[D"])
def test_back_keys_go_back_but_not_before_the_first(key):
    assert step_key(2, key, 4) == 1
    assert step_key(0, key, 4) == 0


@pytest.mark.parametrize("key", ["q", "Q", "\x1b", ""])
def test_quit_keys(key):
    assert step_key(2, key, 4) is None


def test_next_on_the_verdict_screen_quits_and_other_keys_do_nothing():
    assert step_key(4, " ", 4) is None
    assert step_key(4, "b", 4) == 3
    assert step_key(2, "x", 4) == 2


def test_a_whole_session():
    pos, seen = 0, [0]
    for key in [" ", "\r", "b", "b", "b", "\n", " ", " ", " ", "z", " "]:
        pos = step_key(pos, key, 4)
        seen.append(pos)
    assert seen == [0, 1, 2, 1, 0, 0, 1, 2, 3, 4, 4, None]


# -- screens -------------------------------------------------------------------------------

@pytest.mark.parametrize("state", list(TcpState))
def test_every_state_has_big_letters(state):
    lines = big_lines(state)
    assert lines is not None and len(lines) == 3
    assert len({len(line) for line in lines}) == 1
    assert set("".join(lines)) <= set("█▀▄ ")


def test_big_letters_fall_back_for_unknown_letters():
    assert big_lines("closed") is None


def test_segment_screen_shows_the_segment_states_and_note():
    conn, views, _ = teardown()
    text = render(segment_screen(Console(width=120, height=40), conn, views, 2))
    assert "segment 3 of 4" in text
    assert views[2].note in text
    assert "FIN+ACK seq=0 ack=1" in text
    assert "client  (changed)" in text             # CLOSE-WAIT -> LAST-ACK
    assert "◀ now" in text                         # the ladder so far, below
    assert f"roles guessed: {conn.roles_guessed}" in text
    assert f"frame {views[2].segment.frame}" in text
    # Wide enough: the two states side by side, in big letters (at 120x40 the
    # largest size that fits them stacked is bigger than side by side: 2).
    assert letter_scale(views, 114, 40) == 2
    [line] = [x for x in text.splitlines() if big_lines("LAST-ACK", 2)[0] in x]
    text = render(segment_screen(Console(width=120, height=40), conn, views, 2, scale=1))
    [line] = [x for x in text.splitlines() if big_lines("LAST-ACK")[0] in x]
    assert big_lines("TIME-WAIT")[0] in line


def test_segment_screen_stacks_the_states_when_narrow():
    conn, views, _ = teardown()
    text = render(segment_screen(Console(width=70, height=40), conn, views, 2), width=70)
    lines = text.splitlines()
    first = next(i for i, x in enumerate(lines) if big_lines("LAST-ACK")[0] in x)
    assert big_lines("TIME-WAIT")[0] not in lines[first]
    assert big_lines("TIME-WAIT")[0] in lines[first + 5]


def test_segment_screen_shows_pcapng_comments_unless_equal_to_the_note():
    conn, views, _ = teardown()
    views[0] = replace(views[0], comments=(views[0].note, "seen in Wireshark"))
    text = render(segment_screen(Console(width=120, height=40), conn, views, 0))
    assert "pcapng comment: seen in Wireshark" in text
    assert f"pcapng comment: {views[0].note}" not in text


def test_verdict_screen():
    conn, views, verdict = teardown()
    text = render(verdict_screen(conn, views, verdict))
    assert "the end: 4 segments" in text
    assert "How it ended: graceful close (FIN from both sides), first closer: server" in text


def test_step_needs_a_terminal():
    # pytest's stdin is not a TTY.
    with pytest.raises(TcptraceError, match="--step needs a terminal"):
        require_terminal()


# -- --speed -------------------------------------------------------------------------------

def test_waits_scale_the_capture_gaps_and_are_capped():
    _, views, _ = teardown()
    gaps = [b.t - a.t for a, b in pairwise(views)]
    assert waits(views, 1.0) == [(0.0, 0.0)] + [(g, g) for g in gaps]
    assert waits(views, 2.0)[2] == (gaps[1] / 2, gaps[1] / 2)
    assert waits(views, 1.0, cap=0.1)[2] == (0.1, gaps[1])


def test_play_sleeps_and_says_when_a_wait_was_capped():
    conn, views, verdict = teardown()
    console = Console(file=io.StringIO(), width=160, record=True)
    slept = []
    play(console, conn, views, verdict, 0.1, sleep=slept.append)
    text = console.export_text()
    assert slept == [min(w, MAX_WAIT) for w, _ in waits(views, 0.1) if w > 0]
    assert MAX_WAIT in slept
    capped = sum(1 for w, g in waits(views, 0.1) if w < g)
    assert text.count("(capped)") == capped > 0
    assert text.count("FIN+ACK") == 2 and "How it ended" in text


# -- for real, in a terminal ---------------------------------------------------------------

def tmux(*args) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True,
                          check=True).stdout


def wait_for_screen(session: str, ok, what: str, timeout: float = 10) -> str:
    """Poll the pane until `ok(screen)`: the program draws when it is ready, so a wait
    on what is shown is neither flaky nor slower than needed."""
    deadline = time.monotonic() + timeout
    while True:
        screen = tmux("capture-pane", "-p", "-t", session)
        if ok(screen):
            return screen
        if time.monotonic() > deadline:
            pytest.fail(f"{what} never appeared; the screen was:\n{screen}")
        time.sleep(0.05)


def screen_with(session: str, text: str, timeout: float = 10) -> str:
    return wait_for_screen(session, lambda screen: text in screen, repr(text), timeout)


@pytest.mark.parametrize("quit_key, status", [("q", "0"), ("C-c", "130")])
def test_step_in_tmux(tmp_path, quit_key, status):
    """Needs tmux (the Makefile's TEST_DEBS: required in CI). The terminal settings
    must be the same after quitting, with q or with Ctrl-C."""
    require(None if shutil.which("tmux") else "tmux is not installed")
    capture = PROJECT_CAPTURES / "close-end.pcapng"
    session = f"tcptrace-step-{uuid.uuid4().hex[:8]}"
    done = tmp_path / "done"
    script = tmp_path / "run.sh"
    # The shell traps SIGINT (a handler, not "ignore", which the child would inherit)
    # so that it outlives a Ctrl-C meant for tcptrace and records the exit status.
    script.write_text(f"trap : INT\nstty -a > {tmp_path}/before\n"
                      f"{TCPTRACE_ENTRY} replay {capture} --step\n"
                      f"echo $? > {tmp_path}/rc\n"
                      f"stty -a > {tmp_path}/after\n"
                      f"touch {done}; sleep 60\n")

    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", f"sh {script}")
    try:
        count = len(rp.analyse(rp.list_connections(capture, keep=0).kept)[0])
        screen = screen_with(session, f"segment 1 of {count}")
        assert "client opens: SYN" in screen
        tmux("send-keys", "-t", session, "Enter")
        screen_with(session, f"segment 2 of {count}")
        tmux("send-keys", "-t", session, "Space")
        screen_with(session, f"segment 3 of {count}")
        tmux("send-keys", "-t", session, "b")
        screen_with(session, f"segment 2 of {count}")
        tmux("send-keys", "-t", session, quit_key)
        deadline = time.monotonic() + 10
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "rc").read_text().strip() == status
        assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
        # Ctrl-C leaves the slide on the screen as q does.
        screen_with(session, f"segment 2 of {count}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_every_key_of_one_read_counts_and_arrows_are_single_keys():
    from tcptrace.render.stepper import split_keys

    assert split_keys("\r\r\r") == ["\r", "\r", "\r"]
    assert split_keys("\x1b[C\x1b[Db") == ["\x1b[C", "\x1b[D", "b"]
    assert [step_key(3, k, 9) for k in split_keys("\x1b[A\x1b[B\x1bOA")] == [2, 4, 2]
    assert split_keys("q") == ["q"]
