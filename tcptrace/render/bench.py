"""The benchmark's output (`python -m tcptrace.bench`): its console and its table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from tcptrace.bench import Run


def bench_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:             # a log: wide enough for the table
        console = Console(highlight=False, width=110)
    return console


def bench_table(runs: dict[str, Run], segments: int, connections: int) -> Table:
    """One row per command: wall and CPU time, memory, speed, and the ratio to tshark."""
    t = Table(title=f"FILE: {segments:,} segments, {connections:,} connections",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("command", "wall s", "CPU s", "RSS MiB", "packets/s", "vs tshark"):
        t.add_column(name, justify="left" if name == "command" else "right")
    tshark = runs.get("tshark")
    odd = False
    for r in runs.values():
        packets = segments if r.job.packets is None else r.job.packets
        if r.job.packets is not None and not odd:
            t.add_section()                 # the odd inputs, apart
            odd = True
        t.add_row(r.job.label, f"{r.wall:.2f}", f"{r.cpu:.2f}", f"{r.rss_mib:.0f}",
                  f"{packets / r.wall:,.0f}" if packets else "-",
                  f"{r.wall / tshark.wall:.2f}" if tshark and r.job.packets is None
                  else "-")
    return t
