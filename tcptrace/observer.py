"""Both endpoints' RFC 9293 state machines, run by a passive observer of one connection.

The capture point is taken to sit next to both endpoints (loopback, or a host capturing
its own connection): a segment is sent and received at the moment it is seen. So a
state changes on the row of the segment that causes it, sent or received, as in the
kernel: the receiver of a FIN is CLOSE-WAIT from the FIN's row on, even when its ACK
leaves 40 ms later (the tracepoint sock:inet_sock_set_state agrees on loopback). Two
exceptions, both settled by what the wire shows next:

* A SYN's receiver is "?" until it answers. A SYN+ACK means it was SYN-RECEIVED from the
  SYN on; an RST means nothing listened: CLOSED (not LISTEN: no socket listens on that
  port, the kernel answers for a closed port). The SYN's Step is rewritten then.
* A FIN is taken as received at once, but the receiver's next ACK-bearing segment must
  acknowledge it (Linux always ACKs RCV.NXT). If it does not, the two crossed in flight:
  the receipt is undone on the rows already reported and replayed after that segment.
  This is how crossed FINs end with both sides in CLOSING, as they do in the kernel.

A FIN counts as received only when everything before it in its sender's sequence space
has been seen (or ACKed by the receiver, for segments the capture missed). The capture
cannot see timers: TIME-WAIT, FIN-WAIT-2 and open connections stay as they are at the
end of the file.

Capture starting mid-connection: if the first segment is not a SYN, both sides are
assumed ESTABLISHED before it (`assumed` is set, the first Step is tagged
mid-connection) and relative numbers start at 0 at each side's first sequence number
seen (or first ACK of it, if the peer speaks first).
"""

from __future__ import annotations

from .model import ACK, FIN, RST, SYN, UNKNOWN, Connection, Segment
from .zeek import INACTIVE as ZEEK_INACTIVE, ZeekTracker

SYN_SENT, SYN_RECEIVED, ESTABLISHED = "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"
FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING = "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING"
LAST_ACK, TIME_WAIT, CLOSED = "LAST-ACK", "TIME-WAIT", "CLOSED"

# Tag bits of Step.tags; `tag_names` spells them in this order.
TAG_NAMES = ("mid-connection", "retransmission", "out-of-order", "duplicate-ack",
             "zero-window", "window-update", "window-full", "window-probe", "keep-alive",
             "ack-of-fin", "delayed-ack", "simultaneous-close", "out-of-window", "after-close")
(MID_CONNECTION, RETRANSMISSION, OUT_OF_ORDER, DUP_ACK, ZERO_WINDOW, WINDOW_UPDATE,
 WINDOW_FULL, WINDOW_PROBE, KEEP_ALIVE, ACK_OF_FIN, DELAYED_ACK, SIMULTANEOUS,
 OUT_OF_WINDOW, AFTER_CLOSE) = (1 << i for i in range(len(TAG_NAMES)))

# An ACK this much later than the data it acknowledges, beyond the fastest ACK its
# sender has shown (its round trip via the capture point, from the handshake or later),
# was held back by the delayed-ACK timer: 40 ms minimum on Linux. Only said of an
# endpoint shown to be near the capture point: a far one's ACKs wander with its RTT.
DELAYED_ACK_MIN = 0.030
NEAR = 0.010

_MASK, _HALF, _MOD = 0xFFFFFFFF, 0x80000000, 0x100000000
_PREDICTABLE = SYN | FIN | RST | ACK   # feed_fields' fast path: of these, ACK alone

_ON_FIN_SENT = {ESTABLISHED: FIN_WAIT_1, SYN_RECEIVED: FIN_WAIT_1, CLOSE_WAIT: LAST_ACK}
_ON_FIN_RECEIVED = {ESTABLISHED: CLOSE_WAIT, SYN_RECEIVED: CLOSE_WAIT,
                    FIN_WAIT_1: CLOSING, FIN_WAIT_2: TIME_WAIT}
_ON_FIN_ACKED = {FIN_WAIT_1: FIN_WAIT_2, CLOSING: TIME_WAIT, LAST_ACK: CLOSED}
# Taking back a FIN receipt that proved premature (the receiver cannot have sent
# anything in between, so LAST-ACK and CLOSED cannot come from it).
_UNDO_FIN = {CLOSE_WAIT: ESTABLISHED, CLOSING: FIN_WAIT_1, TIME_WAIT: FIN_WAIT_2}
# States in which receiving a RST destroys a connection (as opposed to a refused
# attempt, a socket that is already gone, or a TIME-WAIT leftover).
_LIVE = frozenset({SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT,
                   CLOSING, LAST_ACK})


def tag_names(tags: int) -> list[str]:
    return [name for i, name in enumerate(TAG_NAMES) if tags >> i & 1]


class Step:
    """One segment as the observer saw it. Relative numbers; window in bytes (scaled
    once both SYNs are seen, raw otherwise); both states after the segment."""

    __slots__ = ("t", "sender", "flags", "seq", "ack", "length", "win",
                 "client_state", "server_state", "tags", "acked", "delay", "segment")

    def __init__(self, t, sender, flags, seq, ack, length, win, client_state,
                 server_state, tags, acked, delay, segment):
        self.t = t
        self.sender = sender            # "client" | "server"
        self.flags = flags
        self.seq = seq                  # relative to the sender's ISN
        self.ack = ack                  # relative to the receiver's ISN; 0 without ACK
        self.length = length
        self.win = win
        self.client_state = client_state
        self.server_state = server_state
        self.tags = tags                # bit set, see TAG_NAMES / tag_names()
        self.acked = acked              # sequence space newly acknowledged by this ACK
        self.delay = delay              # for delayed-ack: seconds since the data arrived
        self.segment = segment


class Endpoint:
    """What the observer knows of one side. Sequence numbers are relative to `base`
    and unwrapped (plain ints that keep growing past 2**32)."""

    __slots__ = ("name", "state", "base", "syn_seen", "syn_t", "wscale", "shift",
                 "nxt", "contig", "hole_start", "hole_end", "una", "fin", "fin_in",
                 "unsure", "steps", "win", "edge", "last_ack", "pending_t", "turnaround",
                 "packets", "bytes", "zero_windows", "retransmissions", "quiet",
                 "synack_sent")

    def __init__(self, name: str):
        self.name = name
        self.state = UNKNOWN
        self.base = -1          # absolute ISN (or first sequence number seen)
        self.syn_seen = False
        self.syn_t = 0.0
        self.wscale = None      # window-scale option of its SYN
        self.shift = 0          # scale applied to its windows once both SYNs are seen
        self.nxt = 0            # highest sequence number sent + 1 (SND.NXT as seen)
        self.contig = 0         # end of what it sent without gaps: the peer's RCV.NXT
        self.hole_start = -1    # one block seen beyond a gap (the latest), which
        self.hole_end = -1      # joins `contig` when the gap is filled
        self.una = 0            # highest ACK received from the peer (SND.UNA)
        self.fin = -1           # sequence number of its FIN
        self.fin_in = False     # it has received the peer's FIN
        self.unsure = False     # ... but has not acknowledged it yet
        self.steps = None       # Steps reported while unsure, to rewrite on undo
        self.win = -1           # last window it advertised, in bytes (-1: none yet)
        self.edge = -1          # right edge of that window, in the peer's space
        self.last_ack = -1      # last ACK number it sent (peer's space)
        self.pending_t = -1.0   # when its oldest unacknowledged data was seen
        self.turnaround = -1.0  # its fastest ACK seen so far, in seconds (-1: none yet)
        self.packets = 0
        self.bytes = 0          # payload bytes, each counted once
        self.zero_windows = 0
        self.retransmissions = 0
        self.quiet = 0          # Zeek ignores its plain ACKs (1), data segments (2)
        self.synack_sent = False

    def rebase(self, value: int) -> None:
        self.base = value
        self.nxt = self.contig = self.una = 0

    def advance(self, rel: int, end: int) -> None:
        """Account for sequence space [rel, end) sent. Only one out-of-order block is
        remembered: enough for a lost segment before a FIN, not for a lossy stream."""
        if rel <= self.contig:
            self.contig = max(self.contig, end)
        elif self.hole_start <= rel <= self.hole_end:
            self.hole_end = max(self.hole_end, end)
        else:
            self.hole_start, self.hole_end = rel, end
        if 0 <= self.hole_start <= self.contig:
            self.contig = max(self.contig, self.hole_end)
            self.hole_start = self.hole_end = -1


class ConnectionObserver:
    """Feed every segment of one connection in capture order."""

    __slots__ = ("client", "server", "_cip", "_cport", "packets", "assumed", "initial",
                 "scaled", "first_closer", "first_close_t", "rst_from", "simultaneous",
                 "refused", "rst_ended", "handshake", "zeek", "_syn_steps", "_syn_side")

    def __init__(self, client_ip: str, client_port: int):
        self.client = Endpoint("client")
        self.server = Endpoint("server")
        self._cip, self._cport = client_ip, client_port
        self.packets = 0
        self.assumed = False        # no SYN at the start: states were assumed
        self.initial = (UNKNOWN, UNKNOWN)  # (client, server) before the first segment
        self.scaled = False         # both SYNs seen, so window scaling is known
        self.first_closer = None    # side that sent the first FIN or RST
        self.first_close_t = None
        self.rst_from: set[str] = set()
        self.simultaneous = False   # FINs crossed
        self.refused = False        # a SYN was answered by RST
        self.rst_ended = False      # a RST destroyed a synchronized connection
        self.handshake = False      # a SYN+ACK was acknowledged
        self.zeek = ZeekTracker()
        self._syn_steps = None      # Steps since a SYN whose receiver has not answered
        self._syn_side = None

    @classmethod
    def for_connection(cls, conn: Connection) -> "ConnectionObserver":
        return cls(conn.client_ip, conn.client_port)

    def feed(self, seg: Segment, annotate: bool = True) -> Step | None:
        """Process one segment. With annotate=False nothing is built for display (no
        Step, None is returned): only the states and the connection-level facts."""
        from_client = seg.sport == self._cport and seg.src == self._cip
        if not annotate:
            self.feed_fields(from_client, seg.t, seg.flags, seg.seq, seg.ack, seg.length,
                             seg.win, seg.wscale)
            return None
        s, r = (self.client, self.server) if from_client else (self.server, self.client)
        return self._feed(s, r, seg.t, seg.flags, seg.seq, seg.ack, seg.length, seg.win,
                          seg.wscale, True, seg)

    def feed_fields(self, from_client: bool, t: float, flags: int, seq: int, ack: int,
                    length: int, win: int, wscale: int | None = None) -> None:
        """feed(annotate=False) from a segment's fields (Segment's meanings), for readers
        that build no Segment.

        Header prediction, as in a kernel's receive path: an in-order segment with ACK
        and no SYN, FIN or RST, between two ESTABLISHED sides with no FIN, gap or zero
        window in play, only moves counters and edges (and Zeek's history, until it
        has the segment's letter). That common case is done inline; the rest takes the
        full path. Both leave the same state (tests feed random segments through both)."""
        if from_client:
            s, r = self.client, self.server
        else:
            s, r = self.server, self.client
        if (flags & _PREDICTABLE == ACK and s.state is ESTABLISHED and r.state is ESTABLISHED
                and win and r.win and s.fin < 0 and r.fin < 0 and s.hole_start < 0):
            nxt, base = s.nxt, s.base
            if (seq - base - nxt) & _MASK == 0 and base >= 0 and r.base >= 0 and s.contig == nxt:
                if not s.quiet & (2 if length else 1):
                    # Zeek's tracker may still want it; once it surely ignores such
                    # segments (a no-op to feed it then), it is not called again.
                    self.zeek.packet(from_client, flags, nxt, length, win, length)
                    self._quiet(s, from_client, length)
                self.packets += 1
                s.packets += 1
                if length:
                    if s.una >= nxt:
                        s.pending_t = t
                    s.bytes += length
                    s.nxt = s.contig = nxt + length
                d = (ack - r.base - r.nxt) & _MASK
                ack = r.nxt + (d - _MOD if d & _HALF else d)
                if ack > r.una:
                    if r.pending_t >= 0:
                        waited = t - r.pending_t
                        if s.turnaround < 0 or waited < s.turnaround:
                            s.turnaround = waited
                    r.una = ack
                    r.pending_t = -1.0
                    if ack > r.contig:
                        r.advance(r.contig, ack)
                        r.nxt = max(r.nxt, ack)
                win <<= s.shift
                if ack >= 0:
                    s.last_ack = ack
                    s.edge = ack + win
                s.win = win
                return
        self._feed(s, r, t, flags, seq, ack, length, win, wscale, False, None)

    def _quiet(self, s: Endpoint, orig: bool, length: int) -> bool:
        """Whether Zeek's tracker ignores a plain segment like this one from s: it has
        recorded s's d (or a) letter, which it writes once, and s is past INACTIVE, the
        only Zeek state a plain segment changes. Both facts are for good, so cached."""
        z = self.zeek
        if z.state[0 if orig else 1] == ZEEK_INACTIVE or not z.recorded(orig, bool(length)):
            return False
        s.quiet |= 2 if length else 1
        return True

    def _feed(self, s: Endpoint, r: Endpoint, t: float, flags: int, seq: int, ack_no: int,
              length: int, raw_win: int, wscale: int | None, annotate: bool,
              seg: Segment | None) -> Step | None:
        """The full path: every rule of the state machine."""
        syn, fin, rst = flags & SYN, flags & FIN, flags & RST
        packets = self.packets
        if not packets:
            self._begin(s, r, flags)
        self.packets = packets + 1
        s.packets += 1
        tags = MID_CONNECTION if not packets and self.assumed else 0

        # Where the segment sits in the sender's sequence space.
        if syn:
            s.syn_t = t             # a retransmitted SYN is the one answered
            if not s.syn_seen:
                s.syn_seen, s.wscale = True, wscale
                s.rebase(seq)
        elif s.base < 0:
            s.rebase(seq)
        d = (seq - s.base - s.nxt) & _MASK
        rel = s.nxt + (d - _MOD if d & _HALF else d)
        if fin and s.syn_seen and not syn and rel + length < 1:
            # A FIN on the SYN's own sequence number (seen from a broken stack): it is
            # below every receiver's RCV.NXT, so no kernel takes it as a FIN.
            fin = 0
            tags |= OUT_OF_WINDOW
            if self.first_closer is None:
                self.first_closer, self.first_close_t = s.name, t
        space = 0 if rst else length + (1 if syn else 0) + (1 if fin else 0)
        end = rel + space
        ack = -1
        if flags & ACK:
            if r.base < 0 and syn:      # a SYN+ACK whose SYN the capture missed
                r.rebase(ack_no - 1)
                r.nxt = r.contig = 1
            elif r.base < 0:
                r.rebase(ack_no)
            d = (ack_no - r.base - r.nxt) & _MASK
            ack = r.nxt + (d - _MOD if d & _HALF else d)
        if syn and s is self.server and self.client.syn_seen and not self.scaled:
            self._learn_scaling()
        win = raw_win if syn else raw_win << s.shift

        # Probes first: they reuse old sequence numbers without being retransmissions.
        pure = not flags & (SYN | FIN | RST)
        if pure and length <= 1:
            if r.win == 0 and (rel == s.nxt if length else rel == s.una - 1):
                tags |= WINDOW_PROBE
            elif rel == s.nxt - 1 and r.win != 0:
                tags |= KEEP_ALIVE
        # In a simultaneous open a side that sent a SYN answers the peer's SYN with a
        # SYN+ACK on its own ISN again (RFC 9293 figure 8): its first is no retransmission.
        if space and rel < s.nxt and not tags & (WINDOW_PROBE | KEEP_ALIVE) and not (
                flags & (SYN | ACK) == SYN | ACK and not s.synack_sent):
            tags |= RETRANSMISSION
            s.retransmissions += 1
            if s.pending_t >= 0:
                s.pending_t = t     # the ACK may answer this copy, not the lost one
        if pure and raw_win == 0:
            tags |= ZERO_WINDOW
            s.zero_windows += 1
        self.zeek.packet(s is self.client, flags, rel, length, raw_win, end - s.nxt)
        if space:
            nxt = s.nxt
            if end > nxt:
                if s.una >= nxt:
                    s.pending_t = t     # the oldest unacknowledged data starts here
                new = end - nxt - (1 if fin else 0)
                s.bytes += length if length < new else new
                s.nxt = end
            contig = s.contig
            if rel > contig:
                tags |= OUT_OF_ORDER
                s.advance(rel, end)
            elif s.hole_start < 0:      # advance()'s common case, inline
                if end > contig:
                    s.contig = end
            else:
                s.advance(rel, end)

        acked, delay = 0, 0.0
        if rst:
            tags |= self._reset(s, r, rel, ack, flags, t)
        elif s.state == CLOSED and not syn:
            # No socket can send this any more: it left before its side learned of
            # the close (it crossed a RST in flight), or it is a stray. Its FIN is
            # still a fact of the wire (who closed, whether FINs crossed).
            tags |= AFTER_CLOSE
            if fin:
                tags |= self._send_fin(s, r, end - 1, ack, t)
        else:
            if ack >= 0 and r.fin >= 0:
                self._check_fin_receipt(s, r, ack, annotate)
            if syn:
                self._send_syn(s, r, flags, t)
            if fin:
                tags |= self._send_fin(s, r, end - 1, ack, t, closes=not syn)
                s.state = _ON_FIN_SENT.get(s.state, s.state)
            if ack > r.una:
                acked = ack - r.una
                tags, delay = self._receive_ack(s, r, ack, t, tags, pure and not length)
            if s.fin >= 0 and not r.fin_in and s.contig > s.fin:
                self._receive_fin(r, sure=False, annotate=annotate)
            # A FIN of the receiver's that this segment proved not yet received by
            # the sender arrives now, after it (the crossing).
            if r.fin >= 0 and not s.fin_in and r.contig > r.fin:
                self._receive_fin(s, sure=False, annotate=annotate)

        if annotate and pure and not tags & (WINDOW_PROBE | KEEP_ALIVE | ZERO_WINDOW):
            tags |= self._window_tags(s, r, rel, ack, win, length)
        if (annotate and length and self.scaled and not tags & WINDOW_PROBE
                and 0 <= r.edge <= rel + length):
            tags |= WINDOW_FULL
        if not rst:                 # a RST's window means nothing (Linux sends 0)
            if ack >= 0:
                s.last_ack = ack
                s.edge = ack + win
            s.win = win

        if not annotate:
            return None
        c = self.client
        srv = self.server
        step = Step(t, s.name, flags, rel, ack if ack >= 0 else 0, length, win,
                    c.state, srv.state, tags, acked, delay, seg)
        if c.steps is not None:
            c.steps.append(step)
        if srv.steps is not None:
            srv.steps.append(step)
        if syn and not flags & ACK and r.state == UNKNOWN:
            self._syn_steps, self._syn_side = [step], r
        elif self._syn_steps is not None:
            self._syn_steps.append(step)
        return step

    # -- the pieces of feed() -------------------------------------------------------

    def _begin(self, s: Endpoint, r: Endpoint, flags: int) -> None:
        if flags & SYN and not flags & ACK:
            s.state = CLOSED
        elif flags & SYN:           # the SYN was missed: its sender must be SYN-SENT
            r.state = SYN_SENT
            self.assumed = True
        else:
            s.state = r.state = ESTABLISHED
            self.assumed = True
        if s is self.server and self.assumed:
            self.zeek.flipped()
        self.initial = (self.client.state, self.server.state)

    def _learn_scaling(self) -> None:
        """RFC 7323: windows are scaled only if both SYNs carried the option."""
        c, srv = self.client, self.server
        self.scaled = True
        if c.wscale is not None and srv.wscale is not None:
            # RFC 7323 2.3: a shift count above 14 is used as 14 (Linux clamps too).
            c.shift, srv.shift = min(c.wscale, 14), min(srv.wscale, 14)

    def _pin_syn_receiver(self, state: str) -> None:
        """The SYN's receiver has answered: fill in the rows since the SYN."""
        attr = "client_state" if self._syn_side is self.client else "server_state"
        for step in self._syn_steps or ():
            setattr(step, attr, state)
        self._syn_steps = None

    def _send_syn(self, s: Endpoint, r: Endpoint, flags: int, t: float) -> None:
        if flags & ACK:
            s.synack_sent = True
            if s.state in (UNKNOWN, CLOSED, SYN_SENT):
                s.state = SYN_RECEIVED
            if r.syn_seen:
                s.turnaround = t - r.syn_t
            self._pin_syn_receiver(SYN_RECEIVED)
        elif s.state in (UNKNOWN, CLOSED, SYN_SENT):
            s.state = SYN_SENT
            if r.state == CLOSED:
                r.state = UNKNOWN   # listening or not: its answer will tell

    def _send_fin(self, s: Endpoint, r: Endpoint, fin_seq: int, ack: int, t: float,
                  closes: bool = True) -> int:
        """The wire facts of a FIN; the caller moves the sender's state. A FIN riding on
        a SYN (`closes` False) closes nothing that was open: no first closer."""
        if s.fin >= 0:
            return 0                # the same FIN again: already counted
        s.fin = fin_seq
        if self.first_closer is None and closes:
            self.first_closer, self.first_close_t = s.name, t
        if r.fin >= 0 and ack <= r.fin:
            # Sent after the peer's FIN, yet without acknowledging it: both FINs were
            # in flight at once.
            self.simultaneous = True
            return SIMULTANEOUS
        return 0

    def _receive_ack(self, s: Endpoint, r: Endpoint, ack: int, t: float, tags: int,
                     bare: bool) -> tuple[int, float]:
        """r learns that s has received its data up to `ack`."""
        delay = 0.0
        if r.state == SYN_RECEIVED or (r.state == SYN_SENT and s.syn_seen):
            if r.state == SYN_RECEIVED:
                self.handshake = True
                s.turnaround = t - r.syn_t
            r.state = ESTABLISHED
        if r.una <= r.fin < ack:
            tags |= ACK_OF_FIN
            r.state = _ON_FIN_ACKED.get(r.state, r.state)
        if r.pending_t >= 0:
            waited = t - r.pending_t
            if (bare and not tags & ZERO_WINDOW and 0 <= s.turnaround < NEAR
                    and waited - s.turnaround >= DELAYED_ACK_MIN):
                tags |= DELAYED_ACK
                delay = waited
            if s.turnaround < 0 or waited < s.turnaround:
                s.turnaround = waited
        r.una = ack
        r.pending_t = -1.0      # timed again from r's next data sent with nothing in flight
        if ack > r.contig:          # it received segments the capture missed
            r.advance(r.contig, ack)
            r.nxt = max(r.nxt, ack)
        return tags, delay

    def _receive_fin(self, y: Endpoint, sure: bool, annotate: bool) -> None:
        new = _ON_FIN_RECEIVED.get(y.state)
        y.fin_in = True
        if new is not None:
            y.state = new
            y.unsure = not sure
            y.steps = [] if annotate and not sure else None

    def _check_fin_receipt(self, s: Endpoint, r: Endpoint, ack: int, annotate: bool) -> None:
        """s's ACK number says whether s has r's FIN."""
        if ack > r.fin:
            if not s.fin_in:        # the capture missed data before the FIN
                self._receive_fin(s, sure=True, annotate=annotate)
            s.unsure, s.steps = False, None
        elif s.fin_in and s.unsure:
            s.state = _UNDO_FIN.get(s.state, s.state)
            attr = "client_state" if s is self.client else "server_state"
            for step in s.steps or ():
                old = getattr(step, attr)
                setattr(step, attr, _UNDO_FIN.get(old, old))
            s.fin_in, s.unsure, s.steps = False, False, None

    def _reset(self, s: Endpoint, r: Endpoint, rel: int, ack: int, flags: int,
               t: float) -> int:
        self.rst_from.add(s.name)
        if s.state in _LIVE or s.state == SYN_SENT:   # an attempt aborted counts too
            self.rst_ended = True
        if s.state == UNKNOWN:      # answering a SYN with RST: nothing listens
            self._pin_syn_receiver(CLOSED)
        s.state = CLOSED
        s.unsure = r.unsure = False
        s.steps = r.steps = None
        if r.state == CLOSED:
            return 0                # answers a segment sent to a socket already gone
        if not self._rst_acceptable(s, r, rel, ack, flags):
            return OUT_OF_WINDOW    # the receiver's kernel ignores it: it closes nothing
        if self.first_closer is None:
            self.first_closer, self.first_close_t = s.name, t
        if r.state == SYN_SENT:
            self.refused = True
        elif r.state in _LIVE:
            self.rst_ended = True
        r.state = CLOSED
        return 0

    def _rst_acceptable(self, s: Endpoint, r: Endpoint, rel: int, ack: int, flags: int) -> bool:
        """Would r's kernel act on this RST? Conservative: only a RST clearly outside
        the window is called ignored; one inside it is taken as accepted (Linux wants
        exactly RCV.NXT and answers others with a challenge ACK, RFC 5961, but the
        capture's idea of RCV.NXT may be off by what it missed)."""
        if r.state == SYN_SENT:     # RFC 9293 3.10.7.3: only with an ACK of the SYN
            return bool(flags & ACK) and ack == r.nxt
        if r.state == TIME_WAIT:    # Linux kills TIME-WAIT only at exactly RCV.NXT
            return rel == s.contig
        if r.state == UNKNOWN:
            return True
        if r.win < 0:
            window = 65535 << 14
        else:
            window = r.win if self.scaled else r.win << 14  # scale unknown: largest
        return s.contig - 1 <= rel <= s.contig + max(window, 1)

    def _window_tags(self, s: Endpoint, r: Endpoint, rel: int, ack: int, win: int,
                     length: int) -> int:
        if length or ack < 0 or ack != s.last_ack or rel != s.nxt:
            return 0
        if win == s.win:
            return DUP_ACK if win else 0
        return WINDOW_UPDATE if win and s.win >= 0 else 0


def observe(conn: Connection) -> ConnectionObserver:
    """Run the observer over a whole connection, facts only (the cheap path)."""
    observer = ConnectionObserver.for_connection(conn)
    for seg in conn.segments:
        observer.feed(seg, annotate=False)
    return observer
