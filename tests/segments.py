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


def seg(t: float, who: str, flags: str, seq: int, ack: int = 0, length: int = 0,
        win: int = 65535, **options) -> Segment:
    """who: 'c' or 's'; flags: letters of S F R P A, e.g. 'SA', 'FA', 'RA'."""
    src, dst = (CLIENT, SERVER) if who == "c" else (SERVER, CLIENT)
    bits = 0
    for letter in flags:
        bits |= _BITS[letter]
    return Segment(t, src[0], src[1], dst[0], dst[1], bits, seq & 0xFFFFFFFF,
                   ack & 0xFFFFFFFF, length, win, **options)


def connection(*segments: Segment) -> Connection:
    return Connection(CLIENT[0], CLIENT[1], SERVER[0], SERVER[1], list(segments))


def handshake(t: float = 0.0, c_isn: int = C, s_isn: int = S, **syn_options) -> list[Segment]:
    """SYN, SYN+ACK, ACK at t, t+0.1 ms, t+0.2 ms."""
    return [seg(t, "c", "S", c_isn, **syn_options),
            seg(t + 0.0001, "s", "SA", s_isn, c_isn + 1, **syn_options),
            seg(t + 0.0002, "c", "A", c_isn + 1, s_isn + 1)]
