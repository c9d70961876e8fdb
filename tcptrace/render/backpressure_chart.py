"""The fill level of each layer over time, as a terminal chart (pure: returns renderables).

One strip per layer, top (application) to bottom (the window on the wire), each scaled to
its own peak so that a 64 KiB application buffer and a 4 MiB send queue are both legible;
the peak is printed on the strip's label. A 0 is drawn as `·`, so a zero window shows as a
dotted stretch. Below, lanes of event markers on the same time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.text import Text

from tcptrace.backpressure.analysis import mib, step_value
from tcptrace.backpressure.result import BackpressureResult

BLOCKS = "▁▂▃▄▅▆▇█"
ZERO = "·"
# For outputs that carry ASCII only (--ascii, PYTHONIOENCODING=ascii): eight levels too.
ASCII_BLOCKS = "_-~=+*%#"
ASCII_ZERO = "."
LABEL = 34

# kind -> (symbol, style, lane, legend)
MARKERS = {
    "write_false": ("F", "bold red", "app", "write() returned false / pause_writing()"),
    "drain": ("D", "bold green", "app", "'drain' / resume_writing()"),
    "pause": ("S", "bold magenta", "reader", "reader stops reading"),
    "resume": ("R", "bold magenta", "reader", "reader resumes reading"),
    "window_full": ("f", "yellow", "wire", "window full"),
    "zero_window": ("0", "bold red", "wire", "zero window advertised"),
    "window_probe": ("P", "bold yellow", "wire", "persist probe (Wireshark: TCP Keep-Alive)"),
    "window_update": ("U", "bold green", "wire", "window update"),
    "data_resumed": (">", "green", "wire", "data resumes"),
}
# when two events fall in one column, the first listed here wins
PRIORITY = ["window_probe", "zero_window", "write_false", "drain", "window_update", "pause",
            "resume", "data_resumed", "window_full"]


@dataclass
class Series:
    key: str
    label: str
    points: list[tuple[float, int | None]]   # (relative t, bytes)
    note: str = ""
    reduce: str = "max"                      # a column shows the max, or the "last" level


def layer_series(result: BackpressureResult) -> list[Series]:
    """The four layers as (relative time, bytes) points, top to bottom."""
    t0, samples = result.t0, result.samples
    hwm = result.verdict.high_water_mark
    app = "node" if result.options.runtime == "node" else "asyncio"
    window: list[tuple[float, int | None]] = [(t - t0, w) for t, w in result.window_series]
    if not window:   # no capture: fall back to what ss said the writer saw
        window = [(s.t - t0, s.writer.snd_wnd) for s in samples if s.writer]
    return [
        Series("app_buffer", f"app buffer ({app})", [(s.t - t0, s.app_buffer) for s in samples],
               note=f"the {app} high-water mark is {mib(hwm)}" if hwm else ""),
        Series("send_q", "send queue (Send-Q)",
               [(s.t - t0, s.writer.send_q if s.writer else None) for s in samples]),
        Series("recv_q", "receive queue (Recv-Q)",
               [(s.t - t0, s.reader.recv_q if s.reader else None) for s in samples]),
        Series("window", "advertised window", window, reduce="last"),
    ]


def time_span(result: BackpressureResult) -> float:
    ends = [s.t for s in result.samples[-1:]] + [e.t for e in result.events[-1:]]
    ends += [t for t, _ in result.window_series[-1:]]
    return max(max(ends, default=result.t0) - result.t0, 1e-3)


def columns(series: Series, span: float, width: int) -> list[int | None]:
    """One value per column: the max (or the last) of the points falling in it; a column
    between two points with none of its own holds the level; outside them it is empty."""
    cols: list[list[int]] = [[] for _ in range(width)]
    for t, v in series.points:
        if v is None or t < 0:
            continue
        cols[min(int(t / span * width), width - 1)].append(v)
    out: list[int | None] = []
    points = [(t, v) for t, v in series.points if v is not None and t >= 0]
    first = min(int(points[0][0] / span * width), width - 1) if points else width
    last = min(int(points[-1][0] / span * width), width - 1) if points else -1
    for i, vals in enumerate(cols):
        if vals:
            out.append(max(vals) if series.reduce == "max" else vals[-1])
        elif first <= i <= last:      # between two samples: the level holds
            out.append(step_value(points, (i + 0.5) * span / width))
        else:
            out.append(None)
    return out


def strip(values: list[int | None], peak: int, ascii: bool = False) -> str:
    blocks, zero = (ASCII_BLOCKS, ASCII_ZERO) if ascii else (BLOCKS, ZERO)
    chars = []
    for v in values:
        if v is None:
            chars.append(" ")
        elif v == 0 or peak == 0:
            chars.append(zero)
        else:
            chars.append(blocks[min(len(blocks) - 1, max(0, round(v / peak * (len(blocks) - 1))))])
    return "".join(chars)


def event_lanes(result: BackpressureResult, span: float,
                width: int) -> dict[str, list[str | None]]:
    """Per lane, per column: the kind of the event shown there (the first in PRIORITY)."""
    lanes: dict[str, list[str | None]] = {
        "app": [None] * width, "wire": [None] * width, "reader": [None] * width}
    for e in result.events:
        if e.kind not in MARKERS:
            continue
        lane = lanes[MARKERS[e.kind][2]]
        col = min(max(int((e.t - result.t0) / span * width), 0), width - 1)
        shown = lane[col]
        if shown is None or PRIORITY.index(e.kind) < PRIORITY.index(shown):
            lane[col] = e.kind
    return lanes


def backpressure_chart(result: BackpressureResult, width: int = 100,
                       ascii: bool = False) -> Group:
    plot = max(20, width - LABEL - 2)
    span = time_span(result)
    zero = ASCII_ZERO if ascii else ZERO
    rows: list[Text] = [Text("Fill level of each layer over time (each strip scaled to the "
                             f"peak on its left; {zero} = 0)", style="bold")]
    notes = []
    for s in layer_series(result):
        cols = columns(s, span, plot)
        peak = max((v for v in cols if v is not None), default=0)
        label = s.label[:LABEL - 12]
        row = Text(f"{label:<{LABEL - 12}}", style="bold")
        row.append(f"{mib(peak):>10}  ", style="dim")
        row.append(strip(cols, peak, ascii), style="cyan")
        rows.append(row)
        if s.note:
            notes.append(s.note)
    lane_names = {"app": "writer app", "wire": "wire", "reader": "reader app"}
    for name, lane in event_lanes(result, span, plot).items():
        row = Text(f"{lane_names[name]:<{LABEL}}", style="dim")
        for kind in lane:
            if kind is None:
                row.append(" ")
            else:
                symbol, style, _, _ = MARKERS[kind]
                row.append(symbol, style=style)
        rows.append(row)
    axis = [" "] * plot
    ticks = Text(" " * LABEL, style="dim")
    labels = [" "] * plot
    for i in range(5):
        col = min(round(i * (plot - 1) / 4), plot - 1)
        axis[col] = "+" if ascii else "┴"
        text = f"{span * col / plot:.2f}s"
        start = max(0, min(col - len(text) // 2, plot - len(text)))
        labels[start:start + len(text)] = list(text)
    ticks.append("".join(axis).replace(" ", "-" if ascii else "─"))
    rows.append(ticks)
    rows.append(Text(" " * LABEL + "".join(labels), style="dim"))
    legend = Text("  ".join(f"{m[0]} {m[3]}" for k, m in MARKERS.items()
                            if any(e.kind == k for e in result.events)), style="dim")
    rows.append(legend)
    rows += [Text(n, style="dim") for n in notes]
    return Group(*rows)
