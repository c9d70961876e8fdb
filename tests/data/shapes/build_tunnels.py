"""Write tunnels-scapy.pcap: one small TCP connection (handshake, a request, a reply, a
graceful close the client starts) inside each encapsulation this machine's kernel
cannot make (no GRE, IP-in-IP, sit, Geneve or MPLS devices here; VXLAN is recorded for
real by record.sh). Built with scapy, checked against tshark's dissection by
tests/test_shapes.py. Deterministic: the same bytes every run.

    .venv/bin/python tests/data/shapes/build_tunnels.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scapy.contrib.erspan import ERSPAN_II
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Packet
from scapy.utils import wrpcap

OUT = Path(__file__).resolve().parent / "tunnels-scapy.pcap"
A, B = "198.51.100.1", "198.51.100.2"          # the tunnel's endpoints (outer)
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"

# A wrapper puts an inner IP packet (from the client when `up`) in its encapsulation.
Wrap = Callable[[Packet, bool], Packet]


def outer(up: bool) -> Packet:
    return Ether(src=MAC_A if up else MAC_B, dst=MAC_B if up else MAC_A) / \
        IP(src=A if up else B, dst=B if up else A, id=0)


def inner_eth(pkt: Packet, up: bool) -> Packet:
    return Ether(src="02:00:00:00:01:01" if up else "02:00:00:00:01:02",
                 dst="02:00:00:00:01:02" if up else "02:00:00:00:01:01") / pkt


WRAPS: dict[str, tuple[Wrap, str, str]] = {
    # name: (wrapper, client address, server address)
    "gre key 5": (lambda p, up: outer(up) / GRE(key_present=1, key=5) / p,
                  "10.5.0.1", "10.5.0.2"),
    "gre (IPv6 inside)": (lambda p, up: outer(up) / GRE() / p, "fd00:47::1", "fd00:47::2"),
    "ipip": (lambda p, up: outer(up) / p, "10.4.0.1", "10.4.0.2"),
    "6in4": (lambda p, up: outer(up) / p, "fd00:41::1", "fd00:41::2"),
    "geneve 9": (lambda p, up: outer(up) / UDP(sport=40000, dport=6081) /
                 GENEVE(vni=9, proto=0x6558) / inner_eth(p, up), "10.9.0.1", "10.9.0.2"),
    "erspan 42": (lambda p, up: outer(up) / GRE(seqnum_present=1, seqence_number=1) /
                  ERSPAN_II(session_id=42) / inner_eth(p, up), "10.42.0.1", "10.42.0.2"),
    # Labels differ per direction, as label-switched paths do.
    "mpls": (lambda p, up: Ether(src=MAC_A if up else MAC_B, dst=MAC_B if up else MAC_A,
                                 type=0x8847) /
             MPLS(label=100 if up else 300, s=0, ttl=64) / MPLS(label=200, s=1, ttl=64) / p,
             "10.16.0.1", "10.16.0.2"),
    "pppoe 0x1234": (lambda p, up: Ether(src=MAC_A if up else MAC_B,
                                         dst=MAC_B if up else MAC_A) /
                     PPPoE(sessionid=0x1234) / PPP(proto=0x21 if IP in p else 0x57) / p,
                     "10.34.0.1", "10.34.0.2"),
}


def exchange(client: str, server: str, port: int, wrap: Wrap, t0: float
             ) -> list[tuple[float, Packet]]:
    """SYN, SYN+ACK, ACK, request, ACK, reply, ACK, FIN, FIN+ACK, ACK."""
    v6 = ":" in client
    ip = (lambda s, d: IPv6(src=s, dst=d)) if v6 else (lambda s, d: IP(src=s, dst=d))
    c_isn, s_isn, cp = 1000, 5000, 41000 + port % 1000
    steps = [  # (from client, flags, seq, ack, payload)
        (True, "S", c_isn, 0, b""), (False, "SA", s_isn, c_isn + 1, b""),
        (True, "A", c_isn + 1, s_isn + 1, b""), (True, "PA", c_isn + 1, s_isn + 1, b"GET /"),
        (False, "A", s_isn + 1, c_isn + 6, b""), (False, "PA", s_isn + 1, c_isn + 6, b"200 OK"),
        (True, "A", c_isn + 6, s_isn + 7, b""), (True, "FA", c_isn + 6, s_isn + 7, b""),
        (False, "FA", s_isn + 7, c_isn + 7, b""), (True, "A", c_isn + 7, s_isn + 8, b""),
    ]
    out = []
    for i, (up, flags, seq, ack, payload) in enumerate(steps):
        src, dst = (client, server) if up else (server, client)
        sport, dport = (cp, port) if up else (port, cp)
        seg = ip(src, dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                 window=64240) / payload
        out.append((t0 + i * 0.001, wrap(seg, up)))
    return out


def main() -> None:
    packets = []
    for i, (wrap, client, server) in enumerate(WRAPS.values()):
        for t, pkt in exchange(client, server, 8000 + i, wrap, 1_700_000_000 + i):
            pkt.time = t
            packets.append(pkt)
    wrpcap(str(OUT), packets)


if __name__ == "__main__":
    main()
