"""Each `diagnose` finding checked against the packets as tshark reads them.

The witness re-states every kind's wire rule (engine/src/diagnose.rs) over tshark's raw
per-frame fields (endpoints, flags, raw sequence and acknowledgment numbers, payload
length, raw window), so a finding passes only if the frames it names really show what
it claims. Nothing of tcptrace's observer is used here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from tshark_facts import endpoint

FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport",
          "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.flags.syn", "tcp.flags.fin",
          "tcp.flags.reset", "tcp.flags.ack", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
          "tcp.window_size_value")


@dataclass(frozen=True)
class Pkt:
    frame: int
    t: float
    src: str
    dst: str
    syn: bool
    fin: bool
    rst: bool
    ack: bool
    seq: int
    ackno: int
    length: int
    win: int


def _flag(value: str) -> bool:
    return value in ("1", "True")


def packets(path, tshark: str = "tshark") -> dict[int, Pkt]:
    """Every TCP frame of `path`, by frame number."""
    args = [tshark, "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "occurrence=l",
            "-E", "separator=\t"]
    for name in FIELDS:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    found = {}
    for line in out.splitlines():
        p = dict(zip(FIELDS, line.split("\t"), strict=True))
        pkt = Pkt(int(p["frame.number"]), float(p["frame.time_epoch"]),
                  endpoint(p["ip.src"] or p["ipv6.src"], p["tcp.srcport"]),
                  endpoint(p["ip.dst"] or p["ipv6.dst"], p["tcp.dstport"]),
                  _flag(p["tcp.flags.syn"]), _flag(p["tcp.flags.fin"]),
                  _flag(p["tcp.flags.reset"]), _flag(p["tcp.flags.ack"]),
                  int(p["tcp.seq_raw"]), int(p["tcp.ack_raw"] or 0), int(p["tcp.len"]),
                  int(p["tcp.window_size_value"] or 0))
        found[pkt.frame] = pkt
    return found


def _after(a: int, b: int) -> bool:
    return 0 < (a - b) % 2**32 < 2**31


class Witness:
    """One finding (a `diagnose --json` record) over a capture's packets."""

    def __init__(self, finding: dict, pkts: dict[int, Pkt]):
        self.f = finding
        self.a = finding["client"] if finding["side"] == "client" else finding["server"]
        self.b = finding["server"] if finding["side"] == "client" else finding["client"]
        self.frames = [pkts[n] for n in finding["frames"]]
        # Every frame of this connection's 4-tuple (its stream and any reuse).
        pair = {self.a, self.b}
        self.conn = [p for p in pkts.values() if {p.src, p.dst} == pair]

    def check(self) -> None:
        getattr(self, self.f["kind"].replace("-", "_"))()

    def _from(self, p: Pkt, who: str) -> bool:
        return p.src == who

    def keep_alive_race(self) -> None:
        fin, data, rst = self.frames
        assert fin.fin and self._from(fin, self.a)
        assert data.length > 0 and self._from(data, self.b) and data.t >= fin.t
        assert rst.rst and self._from(rst, self.a) and rst.t >= data.t
        # Idle: no payload either way in the second before the FIN.
        quiet = [p for p in self.conn if p.length and fin.t - 1.0 < p.t < fin.t]
        assert not quiet and self.f["seconds"] >= 1.0

    def write_after_close(self) -> None:
        fin, data, rst = self.frames
        assert fin.fin and self._from(fin, self.a)
        assert data.length > 0 and self._from(data, self.b) and data.t >= fin.t
        assert rst.rst and self._from(rst, self.a)
        assert not any(p.fin and self._from(p, self.b) and p.t < data.t for p in self.conn)

    def abort_with_unread_data(self) -> None:
        data, rst = self.frames[0], self.frames[-1]
        assert data.length > 0 and self._from(data, self.b)
        assert rst.rst and self._from(rst, self.a)
        assert not any(p.fin and self._from(p, self.a) and p.t <= rst.t for p in self.conn)
        between = [p for p in self.conn if data.frame < p.frame < rst.frame]
        assert not any(p.length and self._from(p, self.a) for p in between), "A answered"

    def half_open_connection(self) -> None:
        answered, rst = self.frames     # B's segment, A's RST without ACK
        assert self._from(answered, self.b) and answered.ack and not answered.rst
        assert rst.rst and not rst.ack and self._from(rst, self.a)
        assert rst.seq == answered.ackno, "the reset takes its seq from the segment's ACK"
        assert not any(p.fin and self._from(p, self.a) and p.t <= rst.t for p in self.conn)

    def close_wait_leak(self) -> None:
        fin, ack = self.frames          # the peer's (b's) FIN, the leaker's (a's) ACK
        assert fin.fin and self._from(fin, self.b)
        assert ack.ack and self._from(ack, self.a) and _after(ack.ackno, fin.seq + fin.length)
        later = [p for p in self.conn if p.frame > fin.frame and self._from(p, self.a)]
        assert not any(p.fin or p.rst for p in later)

    def unacked_fin(self) -> None:
        assert len(self.frames) >= 2
        assert all(p.fin and self._from(p, self.a) for p in self.frames)
        end = self.frames[0].seq + self.frames[0].length
        assert not any(self._from(p, self.b) and p.ack and _after(p.ackno, end)
                       for p in self.conn)

    def zero_window_stall(self) -> None:
        start = self.frames[0]
        assert self._from(start, self.a) and start.win == 0
        probes = [p for p in self.frames[1:] if self._from(p, self.b)]
        assert probes and all(p.length <= 1 for p in probes)
        reopened = [p for p in self.conn if self._from(p, self.a) and p.win
                    and start.frame < p.frame <= probes[-1].frame]
        assert not reopened, "the window opened in between"

    def refused(self) -> None:
        syns = [p for p in self.frames if not p.rst]
        assert syns and all(p.syn and not p.ack and self._from(p, self.f["client"])
                            for p in syns)
        [rst] = [p for p in self.frames if p.rst]
        assert self._from(rst, self.f["server"]) and rst.t >= syns[0].t
        assert not any(p.syn and p.ack for p in self.conn), "no handshake"

    def unanswered_syn(self) -> None:
        assert all(p.syn and not p.ack and self._from(p, self.f["client"])
                   for p in self.frames)
        assert not any(self._from(p, self.f["server"]) for p in self.conn)

    def time_wait_assassination(self) -> None:
        rst = self.frames[-1]
        assert rst.rst and self._from(rst, self.b)
        fins = {p.src for p in self.conn if p.fin and p.frame < rst.frame}
        assert fins == {self.a, self.b}, "both sides had closed: TIME-WAIT"
        # At exactly a's RCV.NXT: the ACK a last sent.
        last_ack = [p for p in self.conn if self._from(p, self.a) and p.frame < rst.frame][-1]
        assert rst.seq == last_ack.ackno

    def time_wait_reuse(self) -> None:
        entered, syn = self.frames
        assert syn.syn and not syn.ack
        fins = {p.src for p in self.conn if p.fin and p.frame <= entered.frame}
        assert fins == {self.a, self.b}
        assert syn.t - entered.t < 60.0     # Linux's TIME-WAIT
