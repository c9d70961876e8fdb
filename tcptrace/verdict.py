"""One connection's verdict (the tcptrace/1 `verdict` object), from the observer's facts."""

from __future__ import annotations

from .model import Connection, PacketView, Verdict
from .observer import TIME_WAIT, ConnectionObserver, observe


def classify(conn: Connection,
             observed: ConnectionObserver | list[PacketView] | None = None) -> Verdict:
    """`observed` may be an observer that has been fed the whole connection; anything
    else (the rows from annotate(), or None) means: run a fresh observer here, which is
    cheap and keeps the verdict independent of how the rows were phrased."""
    obs = observed if isinstance(observed, ConnectionObserver) else observe(conn)
    c, s = obs.client, obs.server
    fins = (c.fin >= 0) + (s.fin >= 0)
    if obs.rst_ended:
        close = "rst"
    elif obs.refused and not obs.handshake:
        close = "refused"
    elif fins == 2:
        close = "fin"
    elif fins == 1:
        close = "half-open"
    else:
        close = "open"    # also a SYN nobody answered (Zeek: S0)
    final = {"client": c.state, "server": s.state}
    return Verdict(close=close, first_closer=obs.first_closer,
                   rst_from=_sides(obs.rst_from), simultaneous=obs.simultaneous,
                   time_wait=_sides({k for k, v in final.items() if v == TIME_WAIT}),
                   final=final, conn_state=obs.zeek.conn_state(c.bytes, s.bytes),
                   history=obs.zeek.history)


def _sides(sides: set[str]) -> str | None:
    return "both" if len(sides) == 2 else next(iter(sides), None)
