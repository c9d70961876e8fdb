"""The progress bar on stderr while a big file is read (`replay`, `summary`)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

# The bar appears at once for a file this big, otherwise once reading has taken SLOW s.
BIG_FILE = 20 << 20
SLOW = 0.5


def show_progress(size: int, elapsed: float) -> bool:
    return size > BIG_FILE or elapsed > SLOW


class ReadProgress:
    """A transient bar on stderr while a file is read, for reads that take more than a
    moment; never when stderr is not a terminal (a bar in a log is noise). Call it with
    (bytes read, size); use as a context manager so the bar is removed at the end."""

    def __init__(self, console: Console, label: str):
        self.console, self.label = console, label
        self.start = time.monotonic()
        self._bar: Progress | None = None
        self._task = TaskID(0)          # the bar's one task, once there is a bar

    def __call__(self, done: int, size: int) -> None:
        if self._bar is None:
            if not (self.console.is_terminal
                    and show_progress(size, time.monotonic() - self.start)):
                return
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 DownloadColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=size)
        self._bar.update(self._task, completed=done)

    def __enter__(self) -> ReadProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
