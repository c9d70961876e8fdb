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
