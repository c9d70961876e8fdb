"""Zeek's `conn_state` and `history` for one connection, computed the way Zeek does.

Transcribed from zeek/zeek: `conn_state()` in scripts/base/protocols/conn/main.zeek, and
`update_history()`, `update_window()`, `update_last_seq()` and `UpdateStateMachine()` in
src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc. Zeek keeps a coarse state per
endpoint (not RFC 9293's): INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL (traffic without a
SYN), ESTABLISHED, CLOSED (it sent a FIN) and RESET (it sent a RST); `conn_state` is a
function of the two. Zeek's originator is our client.

Left out: the letters c (bad checksum), g (content gap) and x (analysis limits), which
need data this model does not carry. `^` is written when the first segment came from
our server without a SYN. That approximates Zeek, which flips a connection only when
the sender's port is in its likely_server_ports table; our guessed server is the side
with the lower port, so the two can disagree on unusual ports.
"""

from __future__ import annotations

import re

from .model import ACK, FIN, RST, SYN

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)

# Zeek's per-direction "seen once" history bits (TCP_Endpoint::HistoryMasks); the
# responder's are shifted left by 16.
_H_SYN, _H_FIN, _H_RST, _H_FIN_RST, _H_DATA, _H_ACK, _H_MULTI = 1, 2, 4, 8, 0x10, 0x20, 0x40

_CONTROL = SYN | FIN | RST
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


class ZeekTracker:
    """Feed it every segment (`packet`) in capture order; read `history` and
    `conn_state()` at any time."""

    __slots__ = ("state", "prev", "letters", "_seen", "_last", "_counts", "_thresholds")

    def __init__(self) -> None:
        self.state = [INACTIVE, INACTIVE]   # [originator, responder]
        self.prev = [INACTIVE, INACTIVE]
        self.letters: list[str] = []
        self._seen = 0
        self._last = [0, 0, 0, 0, 0, 0]     # last SYN, FIN, RST key; orig then resp
        self._counts = [0, 0, 0, 0]         # T orig, T resp, W orig, W resp
        self._thresholds = [1, 1, 1, 1]

    def recorded(self, orig: bool, data: bool) -> bool:
        """Whether the side's D (data) or A (plain ACK) letter is in the history: it is
        written once."""
        return bool(self._seen & (_H_DATA if data else _H_ACK) << (0 if orig else 16))

    def flipped(self) -> None:
        self.letters.append("^")

    @property
    def history(self) -> str:
        return "".join(self.letters)

    def packet(self, orig: bool, flags: int, rel_seq: int, length: int, window: int,
               delta_last: int) -> None:
        """One segment. `rel_seq` is its sequence number relative to any fixed base of
        the sender's space; `delta_last` is its end (seq + SYN + payload + FIN, RST
        payload excluded) minus the highest end the sender had reached before it."""
        # Zeek's CheckHistory inlined for the single-flag and plain cases: this runs for
        # every segment. f h r s repeat whenever the sequence key differs from the last.
        i = 0 if orig else 1
        control = flags & _CONTROL
        if control:
            if control & (control - 1):     # two or more of SYN, FIN, RST
                self._multi_flag(i, flags)
            else:
                if control == SYN:
                    bit, code, k, key = _H_SYN, ("H" if flags & ACK else "S"), 0, rel_seq
                elif control == FIN:
                    # A FIN's sequence key is where it sits: after the segment's payload.
                    bit, code, k, key = _H_FIN, "F", 1, rel_seq + length
                else:
                    bit, code, k, key = _H_RST, "R", 2, rel_seq
                mask = bit << (16 * i)
                last = self._last
                k += 3 * i
                if not self._seen & mask:
                    self._seen |= mask
                    self.letters.append(code if orig else code.lower())
                elif key != last[k]:
                    self.letters.append(code if orig else code.lower())
                last[k] = key
        else:
            mask = (_H_DATA if length else _H_ACK if flags & ACK else 0) << (16 * i)
            if mask and not self._seen & mask:
                self._seen |= mask
                code = "D" if length else "A"
                self.letters.append(code if orig else code.lower())
        state = self.state
        st = state[i]
        # update_window(): a zero window counts unless it rides on a RST, its sender
        # was reset, or its receiver has already sent a FIN (no window matters then).
        if window == 0 and not flags & RST and state[1 - i] != CLOSED and st != RESET:
            self._scaled(2 + i, "W", i)
        # update_last_seq(): payload that does not reach past what was already sent.
        if delta_last <= 0 and length > 0 and st != RESET:
            self._scaled(i, "T", i)
        # Past INACTIVE, only a SYN, FIN or RST moves a state.
        if st == INACTIVE or control:
            self._transition(i, flags, length)

    def _add(self, i: int, code: str) -> None:
        self.letters.append(code if i == 0 else code.lower())

    def _once(self, i: int, bit: int, code: str) -> bool:
        """Zeek's CheckHistory: record `code` the first time; True if seen before."""
        mask = bit << (16 * i)
        if self._seen & mask:
            return True
        self._seen |= mask
        self._add(i, code)
        return False

    def _scaled(self, k: int, code: str, i: int) -> None:
        """t and w are logarithmic: the 1st, 10th, 100th ... occurrence adds a letter."""
        self._counts[k] += 1
        if self._counts[k] == self._thresholds[k]:
            self._add(i, code)
            self._thresholds[k] *= 10

    def _multi_flag(self, i: int, flags: int) -> None:
        """Two or more of SYN, FIN and RST on one segment: I for FIN+RST, else Q."""
        if flags & FIN and flags & RST:
            self._once(i, _H_FIN_RST, "I")
        else:
            self._once(i, _H_MULTI, "Q")

    def _set(self, i: int, new: int) -> None:
        if new != self.state[i]:
            self.prev[i] = self.state[i]
            self.state[i] = new

    def _transition(self, i: int, flags: int, length: int) -> None:
        st, peer = self.state[i], self.state[1 - i]
        syn, fin, rst, ack = flags & SYN, flags & FIN, flags & RST, flags & ACK
        if st == INACTIVE:
            if syn:
                if i == 0:
                    self._set(0, SYN_ACK_SENT if ack else SYN_SENT)
                else:
                    if peer == SYN_SENT:
                        self._set(0, ESTABLISHED)
                    self._set(1, ESTABLISHED)
            if fin:
                self._set(i, CLOSED)
            if rst:
                self._set(i, RESET)
            if self.state[i] == INACTIVE:
                if i == 1 and length == 0 and peer == SYN_SENT:
                    pass  # an ACK of a SYN before any SYN+ACK: not a partial connection
                elif ack and peer == ESTABLISHED:
                    self._set(i, ESTABLISHED)
                else:
                    self._set(i, PARTIAL)
        elif st in (SYN_SENT, SYN_ACK_SENT):
            if fin:
                self._set(i, CLOSED)
            if rst:
                self._set(i, RESET)
        elif st in (ESTABLISHED, PARTIAL):
            if syn and st == PARTIAL and peer == INACTIVE and not ack:
                self._set(i, SYN_SENT)
            if fin and not rst:
                self._set(i, CLOSED)
                # A FIN after the peer's FIN-then-RST: Zeek counts it a normal close.
                if peer == RESET and self.prev[1 - i] == CLOSED:
                    self._set(1 - i, CLOSED)
            if rst:
                self._set(i, RESET)
        elif st == CLOSED and rst and peer != CLOSED:
            self._set(i, RESET)

    def conn_state(self, orig_bytes: int, resp_bytes: int) -> str:
        """main.zeek's conn_state(); the byte counts only matter for REJ vs RSTR."""
        os_, rs = self.state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                    os_ == RESET and orig_bytes == 0 and resp_bytes == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.fullmatch(self.history) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"
