"""The annotated ladder: one row per segment, both sides' states beside it, `ss`
snapshots and application events merged in on the same clock."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tcptrace.model import (AppEvent, Connection, KernelEvent, PacketView, StateObservation,
                            Transition, Verdict)
from tcptrace.ss import describe_recv_q

ARROW_WIDTH = 44

# Colours only help; every fact is also in the text (NO_COLOR and pipes lose them).
_FLAG_STYLE = {"RST": "bold red", "FIN": "bold yellow", "SYN": "bold cyan"}
_STATE_STYLE = {"TIME-WAIT": "magenta", "CLOSED": "dim", "ESTABLISHED": "green",
                "CLOSE-WAIT": "yellow", "FIN-WAIT-1": "yellow", "FIN-WAIT-2": "yellow",
                "LAST-ACK": "yellow", "CLOSING": "yellow"}


def make_console(stderr: bool = False) -> Console:
    """A console that stays readable in pipes: no colour, and wide enough for the ladder."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=max(console.width, 160),
                          no_color=True)
    return console


def arrow(view: PacketView) -> Text:
    label = "+".join(view.flags) or "(no flags)"
    numbers = f" seq={view.seq} ack={view.ack}" + (f" len={view.length}" if view.length else "")
    body = f" {label}{numbers} "
    style = next((s for f, s in _FLAG_STYLE.items() if f in view.flags), "bold")
    fill = "─" * max(1, ARROW_WIDTH - len(body) - 2)
    if view.sender == "client":
        return Text.assemble("─", (body, style), fill + "▶")
    return Text.assemble("◀" + fill, (body, style), "─")


def state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _ms(t: float) -> str:
    return f"{t * 1000:9.3f}"


def _snapshot_detail(obs: StateObservation) -> str:
    parts = []
    for side in ("client", "server"):
        d = obs.details.get(side)
        if not d:
            continue
        bits = []
        if d.get("recv_q"):
            bits.append(describe_recv_q(d))
        if d.get("send_q"):
            bits.append(f"Send-Q {d['send_q']}")
        if "timer" in d:
            tm = d["timer"]
            bits.append(f"timer:({tm['name']},{tm['expires']},{tm['retrans']})")
        if bits:
            parts.append(f"{side} " + " ".join(bits))
    return "; ".join(parts)


def _transition_row(item: Transition, final: dict[str, str]) -> tuple[Text, str]:
    """The kernel's words, with the one place where they need a gloss: the full socket
    goes FIN-WAIT-2 (or CLOSING) -> CLOSE when the TIME-WAIT mini-socket takes over."""
    note = f"{item.side}: {item.old} → {item.new} (sock:inet_sock_set_state)"
    shown = item.new
    if item.old == "LISTEN":
        note += "; the accepted socket is born from the request socket when the ACK arrives"
    if item.new == "CLOSED" and item.old in ("FIN-WAIT-2", "CLOSING", "FIN-WAIT-1") \
            and final.get(item.side) == "TIME-WAIT":
        # An orphaned socket is handed over on the ACK of its FIN (ss then shows
        # FIN-WAIT-2 with a timewait timer), a socket still open on the peer's FIN.
        note += ("; a timewait mini-socket takes over, which only ss shows (as TIME-WAIT, "
                 "or FIN-WAIT-2 while an orphaned socket waits for the peer's FIN)")
        shown = "timewait sock"
    return Text(note, style="green"), shown


def ladder_table(conn: Connection, views: list[PacketView],
                 observations: list[StateObservation] = (),
                 events: list[AppEvent] = (), transitions: list[Transition] = (),
                 kernel_events: list[KernelEvent] = (),
                 final: dict[str, str] | None = None) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
    table.add_column("ms", justify="right", style="dim", no_wrap=True)
    table.add_column("client", no_wrap=True)
    table.add_column("", no_wrap=True, max_width=ARROW_WIDTH, overflow="ellipsis")
    table.add_column("server", no_wrap=True)
    table.add_column("why", overflow="fold")
    t0 = views[0].segment.t - views[0].t if views and views[0].segment else 0.0
    rows: list[tuple[float, int, object]] = []
    rows += [(v.t, 1, v) for v in views]
    rows += [(o.t - t0, 2, o) for o in observations]
    rows += [(e.t - t0, 0, e) for e in events]
    rows += [(k.t - t0, 3, k) for k in (*transitions, *kernel_events)]
    rows.sort(key=lambda r: (r[0], r[1]))
    for t, _, item in rows:
        if isinstance(item, PacketView):
            why = Text(item.note)
            if item.tags:
                why.append(f"  [{', '.join(item.tags)}]", style="dim")
            for comment in item.comments:
                why.append(f"\n  comment: {comment}", style="italic")
            table.add_row(_ms(t), state_text(item.client_state), arrow(item),
                          state_text(item.server_state), why)
        elif isinstance(item, StateObservation):
            label = Text(f" {item.source} ".center(ARROW_WIDTH, "┄"), style="blue")
            detail = _snapshot_detail(item)
            table.add_row(_ms(t), Text(item.client, style="bold " + _STATE_STYLE.get(item.client, "")),
                          label, Text(item.server, style="bold " + _STATE_STYLE.get(item.server, "")),
                          Text(f"kernel states after {item.after}" + (f" ({detail})" if detail else ""),
                               style="blue"))
        elif isinstance(item, Transition):
            note, shown = _transition_row(item, final or {})
            cells = [state_text(shown), "", ""] if item.side == "client" else ["", "", state_text(shown)]
            cells[1] = Text(" kernel ".center(ARROW_WIDTH, "·"), style="green")
            table.add_row(_ms(t), *cells, note)
        elif isinstance(item, KernelEvent):
            what = ("sends RST" + (f", reason {item.reason}" if item.reason else "")
                    if item.kind == "send_reset" else "receives RST")
            table.add_row(_ms(t), "", Text(" kernel ".center(ARROW_WIDTH, "·"), style="green"),
                          "", Text(f"{item.side}: {what} (tcp:tcp_{item.kind})", style="green"))
        else:
            # Application calls: a marker on the caller's side of the arrow column.
            mark = "▸ client app" if item.side == "client" else "server app ◂".rjust(ARROW_WIDTH)
            table.add_row(_ms(t), "", Text(mark, style="dim"), "",
                          Text(item.what, style="dim italic"))
    return table


def conclusion_lines(verdict: Verdict, observations: list[StateObservation] = (),
                     counts: dict | None = None, closer: str = "client") -> list[str]:
    lines = []
    kind = {"fin": "graceful close (FIN from both sides)", "rst": "abortive close (RST)",
            "refused": "refused (RST in reply to SYN)",
            "half-closed": "half-closed (one side's FIN only)",
            "unanswered": "unanswered (a SYN nobody replied to)",
            "open": "still open at the end (neither side closed)"}[verdict.close]
    who = f", first closer: {verdict.first_closer}" if verdict.first_closer else ""
    lines.append(f"How it ended: {kind}{who}" +
                 (f"; RST sent by {verdict.rst_from}" if verdict.rst_from else "") +
                 ("; the FINs crossed (simultaneous close)" if verdict.simultaneous else ""))
    if verdict.time_wait:
        timer = ""
        for obs in reversed(observations):
            for side in ("client", "server"):
                d = obs.details.get(side, {})
                if d.get("state") == "TIME-WAIT" and "timer" in d:
                    timer = f" ({side}: timer:(timewait,{d['timer']['expires']},{d['timer']['retrans']}) per ss)"
                    break
            if timer:
                break
        if verdict.time_wait == "both":
            lines.append("TIME-WAIT: both sides hold the connection's 4-tuple for 60 s on "
                         f"Linux{timer}: each closed before it saw the other's FIN.")
        else:
            other = "server" if verdict.time_wait == "client" else "client"
            lines.append(f"TIME-WAIT: the {verdict.time_wait} holds the connection's 4-tuple "
                         f"for 60 s on Linux{timer}; the {other} is {verdict.final[other]}.")
    else:
        lines.append(f"TIME-WAIT: none; final states: client {verdict.final['client']}, "
                     f"server {verdict.final['server']}.")
    if counts is not None and counts.get("written"):
        w, d = counts["written"], counts["delivered"]
        peer = "client" if closer == "server" else "server"
        lines.append(f"Bytes the {closer if closer != 'both' else 'client'} had queued at the "
                     f"close: {w:,}; delivered to the {peer} application: "
                     f"{d:,}" + (" (all)" if w == d else f" ({w - d:,} lost)"))
    return lines


def render_connection(console: Console, conn: Connection, views: list[PacketView],
                      verdict: Verdict, observations: list[StateObservation] = (),
                      events: list[AppEvent] = (), counts: dict | None = None,
                      transitions: list[Transition] = (),
                      kernel_events: list[KernelEvent] = (), closer: str = "client") -> None:
    console.print(ladder_table(conn, views, observations, events, transitions, kernel_events,
                               verdict.final))
    console.print()
    for line in conclusion_lines(verdict, observations, counts, closer):
        console.print(f"• {line}")


def _what_it_does(run) -> list[Text]:
    if run.runtime == "node":
        from tcptrace.node_close import NODE_CALLS

        return [Text(f"What it does (Node.js net): {NODE_CALLS[run.mode.name]}"),
                Text(f"Syscall level, as the Python runtime does it: {run.mode.summary}")]
    return [Text(f"What it does: {run.mode.summary}"),
            Text(f"Node.js equivalent: {run.mode.node}")]


def render_close(console: Console, run) -> None:
    """A live close run (live.CloseRun): header, ladder, conclusion."""
    header = Group(
        Text.assemble(("tcptrace close --mode ", "bold"), (run.mode.name, "bold cyan"),
                      f"   runtime: {run.runtime}   closer: {run.closer}"),
        *_what_it_does(run),
        Text(f"client {run.connection.client}  →  server {run.connection.server}   "
             "(states: inferred from the segments on each row; ss after each step"
             + ("; kernel transitions)" if not run.kernel_note else ")"), style="dim"),
    )
    console.print(Panel(header, expand=False))
    if run.kernel_note:
        console.print(f"[dim]note: {run.kernel_note}; states come from ss only[/dim]")
    render_connection(console, run.connection, run.views, run.verdict, run.observations,
                      run.events, run.bytes, run.transitions, run.kernel_events, run.closer)
    if run.drops:
        console.print(f"[bold red]warning:[/] the kernel dropped {run.drops} frame(s) of this "
                      "capture (buffer full): the ladder may miss segments")
    if run.mode.retries > 1:
        console.print(f"• Tries: {run.tries} of at most {run.mode.retries}"
                      + ("" if run.verdict.simultaneous else
                         f"; the FINs never crossed in {run.tries} tries (the last try is shown)"))
