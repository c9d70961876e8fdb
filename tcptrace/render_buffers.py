"""Rich rendering of `tcptrace buffers`: one table per layer, top (application) to bottom
(wire), each value with where it was read, then where backpressure is felt and how to tune."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tcptrace.buffers import BuffersReport, Layer


def fmt_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(fmt_value(v) for v in value)
    if isinstance(value, int):
        return f"{value:,}" if value < 0xFFFFFFFF else str(value)
    return str(value)


def human(value) -> str:
    if not isinstance(value, int) or value < 1024 or value >= 0xFFFFFFFF:
        return ""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            text = f"{value / size:.2f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return ""


def layer_panel(layer: Layer, index: int) -> Panel:
    if not layer.available:
        return Panel(Text(f"not available: {layer.why_unavailable}", style="dim"),
                     title=f"{index}. {layer.title}", title_align="left")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    table.add_column("value", ratio=3)
    table.add_column("bytes", justify="right", ratio=2, no_wrap=True)
    table.add_column("", ratio=1, style="cyan", no_wrap=True)
    table.add_column("read from", ratio=4, style="dim")
    for v in layer.values:
        source = v.source + (f"; {v.note}" if v.note else "")
        table.add_row(v.name, fmt_value(v.value), human(v.value), source)
    body = Group(table, Text(""),
                 Text.assemble(("backpressure: ", "bold yellow"), layer.felt),
                 *[Text.assemble(("tune: ", "bold green"), t) for t in layer.tune])
    return Panel(body, title=f"{index}. {layer.title}", title_align="left")


def render_buffers(report: BuffersReport, console: Console) -> None:
    console.print(Text("Buffer layers on this machine, from the application down to the wire",
                       style="bold"))
    for i, layer in enumerate(report.layers, 1):
        console.print(layer_panel(layer, i))
    console.print(Text(
        "A writer faster than its reader fills these from the bottom up: the reader's receive "
        "buffer (window 0), then the writer's send buffer, then the application buffer, where "
        "write() returning false / pause_writing() is the signal to stop.", style="italic"))
