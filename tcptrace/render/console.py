"""Where every command's output goes: one console per stream, sized and encoded for the
place it is read in.

Width: `--width N` if given; else the terminal's; else, piped, `COLUMNS` if set, else
120. Piped output has no colour and no trailing blanks. `--ascii`, or an output
encoding that cannot carry box-drawing characters and arrows (PYTHONIOENCODING=ascii, a
C locale), switches every renderer to plain ASCII glyphs (`ascii_only`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO, cast

from rich.console import Console

PIPED_WIDTH = 120       # a log or a pager: room for the ladder's explanations
_PROBE = "─▶◀┄·…╭│"     # glyphs the renderers draw with


@dataclass
class Output:
    """The command line's choices for this process's output."""

    width: int | None = None
    ascii: bool = False


OUTPUT = Output()


def configure(width: int | None = None, ascii: bool = False) -> None:
    OUTPUT.width, OUTPUT.ascii = width, ascii


class _RStripLines:
    """A text stream that drops the blanks rich pads lines with: piped output is read
    by `less`, `grep` and diff, where trailing blanks only wrap lines and hide changes."""

    def __init__(self, out: TextIO):
        self._out, self._pending = out, ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        if lines:
            self._out.write("".join(line.rstrip() + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._out.write(self._pending.rstrip())
            self._pending = ""
        self._out.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self._out, "encoding", "utf-8")


def _piped_width() -> int:
    try:
        return max(20, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return PIPED_WIDTH


def make_console(stderr: bool = False) -> Console:
    """The console for stdout (or stderr): see the module doc."""
    stream = sys.stderr if stderr else sys.stdout
    probe = Console(file=stream, highlight=False)
    if probe.is_terminal:
        return Console(file=stream, highlight=False, width=OUTPUT.width or probe.width)
    # rich only calls write, flush, isatty and encoding, which _RStripLines has.
    return Console(file=cast(TextIO, _RStripLines(stream)), highlight=False, no_color=True,
                   width=OUTPUT.width or _piped_width(), force_terminal=False)


def ascii_only(console: Console) -> bool:
    """Whether to draw with ASCII only: asked for, or the output cannot carry more."""
    if OUTPUT.ascii:
        return True
    try:
        _PROBE.encode(console.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return True
    return False
