"""A tiny factory for hand-built segment sequences (absolute numbers, like a capture).

The client 10.0.0.1:40000 uses ISN 1000, the server 10.0.0.2:80 uses ISN 5000, so a
test that expects relative numbers checks the observer's arithmetic, not the input.
"""

from __future__ import annotations

from tcptrace.model import ACK, FIN, PSH, RST, SYN, Connection, Segment

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)
C, S = 1000, 5000        # the client's and the server's ISN

_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, "A": ACK}


def segment(src: str | tuple[str, int], dst: str | tuple[str, int], flags: str | int = ACK,
            seq: int = 100, ack: int = 0, length: int = 0, win: int = 65535, t: float = 0.0,
            **options) -> Segment:
    """A segment between any two endpoints, each "ip:port" or (ip, port); flags as bits
    or as letters of S F R P A; options (vlan=, mss=, ...) as Segment takes them."""
    (sip, sport), (dip, dport) = (e.rsplit(":", 1) if isinstance(e, str) else e
                                  for e in (src, dst))
    if isinstance(flags, str):
        flags = sum(_BITS[letter] for letter in set(flags))
    return Segment(t, sip, int(sport), dip, int(dport), flags, seq & 0xFFFFFFFF,
                   ack & 0xFFFFFFFF, length, win, **options)


def seg(t: float, who: str, flags: str, seq: int, ack: int = 0, length: int = 0,
        win: int = 65535, **options) -> Segment:
    """Between CLIENT and SERVER: who: 'c' or 's'; flags: letters of S F R P A, e.g. 'SA'."""
    src, dst = (CLIENT, SERVER) if who == "c" else (SERVER, CLIENT)
    return segment(src, dst, flags, seq, ack, length, win, t, **options)


def connection(*segments: Segment) -> Connection:
    return Connection(CLIENT[0], CLIENT[1], SERVER[0], SERVER[1], list(segments))


def handshake(t: float = 0.0, c_isn: int = C, s_isn: int = S, **syn_options) -> list[Segment]:
    """SYN, SYN+ACK, ACK at t, t+0.1 ms, t+0.2 ms."""
    return [seg(t, "c", "S", c_isn, **syn_options),
            seg(t + 0.0001, "s", "SA", s_isn, c_isn + 1, **syn_options),
            seg(t + 0.0002, "c", "A", c_isn + 1, s_isn + 1)]
