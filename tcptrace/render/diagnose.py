"""`tcptrace diagnose` output: findings grouped by kind, with counts, what each usually
means and what to change, the worst examples with their stream and frame numbers, and
the command to look closer. `--json` lines are written by the CLI as they are found."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from tcptrace.diagnose import KINDS, ORDER, Diagnosis, Finding, PortTally, describe
from tcptrace.render.console import ascii_only
from tcptrace.render.fit import Col, fitted_table, plain
from tcptrace.untrusted import shown

if TYPE_CHECKING:
    from rich.console import Console


def next_command(verb: str, path: str, stream: int | None = None) -> str:
    """`tcptrace VERB FILE [--stream N]`, as the user would type it."""
    at = "" if stream is None else f" --stream {stream}"
    return f"tcptrace {verb} {shlex.quote(shown(path))}{at}"


def render_diagnosis(console: Console, d: Diagnosis) -> None:
    from rich.padding import Padding
    from rich.text import Text

    ascii = ascii_only(console)
    total = sum(d.counts.values())
    name = "standard input" if d.path == "-" else shown(d.path)
    plural = "" if d.connections == 1 else "s"
    head = Text(name, style="bold")
    head.append(f": {d.connections:,} TCP connection{plural}, ", style="")
    head.append(f"{total:,} finding{'s' if total != 1 else ''}" if total else "no findings")
    console.print(head)
    r = d.rules
    console.print(plain(f"thresholds: idle {r.idle:g} s, CLOSE-WAIT {r.close_wait:g} s, "
                        f"zero window {r.zero_window:g} s (--idle, --close-wait, "
                        f"--zero-window)", ascii), markup=False, highlight=False)
    if not total:
        console.print("No connection matches a finding's rule: nothing here explains an "
                      "ECONNRESET, a hang or a leak.", markup=False, highlight=False)
    for kind in ORDER:
        n = d.counts.get(kind, 0)
        if not n:
            continue
        text = KINDS[kind]
        console.print()
        title = Text(plain(f"{text.title} — {n:,} connection{'s' if n != 1 else ''}",
                           ascii), style="bold")
        console.print(title)
        body = Text(text.meaning + "\n", style="")
        body.append("Fix: ", style="bold")
        body.append(text.fix)
        console.print(Padding(body, (0, 0, 0, 2)), highlight=False)
        ports = [p for p in d.ports if p.kind == kind]
        if ports:
            console.print(_ports_table(console, ports))
        worst = d.worst.get(kind, [])
        label = "worst example" if len(worst) == 1 else f"worst {len(worst)} examples"
        console.print(Padding(Text(f"{label}:", style="italic"), (0, 0, 0, 2)))
        for f in worst:
            console.print(Padding(_example(f, ascii, r.idle), (0, 0, 0, 4)),
                          highlight=False)
            # On one line, however long, so that it can be copied whole: the terminal
            # wraps it, nothing is inserted in it.
            command = plain(f"    → {next_command('replay', d.path, f.stream)}", ascii)
            console.print(command, style="cyan", soft_wrap=True, markup=False,
                          highlight=False)


def _example(f: Finding, ascii: bool, idle: float):
    from rich.text import Text

    line = Text(f"stream {f.stream} ", style="bold")
    line.append(plain(f"({f.client} → {f.server}; A = {f.side}): ", ascii))
    line.append(plain(describe(f, idle), ascii))
    return line


def _ports_table(console: Console, ports: list[PortTally]):
    cols = [Col("server", flex=True, split=":"), Col("connections", "right"),
            Col("SYNs", "right"), Col("clients", "right", drop=2),
            Col("over", "right", drop=1), Col("streams", drop=3)]
    rows = [(p.server, f"{p.connections:,}", f"{p.syns:,}", f"{p.clients:,}",
             f"{p.last - p.first:.3g} s", ", ".join(map(str, p.streams)))
            for p in ports]
    return fitted_table(console, cols, rows, title="  per server port")


def finding_sentences(found: list[Finding], path: str | None) -> list[str]:
    """Under a ladder: each finding of this connection in one sentence (the segments
    that prove it carry its `finding:` tag), and where to read more."""
    lines = [f"Finding: {KINDS[f.kind].title}: {describe(f)}" for f in found]
    if found and path is not None:
        lines.append("What it usually means and what to change: "
                     + next_command("diagnose", path))
    return lines
