"""Close-related facts about a capture, computed by tshark when the test runs.

tshark is the independent witness: it dissects the file itself, and only its raw
per-packet fields are used here (flags, raw sequence and acknowledgment numbers, its own
zero-window analysis), so nothing of tcptrace's reasoning leaks into the expected
answers. Streams are keyed by their 4-tuple (VLAN tags are not part of the key, as in
tshark's own tcp.stream). Endpoints are spelled "ip:port" / "[ipv6]:port".
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field

FIELDS = ("ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
          "tcp.flags.syn", "tcp.flags.fin", "tcp.flags.reset", "tcp.flags.ack",
          "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "tcp.analysis.zero_window")

StreamKey = tuple[str, str]     # the two endpoints, sorted


@dataclass
class StreamFacts:
    packets: int = 0
    first_fin: str | None = None        # endpoint that sent the first FIN
    first_close: str | None = None      # endpoint that sent the first FIN or RST
    rst_senders: set[str] = field(default_factory=set)
    simultaneous: bool = False          # both sent a FIN before either FIN was ACKed
    zero_windows: dict[str, int] = field(default_factory=dict)   # sender -> count
    # Per sender: the sequence number of its first FIN, and whether the peer ACKed it.
    fin_seq: dict[str, int] = field(default_factory=dict, repr=False)
    fin_acked: dict[str, bool] = field(default_factory=dict, repr=False)


def endpoint(ip: str, port: str) -> str:
    addr = ipaddress.ip_address(ip)
    return f"[{addr.compressed}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def _flag(value: str) -> bool:
    return value in ("1", "True")       # tshark 4.0 prints 1/0, later versions True/False


def _after(a: int, b: int) -> bool:
    """Sequence number a is later than b (modulo 2**32)."""
    return 0 < (a - b) % 2**32 < 2**31


def tshark_packets(path, tshark: str = "tshark") -> list[dict[str, str]]:
    """The TCP packets of `path` as tshark dissects them, one dict of FIELDS each. With
    tunnels, the innermost header's fields (-E occurrence=l)."""
    args = [tshark, "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "occurrence=l",
            "-E", "separator=\t"]
    for name in FIELDS:
        args += ["-e", name]
    # tshark exits 2 on a damaged file after printing what it could read: keep that.
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines() if line]


def stream_facts(path, tshark: str = "tshark") -> dict[StreamKey, StreamFacts]:
    streams: dict[StreamKey, StreamFacts] = {}
    for p in tshark_packets(path, tshark):
        src = endpoint(p["ip.src"] or p["ipv6.src"], p["tcp.srcport"])
        dst = endpoint(p["ip.dst"] or p["ipv6.dst"], p["tcp.dstport"])
        facts = streams.setdefault(tuple(sorted((src, dst))), StreamFacts())
        facts.packets += 1
        seq, ack, length = int(p["tcp.seq_raw"]), int(p["tcp.ack_raw"]), int(p["tcp.len"])
        if _flag(p["tcp.flags.ack"]) and dst in facts.fin_seq and \
                _after(ack, facts.fin_seq[dst]):
            facts.fin_acked[dst] = True
        if _flag(p["tcp.flags.fin"]) and src not in facts.fin_seq:
            facts.fin_seq[src] = (seq + length + _flag(p["tcp.flags.syn"])) % 2**32
            facts.fin_acked[src] = False
            facts.first_fin = facts.first_fin or src
            # The second side's FIN, sent while the first side's was still unACKed.
            if dst in facts.fin_seq and not facts.fin_acked[dst]:
                facts.simultaneous = True
        if _flag(p["tcp.flags.reset"]):
            facts.rst_senders.add(src)
        if _flag(p["tcp.flags.fin"]) or _flag(p["tcp.flags.reset"]):
            facts.first_close = facts.first_close or src
        if p["tcp.analysis.zero_window"]:
            facts.zero_windows[src] = facts.zero_windows.get(src, 0) + 1
    return streams
