"""One connection's ladder as the SVG and HTML exports take it: the plain rows, the
words above and below them, and the pcapng comments worth showing, from a replayed
capture or from a live `tcptrace close` run."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tcptrace.ladder_model import PACKET, LadderRow, timeline
from tcptrace.model import Connection, PacketView, Verdict
from tcptrace.render.ladder import conclusion_lines
from tcptrace.render.svg_ladder import Header
from tcptrace.render.table import shown_comments
from tcptrace.untrusted import shown


@dataclass(frozen=True)
class LadderDoc:
    header: Header              # title, endpoints, how it ended (our words)
    lines: tuple[str, ...]      # more lines for the page's header (our words, or shown())
    rows: list[LadderRow]
    comments: list[tuple[str, ...]]   # per row: the file's comments, exact text
    verdict: Verdict


def _comments(rows: list[LadderRow]) -> list[tuple[str, ...]]:
    return [shown_comments(r.view) if r.kind == PACKET and r.view else () for r in rows]


def replay_doc(path: str, index: int, count: int, conn: Connection,
               views: list[PacketView], verdict: Verdict, picked: bool = False) -> LadderDoc:
    """A replayed connection; `picked`: the stream was not asked for, but chosen as the
    first that closed (replay.first_close)."""
    rows = timeline(views)
    where = f", stream {index} of {count} (0..{count - 1})" if count > 1 else ""
    title = f"tcptrace replay {shown(os.path.basename(path))}{where}"
    lines = [f"file: {shown(path)}", "States inferred from the segments, as seen from a "
             "capture point next to both ends"]
    if picked:
        lines.append(f"Stream {index} of {count}: the first connection that closed with a "
                     "FIN or RST (replay --stream N --html FILE for another)")
    if conn.vlan:
        lines.append(f"VLAN {'.'.join(map(str, conn.vlan))}")
    if conn.roles_guessed:
        lines.append(f"Roles guessed ({shown(conn.roles_guessed)})")
    header = Header(title, conn.client, conn.server, tuple(conclusion_lines(verdict)))
    return LadderDoc(header, tuple(lines), rows, _comments(rows), verdict)


def close_doc(run) -> LadderDoc:
    """A live close run (live.CloseRun): segments, ss snapshots, kernel facts, calls."""
    rows = timeline(run.views, run.observations, run.events, run.transitions,
                    run.kernel_events, run.verdict.final)
    title = (f"tcptrace close --mode {run.mode.name} (runtime {run.runtime}, closer "
             f"{run.closer})")
    lines = [*run.what_it_does, "States: inferred from the segments on each row; ss after "
             "each step" + ("" if run.kernel_note else "; kernel transitions")]
    if run.kernel_note:
        lines.append(f"note: {run.kernel_note}; states come from ss only")
    conclusion = conclusion_lines(run.verdict, run.observations, run.bytes, run.closer)
    header = Header(title, run.connection.client, run.connection.server, tuple(conclusion))
    return LadderDoc(header, tuple(lines), rows, _comments(rows), run.verdict)
