"""`tcptrace summary` output: CSV for programs, one connection per line written as the
engine hands it over (JSON Lines are formatted by the engine itself: engine/src/jsonline.rs); rich tables for people, from running totals, so
memory stays flat however many connections a capture holds."""

from __future__ import annotations

import csv
from collections import Counter
from typing import IO, TYPE_CHECKING

from tcptrace.engine import ConnectionSummary
from tcptrace.model import format_endpoint

if TYPE_CHECKING:   # rich is imported by the table functions only: --json needs none of it
    from rich.console import Console
    from rich.table import Table

CLOSE_KINDS = ("fin", "rst", "refused", "half-closed", "unanswered", "open")
CSV_FIELDS = ("client", "server", "vlan", "first", "last", "close", "first_closer",
              "rst_from", "simultaneous", "time_wait", "client_final", "server_final",
              "conn_state", "history", "client_packets", "client_bytes",
              "client_retransmissions", "client_zero_windows", "server_packets",
              "server_bytes", "server_retransmissions", "server_zero_windows",
              "roles_guessed")


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
            v.final["server"], v.conn_state, v.history, *c, *srv,
            conn.roles_guessed or ""))


class Totals:
    """What the tables show, added up one connection at a time. Bounded except the
    per-host and per-TIME-WAIT-endpoint counters, which grow with hosts, not packets."""

    def __init__(self, top: int = 10):
        self.top = top
        self.connections = self.packets = self.simultaneous = 0
        self.first = self.last = None
        self.kinds: Counter[tuple[str, str]] = Counter()    # (close, first closer or "")
        self.resets: list[ConnectionSummary] = []           # the first `top` RST closes
        self.reset_count = 0
        self.time_wait: Counter[tuple[str, str]] = Counter()  # (endpoint, side)
        self.hosts: dict[str, list[int]] = {}   # ip -> [connections, packets, bytes] sent

    def add(self, s: ConnectionSummary) -> None:
        v, conn = s.verdict, s.conn
        self.connections += 1
        self.packets += s.client.packets + s.server.packets
        self.first = s.first if self.first is None else min(self.first, s.first)
        self.last = s.last if self.last is None else max(self.last, s.last)
        self.kinds[v.close, v.first_closer or ""] += 1
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
        same_host = conn.client_ip == conn.server_ip    # 127.0.0.1 to 127.0.0.1
        for ip, sent in ((conn.client_ip, s.client), (conn.server_ip, s.server)):
            host = self.hosts.get(ip)
            if host is None:
                host = self.hosts[ip] = [0, 0, 0]
            if not (same_host and sent is s.server):    # one connection counts once
                host[0] += 1
            host[1] += sent.packets
            host[2] += sent.bytes


def render_tables(console: Console, path: str, totals: Totals) -> None:
    from rich.markup import escape

    span = (totals.last - totals.first) if totals.connections else 0.0
    name = "standard input" if path == "-" else path
    plural = "" if totals.connections == 1 else "s"
    console.print(f"[bold]{escape(name)}[/]: {totals.connections:,} TCP connection{plural}, "
                  f"{totals.packets:,} segments over {span:,.1f} s")
    console.print(_kinds_table(totals))
    if totals.reset_count:
        console.print(_resets_table(totals))
    if totals.time_wait:
        console.print(_time_wait_table(totals))
    console.print(_talkers_table(totals))


def _kinds_table(totals: Totals) -> Table:
    from rich.table import Table

    table = Table(title="How the connections ended", title_justify="left")
    for name in ("close", "connections", "share", "client closed first",
                 "server closed first", "no closer"):
        table.add_column(name, justify="left" if name == "close" else "right")
    for kind in CLOSE_KINDS:
        by = {who: totals.kinds[kind, who] for who in ("client", "server", "")}
        n = sum(by.values())
        if n:
            label = kind
            if kind == "fin" and totals.simultaneous:
                label += f" ({totals.simultaneous:,} simultaneous)"
            table.add_row(label, f"{n:,}", f"{n / totals.connections:.1%}",
                          f"{by['client']:,}", f"{by['server']:,}", f"{by['']:,}")
    return table


def _resets_table(totals: Totals) -> Table:
    from rich.table import Table

    more = totals.reset_count - len(totals.resets)
    table = Table(title="Ended by RST", title_justify="left",
                  caption=f"and {more:,} more (--json lists them all)" if more else None,
                  caption_justify="left")
    # On a narrow terminal the endpoints fold over two lines; the short words never.
    for name in ("client", "server"):
        table.add_column(name, overflow="fold")
    for name in ("first closer", "RST from", "conn_state", "history"):
        table.add_column(name, no_wrap=True)
    for s in totals.resets:
        v = s.verdict
        table.add_row(s.conn.client, s.conn.server, v.first_closer or "-", v.rst_from or "-",
                      v.conn_state, v.history)
    return table


def _time_wait_table(totals: Totals) -> Table:
    from rich.table import Table

    table = Table(title="Left in TIME-WAIT", title_justify="left",
                  caption="client ports differ per connection: counted per client address",
                  caption_justify="left")
    table.add_column("endpoint")
    table.add_column("side")
    table.add_column("connections", justify="right")
    for (endpoint, side), n in totals.time_wait.most_common(totals.top):
        table.add_row(endpoint, side, f"{n:,}")
    return table


def _talkers_table(totals: Totals) -> Table:
    from rich.table import Table

    table = Table(title="Top talkers (payload sent)", title_justify="left")
    table.add_column("host")
    for name in ("connections", "segments", "bytes"):
        table.add_column(name, justify="right")
    ranked = sorted(totals.hosts.items(), key=lambda kv: kv[1][2], reverse=True)
    for ip, (conns, packets, nbytes) in ranked[:totals.top]:
        table.add_row(ip, f"{conns:,}", f"{packets:,}", f"{nbytes:,}")
    return table
