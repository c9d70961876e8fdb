"""Rich output of `tcptrace backpressure`: scenario line, the layer chart, the key events
(with Wireshark's name where it differs from ours), the explanation, the verdict."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from tcptrace.backpressure.analysis import mib
from tcptrace.backpressure.result import RESUME, BackpressureResult, Event
from tcptrace.render.backpressure_chart import MARKERS, backpressure_chart
from tcptrace.render.console import ascii_only
from tcptrace.render.fit import plain


def key_events(events: list[Event]) -> tuple[list[Event], int]:
    """Everything up to the reader's resumption, then the first event of each kind: the
    recovery can hold hundreds of window-full segments."""
    resume = next((e.t for e in events if e.kind == RESUME), None)
    shown, seen = [], set()
    for e in events:
        if resume is None or e.t <= resume or e.kind not in seen:
            shown.append(e)
        if resume is not None and e.t > resume:
            seen.add(e.kind)
    return shown, len(events) - len(shown)


def events_table(result: BackpressureResult, ascii: bool = False) -> tuple[Table, int]:
    table = Table(title="Events", title_justify="left", show_edge=False, pad_edge=False,
                  expand=True, box=box.ASCII if ascii else box.HEAVY_HEAD)
    table.add_column("t", justify="right", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("frame", justify="right", no_wrap=True)
    table.add_column("what", ratio=3)
    table.add_column("Wireshark says", ratio=1)
    shown, hidden = key_events(result.events)
    for e in shown:
        symbol, style, _, _ = MARKERS.get(e.kind, ("", "", "", ""))
        detail = e.detail + (f" [app buffer {mib(e.app_buffer)}]" if e.app_buffer is not None
                             else "")
        table.add_row(f"+{e.t - result.t0:.3f}", Text.assemble((symbol, style), " ", e.kind),
                      str(e.frame or ""), plain(f"{e.side}: {detail}", ascii),
                      plain(e.wireshark or "", ascii))
    return table, hidden


def verdict_table(result: BackpressureResult, ascii: bool = False) -> Table:
    v = result.verdict
    table = Table(title="Verdict", title_justify="left", show_header=False, show_edge=False,
                  pad_edge=False, box=box.ASCII if ascii else box.HEAVY_HEAD)
    table.add_column(style="bold")
    table.add_column()
    kernel = ("n/a" if v.kernel_probes is None else
              f"{v.kernel_probes} ({'matches' if v.probes_match_kernel else 'DIFFERS'}, "
              f"{result.kernel.get('netns')} netns)")
    rows = [
        ("bytes written / delivered", f"{v.bytes_written:,} / {v.bytes_delivered:,}"),
        ("sha256", "match" if v.digest_match else "MISMATCH"),
        ("zero-window segments", f"{v.zero_windows} in {result.wire.zero_window_episodes} "
                                 f"episode(s)"),
        ("persist probes (capture)", str(v.window_probes)),
        ("TcpExtTCPWinProbe (kernel)", kernel),
        ("write false / drain", f"{v.write_false} / {v.drains}"),
        ("peak app buffer", f"{v.peak_app_buffer:,} B ({mib(v.peak_app_buffer)}), "
                            f"high-water mark {mib(v.high_water_mark)}"),
        ("writer RSS", f"{mib(v.rss_start)} -> peak {mib(v.peak_rss)}"),
        ("peak Send-Q / Recv-Q", f"{mib(v.peak_send_q)} / {mib(v.peak_recv_q)}"),
    ]
    for k, val in rows:
        table.add_row(k, plain(val, ascii))
    return table


def render(result: BackpressureResult, console: Console) -> None:
    o = result.options
    app = result.app
    version = app.get("hello", {}).get("version", "?")
    console.print(Text.assemble(
        ("tcptrace backpressure ", "bold"),
        f"{o.runtime} {version}: writer {result.writer_endpoint} -> reader "
        f"{result.reader_endpoint}, {o.bytes:,} bytes, reader paused {o.pause:g} s",
        f", SO_SNDBUF {o.sndbuf}" if o.sndbuf else "",
        f", SO_RCVBUF {o.rcvbuf}" if o.rcvbuf else "",
        (", backpressure ignored", "bold red") if o.ignore_backpressure else "",
        f"  [{result.kernel.get('netns')} network namespace]"))
    console.print()
    ascii = ascii_only(console)
    console.print(backpressure_chart(result, console.width, ascii))
    console.print()
    table, hidden = events_table(result, ascii)
    console.print(table)
    if hidden:
        console.print(Text(f"  ... and {hidden} more during the recovery (see --json)",
                           style="dim"))
    console.print()
    console.print(Text("What happened, layer by layer", style="bold"))
    bullet = "-" if ascii else "•"
    for line in result.verdict.findings:
        # A hanging indent: a finding wraps under its own first word.
        console.print(Padding(Text(f"{bullet} {plain(line, ascii)}"), (0, 0, 0, 2),
                              expand=False))
    console.print()
    console.print(verdict_table(result, ascii))
    for p in result.verdict.problems:
        console.print(Padding(Text(f"! {plain(p, ascii)}", style="bold red"), (0, 0, 0, 2),
                              expand=False))
