"""`tcptrace claims`: each claim's verdict and the evidence for it."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding

from tcptrace.claims import FALSE, PARTLY, TRUE, Claim
from tcptrace.render.console import ascii_only
from tcptrace.render.fit import plain

_VERDICT_STYLE = {TRUE: "bold green", FALSE: "bold red", PARTLY: "bold yellow"}


def render_claims(claims: list[Claim], console: Console) -> None:
    ascii = ascii_only(console)     # evidence quotes kernel and runtime text ("µs")
    for claim in claims:
        style = _VERDICT_STYLE.get(claim.verdict, "bold")
        console.print(f"[{style}]{claim.verdict.upper():>6}[/]  "
                      f"{escape(plain(claim.claim, ascii))}")
        for line in claim.evidence:
            # Indented as a block, so a long line wraps under its own start.
            console.print(Padding(f"- {escape(plain(line, ascii))}", (0, 0, 0, 8),
                                  expand=False))
        console.print()
