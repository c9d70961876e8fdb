"""One connection's verdict (the tcptrace/1 `verdict` object), from the observer's facts."""

from __future__ import annotations

from .model import Connection, Verdict
from .observer import TIME_WAIT, ConnectionObserver, observe


def classify(conn: Connection, observed: ConnectionObserver | None = None) -> Verdict:
    """`observed`: an observer already fed the whole connection; without one, a fresh
    observer runs here (cheap), so the verdict never depends on how rows were phrased."""
    obs = observed if observed is not None else observe(conn)
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
    # Positional: this runs once per connection of a large capture (summary).
    c_tw, s_tw = c.state == TIME_WAIT, s.state == TIME_WAIT
    time_wait = ("both" if s_tw else "client") if c_tw else ("server" if s_tw else None)
    zeek = obs.zeek
    return Verdict(close, obs.first_closer, _sides(obs.rst_from), obs.simultaneous,
                   time_wait, {"client": c.state, "server": s.state},
                   zeek.conn_state(c.bytes, s.bytes), zeek.history)


def _sides(sides: set[str]) -> str | None:
    if not sides:
        return None
    return "both" if len(sides) == 2 else next(iter(sides))
