"""`tcptrace summary` output: CSV for programs, one connection per line written as the
engine hands it over (JSON Lines are formatted by the engine itself:
engine/src/jsonline.rs); rich tables for people, from running totals, so memory stays flat
however many connections a capture holds."""

from __future__ import annotations

import csv
import heapq
from collections import Counter
from typing import IO, TYPE_CHECKING

from tcptrace.engine import ConnectionSummary
from tcptrace.model import format_endpoint
from tcptrace.render.fit import Col, fitted_table
from tcptrace.untrusted import shown

if TYPE_CHECKING:   # rich is imported by the table functions only: --json needs none of it
    from rich.console import Console
    from rich.table import Table

CLOSE_KINDS = ("fin", "rst", "refused", "half-closed", "unanswered", "open")
CSV_FIELDS = ("client", "server", "vlan", "first", "last", "close", "first_closer",
              "rst_from", "simultaneous", "time_wait", "client_final", "server_final",
              "conn_state", "history", "client_packets", "client_bytes",
              "client_retransmissions", "client_zero_windows", "server_packets",
              "server_bytes", "server_retransmissions", "server_zero_windows",
              "roles_guessed",
              # Added later: at the end, so existing columns keep their positions.
              "client_window_probes", "server_window_probes")


class CsvWriter:
    """CSV_FIELDS, a header row then one row per connection."""

    def __init__(self, out: IO[str]):
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(CSV_FIELDS)

    def write(self, s: ConnectionSummary) -> None:
        conn, v, c, srv = s.conn, s.verdict, s.client, s.server
        self._writer.writerow((
            conn.client, conn.server, ".".join(map(str, conn.vlan)), f"{s.first:.6f}",
            f"{s.last:.6f}", v.close, v.first_closer or "", v.rst_from or "",
            "yes" if v.simultaneous else "no", v.time_wait or "", v.final["client"],
            v.final["server"], v.conn_state, v.history, *c[:4], *srv[:4],
            conn.roles_guessed or "", c.window_probes, srv.window_probes))


# Zeek's one-line meanings (scripts/base/protocols/conn/main.zeek); originator = client.
CONN_STATES = {
    "S0": "connection attempt seen, no reply",
    "S1": "connection established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, close attempt by the originator seen (no reply from the "
          "responder)",
    "S3": "established, close attempt by the responder seen (no reply from the "
          "originator)",
    "RSTO": "established, the originator aborted (sent a RST)",
    "RSTR": "the responder sent a RST",
    "RSTOS0": "the originator sent a SYN then a RST; no SYN+ACK from the responder seen",
    "RSTRH": "the responder sent a SYN+ACK then a RST; no SYN from the originator seen",
    "SH": "the originator sent a SYN then a FIN; no SYN+ACK from the responder seen",
    "SHR": "the responder sent a SYN+ACK then a FIN; no SYN from the originator seen",
    "OTH": "no SYN seen, just midstream traffic",
}
# Zeek's history letters, by their lower-case form.
HISTORY_LETTERS = {
    "s": "SYN", "h": "SYN+ACK", "a": "pure ACK", "d": "data", "f": "FIN", "r": "RST",
    "t": "retransmitted data", "w": "zero window", "i": "FIN and RST together",
    "q": "two of SYN/FIN/RST", "c": "bad checksum", "g": "content gap",
    "x": "analysis partial", "^": "roles flipped (first packet from the responder)",
}
FLOW = ("zero windows", "window probes", "retransmissions")


class Totals:
    """What the tables show, added up one connection at a time. Bounded except the
    per-host and per-TIME-WAIT-endpoint counters, which grow with hosts, not packets."""

    def __init__(self, top: int = 10):
        self.top = top
        self.connections = self.packets = self.simultaneous = 0
        self.first: float | None = None     # capture times: None until a connection
        self.last: float | None = None
        self.kinds: Counter[tuple[str, str]] = Counter()    # (close, first closer or "")
        self.resets: list[ConnectionSummary] = []           # the first `top` RST closes
        self.reset_count = 0
        self.time_wait: Counter[tuple[str, str]] = Counter()  # (endpoint, side)
        self.hosts: dict[str, list[int]] = {}   # ip -> [connections, packets, bytes] sent
        self.conn_states: Counter[str] = Counter()
        # Per FLOW count: [client total, server total, connections with any].
        self.flow = {name: [0, 0, 0] for name in FLOW}
        # Per FLOW count, a min-heap of the `top` connections with the most:
        # (count, -stream, row); ties keep the earlier stream.
        self.most: dict[str, list[tuple[int, int, tuple]]] = {name: [] for name in FLOW}
        # What the capture did rather than TCP (issue 14): connections of which one side
        # is only inferred, frames recorded twice, segments inferred.
        self.one_direction = 0
        self.capture_duplicates = 0
        self.inferred = 0
        # diagnose's findings per kind (the engine's tally, set once the scan is done).
        self.findings: dict[str, int] = {}

    def add(self, s: ConnectionSummary) -> None:
        v, conn = s.verdict, s.conn
        self.connections += 1
        self.packets += s.client.packets + s.server.packets
        self.first = s.first if self.first is None else min(self.first, s.first)
        self.last = s.last if self.last is None else max(self.last, s.last)
        self.kinds[v.close, v.first_closer or ""] += 1
        self.conn_states[v.conn_state] += 1
        # Shown on the fin row: FINs can also cross in a close an RST ends.
        self.simultaneous += v.simultaneous and v.close == "fin"
        if v.close == "rst":
            self.reset_count += 1
            if len(self.resets) < self.top:
                self.resets.append(s)
        # A server's TIME-WAITs pile up on its one port; a client's are spread over
        # ephemeral ports, so they are counted per client address.
        if v.time_wait in ("server", "both"):
            self.time_wait[conn.server, "server"] += 1
        if v.time_wait in ("client", "both"):
            self.time_wait[format_endpoint(conn.client_ip, "*"), "client"] += 1
        self._add_hosts(s)
        self._add_flow(s)
        self.one_direction += v.one_direction
        self.capture_duplicates += s.client.capture_duplicates + s.server.capture_duplicates
        self.inferred += s.client.inferred + s.server.inferred

    def _add_hosts(self, s: ConnectionSummary) -> None:
        conn = s.conn
        same_host = conn.client_ip == conn.server_ip    # 127.0.0.1 to 127.0.0.1
        for ip, sent in ((conn.client_ip, s.client), (conn.server_ip, s.server)):
            host = self.hosts.get(ip)
            if host is None:
                host = self.hosts[ip] = [0, 0, 0]
            if not (same_host and sent is s.server):    # one connection counts once
                host[0] += 1
            host[1] += sent.packets
            host[2] += sent.bytes

    def _add_flow(self, s: ConnectionSummary) -> None:
        c, srv = s.client, s.server
        pairs = ((c.zero_windows, srv.zero_windows), (c.window_probes, srv.window_probes),
                 (c.retransmissions, srv.retransmissions))
        row = (s.stream, s.conn.client, s.conn.server, *(a + b for a, b in pairs))
        for name, (a, b) in zip(FLOW, pairs, strict=True):
            if not a + b:
                continue
            totals = self.flow[name]
            totals[0] += a
            totals[1] += b
            totals[2] += 1
            heap = self.most[name]
            heapq.heappush(heap, (a + b, -s.stream, row))
            if len(heap) > self.top:
                heapq.heappop(heap)


def render_tables(console: Console, path: str, totals: Totals) -> None:
    from rich.markup import escape

    span = (totals.last - totals.first
            if totals.first is not None and totals.last is not None else 0.0)
    name = "standard input" if path == "-" else shown(path)
    plural = "" if totals.connections == 1 else "s"
    console.print(f"[bold]{escape(name)}[/]: {totals.connections:,} TCP connection{plural}, "
                  f"{totals.packets:,} segments over {span:,.1f} s")
    console.print(_kinds_table(console, totals))
    _print_capture_shape(console, totals)
    _print_flow(console, totals)
    if totals.reset_count:
        console.print(_resets_table(console, totals))
    if totals.time_wait:
        console.print(_time_wait_table(console, totals))
    console.print(_talkers_table(console, totals))
    if totals.findings:
        console.print(_findings_table(console, totals))
        console.print("what they mean, with examples: tcptrace diagnose on this capture",
                      markup=False, highlight=False)
    _print_legend(console, totals)


def _kinds_table(console: Console, totals: Totals) -> Table:
    cols = [Col("close"), Col("connections", "right"), Col("share", "right", drop=2),
            Col("client closed first", "right"), Col("server closed first", "right"),
            Col("no closer", "right", drop=1)]
    rows = []
    for kind in CLOSE_KINDS:
        by = {who: totals.kinds[kind, who] for who in ("client", "server", "")}
        n = sum(by.values())
        if n:
            label = kind
            if kind == "fin" and totals.simultaneous:
                label += f" ({totals.simultaneous:,} simultaneous)"
            rows.append((label, f"{n:,}", f"{n / totals.connections:.1%}",
                         f"{by['client']:,}", f"{by['server']:,}", f"{by['']:,}"))
    return fitted_table(console, cols, rows, title="How the connections ended")


def _print_capture_shape(console: Console, totals: Totals) -> None:
    """What the capture, not TCP, did: one side missing, frames recorded twice."""
    parts = []
    if totals.one_direction:
        n = totals.one_direction
        parts.append(f"{n:,} connection{'s' if n != 1 else ''} with one direction captured "
                     "(how they closed is as far as the other side's ACKs prove)")
    if totals.inferred:
        parts.append(f"{totals.inferred:,} segments the capture missed, inferred from "
                     "the other side's ACKs")
    if totals.capture_duplicates:
        parts.append(f"{totals.capture_duplicates:,} capture duplicates (frames recorded "
                     "twice: not retransmissions)")
    if parts:
        console.print("Capture: " + "; ".join(parts) + ".", markup=False)


def _print_flow(console: Console, totals: Totals) -> None:
    """Zero windows, window probes and retransmissions: totals, then the connections
    with the most of each (with their stream numbers, for `replay --stream N`)."""
    if not any(t[2] for t in totals.flow.values()):
        console.print("Flow control: no zero windows, window probes or retransmissions.")
        return
    cols = [Col(""), Col("total", "right"), Col("connections", "right"),
            Col("sent by clients", "right", drop=1), Col("sent by servers", "right", drop=1)]
    rows = [(name, f"{c + s:,}", f"{n:,}", f"{c:,}", f"{s:,}")
            for name, (c, s, n) in totals.flow.items()]
    caption = ("zero window: a receiver's buffer is full; window probe: the sender asks "
               "whether it reopened (Wireshark: zero-window probe, or keep-alive for "
               "Linux's 0-byte probe); retransmission: data sent again")
    console.print(fitted_table(console, cols, rows, title="Flow control", caption=caption))
    best: dict[int, tuple] = {}
    for heap in totals.most.values():
        for _, _, row in heap:
            best[row[0]] = row
    ranked = sorted(best.values(), key=lambda r: (-sum(r[3:]), r[0]))
    cols = [Col("stream", "right"), *_endpoint_cols(), *(Col(name, "right") for name in FLOW)]
    rows = [(str(r[0]), r[1], r[2], *(f"{n:,}" for n in r[3:])) for r in ranked]
    # FILE, not the path: the same tables whether the capture came from a file or a pipe.
    caption = (f"the {totals.top} with the most of each; one in detail: "
               "tcptrace replay FILE --stream N")
    console.print(fitted_table(console, cols, rows, caption=caption,
                               title="Connections with the most"))


def _endpoint_cols() -> list[Col]:
    # An endpoint too wide for its column breaks before the port, not inside it.
    return [Col("client", flex=True, split=":"), Col("server", flex=True, split=":")]


def _resets_table(console: Console, totals: Totals) -> Table:
    more = totals.reset_count - len(totals.resets)
    cols = [Col("stream", "right"), *_endpoint_cols(), Col("first closer", drop=2),
            Col("RST from", drop=1), Col("conn_state"), Col("history")]
    rows = [(str(s.stream), s.conn.client, s.conn.server, s.verdict.first_closer or "-",
             s.verdict.rst_from or "-", s.verdict.conn_state, s.verdict.history)
            for s in totals.resets]
    return fitted_table(console, cols, rows, title="Ended by RST",
                        caption=f"and {more:,} more (--json lists them all)" if more else None)


def _time_wait_table(console: Console, totals: Totals) -> Table:
    cols = [Col("endpoint", flex=True, split=":"), Col("side"), Col("connections", "right")]
    rows = [(endpoint, side, f"{n:,}")
            for (endpoint, side), n in totals.time_wait.most_common(totals.top)]
    return fitted_table(console, cols, rows, title="Left in TIME-WAIT",
                        caption="client ports differ per connection: counted per client "
                                "address")


def _talkers_table(console: Console, totals: Totals) -> Table:
    cols = [Col("host", flex=True), Col("connections", "right"), Col("segments", "right"),
            Col("bytes", "right")]
    ranked = sorted(totals.hosts.items(), key=lambda kv: kv[1][2], reverse=True)
    rows = [(ip, f"{conns:,}", f"{packets:,}", f"{nbytes:,}")
            for ip, (conns, packets, nbytes) in ranked[:totals.top]]
    return fitted_table(console, cols, rows, title="Top talkers (payload sent)")


def _print_legend(console: Console, totals: Totals) -> None:
    """Zeek's conn_state codes seen, with their counts, and the history letters the RST
    table uses: Zeek's vocabulary is terse and documented only in Zeek's scripts."""
    from rich.text import Text

    cols = [Col("conn_state"), Col("connections", "right"), Col("meaning (Zeek)", flex=True)]
    rows = [(code, f"{n:,}", CONN_STATES.get(code, "?"))
            for code, n in sorted(totals.conn_states.items(), key=lambda kv: -kv[1])]
    console.print(fitted_table(console, cols, rows, title="Zeek conn_state",
                               caption="originator = client, responder = server"))
    used = {ch.lower() for s in totals.resets for ch in s.verdict.history}
    if not used:
        return
    letters = [f"{k.upper()}/{k} {v}" if k.isalpha() else f"{k} {v}"
               for k, v in HISTORY_LETTERS.items() if k in used]
    console.print(Text(
        "history (Zeek): " + "; ".join(letters) + ". Upper case: sent by the client "
        "(originator), lower case: by the server; t and w are written at the 1st, 10th, "
        "100th ... time."))


def _findings_table(console: Console, totals: Totals) -> Table:
    """diagnose's findings per kind."""
    from tcptrace.diagnose import KINDS, ORDER

    cols = [Col("finding", flex=True), Col("connections", "right")]
    rows = [(KINDS[k].title, f"{totals.findings[k]:,}") for k in ORDER if k in totals.findings]
    return fitted_table(console, cols, rows, title="Findings")
