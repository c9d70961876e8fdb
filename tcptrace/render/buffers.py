"""Rich rendering of `tcptrace buffers`: one table per layer, top (application) to bottom
(wire), each value with where it was read, then where backpressure is felt and how to tune."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from tcptrace.buffers import BuffersReport, Layer
from tcptrace.render.fit import Col, fitted_table


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


def layer_table(console: Console, layer: Layer, index: int) -> Table:
    """One layer's values, laid out for the console's width: names and sources wrap,
    numbers never (tcptrace.render.fit)."""
    cols = [Col("value", flex=True), Col("bytes", "right"), Col("", drop=1, whole=True),
            Col("read from", flex=True)]
    rows = [(v.name, fmt_value(v.value), human(v.value),
             v.source + (f"; {v.note}" if v.note else "")) for v in layer.values]
    return fitted_table(console, cols, rows, title=f"{index}. {layer.title}")


def layer_text(layer: Layer) -> Group:
    """Where backpressure is felt at this layer, and how to tune it."""
    return Group(Text.assemble(("backpressure: ", "bold yellow"), layer.felt),
                 *[Text.assemble(("tune: ", "bold green"), t) for t in layer.tune])


def render_buffers(report: BuffersReport, console: Console) -> None:
    console.print(Text("Buffer layers on this machine, from the application down to the wire",
                       style="bold"))
    for i, layer in enumerate(report.layers, 1):
        console.print()
        if not layer.available:
            console.print(Text(f"{i}. {layer.title}: not available: "
                               f"{layer.why_unavailable}", style="dim"))
            continue
        console.print(layer_table(console, layer, i))
        console.print(layer_text(layer))
    console.print()
    console.print(Text(
        "A writer faster than its reader fills these from the bottom up: the reader's receive "
        "buffer (window 0), then the writer's send buffer, then the application buffer, where "
        "write() returning false / pause_writing() is the signal to stop.", style="italic"))
