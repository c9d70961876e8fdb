"""The ladder's words: one plain-English line per segment saying why it was sent.

The engine's observer decides states and tags; this module only phrases them. A note names the
cause first, then the closing-state changes the segment caused (the ladder's columns
show every state; the note points at the ones that matter for the close).
"""

from __future__ import annotations

from tcptrace.engine import (
    ACK_OF_FIN,
    AFTER_CLOSE,
    CAPTURE_DUPLICATE,
    DELAYED_ACK,
    DUP_ACK,
    INFERRED,
    KEEP_ALIVE,
    MID_CONNECTION,
    OUT_OF_ORDER,
    OUT_OF_WINDOW,
    RETRANSMISSION,
    SIMULTANEOUS,
    WINDOW_FULL,
    WINDOW_PROBE,
    WINDOW_UPDATE,
    ZERO_WINDOW,
    Step,
    tag_names,
)
from tcptrace.model import ACK, FIN, RST, SYN, Connection, PacketView, TcpState, flag_names

_CLOSING_STATES = (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT, TcpState.CLOSING,
                   TcpState.LAST_ACK, TcpState.TIME_WAIT, TcpState.CLOSED)
_OTHER = {"client": "server", "server": "client"}


def relative_views(conn: Connection, initial: tuple[str, str],
                   steps: list[Step]) -> list[PacketView]:
    """The engine's steps (final: its late corrections are in) -> rows; `initial` is
    both states before the first segment."""
    if not steps:
        return []
    t0 = steps[0].t
    before = dict(zip(("client", "server"), initial, strict=True))
    last_win = {"client": -1, "server": -1}
    rst_seen = False
    reach = {"client": 0, "server": 0}     # each side's highest sequence number + 1
    views = []
    for i, step in enumerate(steps):
        late = step.seq + step.length < reach[step.sender]
        note = _note(step, before, last_win[step.sender], rst_seen, conn, late)
        if step.tags & INFERRED and step.flags & FIN and i + 1 < len(steps):
            note = _reread(note, step, steps[i + 1], before)
        reach[step.sender] = max(reach[step.sender], step.seq + step.length)
        seg = step.segment
        views.append(PacketView(step.t - t0, step.sender, flag_names(step.flags), step.seq,
                                step.ack, step.length, step.win, note, step.client_state,
                                step.server_state, tag_names(step.tags), seg.comments, seg))
        before = {"client": step.client_state, "server": step.server_state}
        last_win[step.sender] = step.win
        rst_seen = rst_seen or bool(step.flags & RST)
    return views


def _note(step: Step, before: dict[str, str], prev_win: int, rst_seen: bool,
          conn: Connection, late: bool = False) -> str:
    x = step.sender
    y = _OTHER[x]
    after = {"client": step.client_state, "server": step.server_state}
    if step.tags & CAPTURE_DUPLICATE:
        return (f"capture duplicate: the same {x} frame recorded again (the same bytes),"
                " not a retransmission: it changes nothing")
    if step.tags & INFERRED:
        return _inferred(step, x, y, before, after)
    return _rules(step, x, y, before, after, prev_win, rst_seen, conn, late)


def _inferred(step: Step, x: str, y: str, before: dict[str, str], after: dict[str, str]
              ) -> str:
    """A segment of x's that the capture missed and y's ACKs prove: only what they
    prove (not how x split it into segments, nor its timing)."""
    if step.flags & SYN:
        what = f"{x} accepts: SYN+ACK"
    elif step.flags & FIN:
        what = f"{x}'s FIN" + (f", having ACKed the {y}'s FIN" if step.tags & ACK_OF_FIN
                               else "")
    elif step.length == 1:
        # One sequence number is one byte or a FIN: the engine reads a FIN only once
        # the acknowledging side closes too (next, or already), so say what else it
        # may be.
        what = (f"{x} sends 1 byte (or its FIN: one sequence number either way, the "
                f"{y}'s ACKs cannot tell which)")
    else:
        what = f"{x} sends {step.length} bytes"
    changes = _changes(x, y, before, after, plain=True)
    return f"{what}: inferred from the {y}'s ACKs (not in the capture)" + \
        (f"; {changes}" if changes else "")


def _reread(note: str, step: Step, proof: Step, before: dict[str, str]) -> str:
    """An inferred FIN that its peer ACKed while still open (no FIN of its own on that
    ACK): the engine read that one sequence number as a byte first, then again as the
    FIN when the peer closed next acknowledging nothing more. Say the other reading."""
    x, y = step.sender, _OTHER[step.sender]
    if before[y] != TcpState.ESTABLISHED or proof.sender != y or proof.flags & FIN:
        return note
    return note.replace(
        f"{x}'s FIN:", f"{x}'s FIN (or 1 byte: one sequence number either way; read as "
        f"the FIN as the {y} closed next, acknowledging nothing more):", 1)


def _rules(step: Step, x: str, y: str, before: dict[str, str], after: dict[str, str],
           prev_win: int, rst_seen: bool, conn: Connection, late: bool) -> str:
    if step.flags & RST:
        note = _rst(step, x, y, before, after, conn)
    elif step.tags & AFTER_CLOSE:
        note = _late(step, x, y, rst_seen)
    else:
        if step.flags & SYN:
            note = _syn(step, x)
        elif step.flags & FIN:
            note = _fin(step, x, y, after)
        elif step.length and not step.tags & (WINDOW_PROBE | KEEP_ALIVE):
            note = _data(step, x, y, before, late)
        else:
            note = _ack(step, x, y, before, prev_win)
        changes = _changes(x, y, before, after)
        if changes:
            note = _aside(note, changes)
    if step.tags & MID_CONNECTION:
        start = ("capture starts at the SYN+ACK: client assumed SYN-SENT"
                 if step.flags & SYN else
                 "capture starts mid-connection, both assumed ESTABLISHED")
        note = f"{start}; {note}"
    return note


def _aside(note: str, text: str) -> str:
    """Add `text` in parentheses, inside the note's closing ones if it ends with some."""
    return f"{note[:-1]}; {text})" if note.endswith(")") else f"{note} ({text})"


def _changes(x: str, y: str, before: dict[str, str], after: dict[str, str],
             plain: bool = False) -> str:
    """'client enters FIN-WAIT-1; server CLOSE-WAIT': closing-state changes only (the
    columns show the handshake states well enough); `plain`: the states alone, with
    no word on how long a state lasted (the capture did not show it)."""
    parts: list[str] = []
    for side in (x, y):
        old, new = before[side], after[side]
        # From "?" nothing is entered: a refused SYN's receiver is only filled in later.
        if new == old or new not in _CLOSING_STATES or old == TcpState.UNKNOWN:
            continue
        if plain:
            pass
        elif new == TcpState.TIME_WAIT:
            new = ("TIME-WAIT for 60 s, via FIN-WAIT-2 for µs on Linux"
                   if old == TcpState.FIN_WAIT_1
                   else "TIME-WAIT for 2*MSL, 60 s on Linux")
        elif new == TcpState.CLOSED and old == TcpState.LAST_ACK:
            new = "CLOSED: its socket is gone"
        parts.append(f"{side} {new}" if parts else f"{side} enters {new}")
    return "; ".join(parts)


def _options(step: Step) -> str:
    seg = step.segment
    opts = [f"MSS {seg.mss}"] if seg.mss is not None else []
    if seg.wscale is not None:
        opts.append(f"wscale {seg.wscale}")
    return ", ".join(opts)


def _late(step: Step, x: str, y: str, rst_seen: bool) -> str:
    """A segment from a side that is already CLOSED: it was in flight before."""
    what = ("FIN" if step.flags & FIN else f"{step.length} bytes" if step.length
            else "ACK")
    if step.tags & SIMULTANEOUS:
        return f"{x}'s FIN crossed the {y}'s FIN and RST in flight ({x} is already CLOSED)"
    if rst_seen:
        return f"{x}'s {what} crossed the RST in flight: {x}'s socket is already gone"
    return f"late {what} from {x}: its socket is already CLOSED"


def _syn(step: Step, x: str) -> str:
    if step.flags & ACK:
        if step.tags & RETRANSMISSION:
            return f"{x} retransmits its SYN+ACK"
        opts = "" if step.tags & INFERRED else _options(step)    # unseen options
        return f"{x} accepts: SYN+ACK ({opts})" if opts else f"{x} accepts: SYN+ACK"
    if step.tags & RETRANSMISSION:
        return f"{x} retransmits its SYN (no answer yet)"
    opts = _options(step)
    return f"{x} opens: SYN (ISN chosen{', ' + opts if opts else ''})"


def _fin(step: Step, x: str, y: str, after: dict[str, str]) -> str:
    tags, n = step.tags, step.length
    if tags & OUT_OF_WINDOW:
        return f"{x} sends a FIN on its SYN's sequence number: invalid, {y}'s kernel ignores it"
    if tags & RETRANSMISSION:
        if tags & ACK_OF_FIN:
            return f"{x} ACKs the {y}'s FIN and repeats its own FIN (seq already sent)"
        return f"retransmission of {x}'s FIN (seq already sent)"
    if tags & SIMULTANEOUS:
        return "FINs crossed: simultaneous close"
    if tags & ACK_OF_FIN and after[x] == TcpState.LAST_ACK:
        return f"{x}'s FIN rides on the ACK of the {y}'s FIN (3-segment close)"
    if n:
        return f"{x}'s FIN rides on the last data segment ({n} bytes)"
    if after[x] == TcpState.LAST_ACK:
        return f"{x} closes too: FIN"
    return f"{x} has finished sending: FIN"


def _data(step: Step, x: str, y: str, before: dict[str, str], late: bool = False) -> str:
    tags, n = step.tags, step.length
    if tags & RETRANSMISSION:
        note = f"{x} retransmits {n} bytes (seq already sent)"
    elif tags & OUT_OF_ORDER and late:
        note = (f"{x}'s {n} bytes captured out of order: they fill the gap before"
                " data already seen (counted once, not a retransmission)")
    elif tags & OUT_OF_ORDER:
        note = f"{x} sends {n} bytes after a gap (earlier data not captured)"
    elif before[y] == TcpState.SYN_RECEIVED:
        note = f"{x} completes the handshake and sends {n} bytes"
    elif before[x] == TcpState.CLOSE_WAIT:
        what = f"ACKs the {y}'s FIN and sends" if tags & ACK_OF_FIN else "sends"
        note = f"{x} {what} {n} bytes (half-close: CLOSE-WAIT can still send)"
    else:
        note = f"{x} sends {n} bytes"
    if tags & WINDOW_FULL:
        note += f", filling {y}'s window (window full)"
    if tags & ZERO_WINDOW:
        note += f"; zero window: {x}'s receive buffer is full"
    return note


def _ack(step: Step, x: str, y: str, before: dict[str, str], prev_win: int) -> str:
    tags, acked = step.tags, step.acked
    if tags & WINDOW_PROBE:
        if step.length:
            return ("persist probe (zero-window probe): 1 byte at SND.NXT"
                    " — Wireshark shows TCP ZeroWindowProbe")
        return ("persist probe (zero-window probe): 0-byte ACK at SND.UNA-1"
                " — Wireshark shows TCP Keep-Alive")
    if tags & KEEP_ALIVE:
        return f"keep-alive: {step.length}-byte segment at SND.NXT-1 asks {y} for an ACK"
    if tags & ZERO_WINDOW:
        return f"zero window: {x}'s receive buffer is full, {y} must stop sending"
    if tags & WINDOW_UPDATE:
        if prev_win == 0:
            return f"window update: {x} can receive again (win {step.win})"
        return f"window update: {x}'s window is now {step.win} bytes"
    if before[y] == TcpState.SYN_RECEIVED and acked:
        return f"{x} completes the handshake: ACK"
    late = f"{step.delay * 1000:.0f} ms after" if tags & DELAYED_ACK else ""
    if tags & ACK_OF_FIN:
        what = f"{acked - 1} bytes and the {y}'s FIN" if acked > 1 else f"the {y}'s FIN"
        return f"{x} ACKs {what}" + (f": delayed ACK ({late} the FIN)" if late else "")
    if tags & DUP_ACK:
        return f"duplicate ACK from {x} (ack {step.ack} again)"
    if before[x] == TcpState.TIME_WAIT:
        return f"{x} ACKs again from TIME-WAIT"
    if not acked:
        return f"{x} ACKs (nothing new)"
    note = f"{x} ACKs {acked} bytes"
    if late:
        note += f": delayed ACK ({late} the data)"
    if before[x] == TcpState.FIN_WAIT_2:
        note = _aside(note, "FIN-WAIT-2 still receives")
    return note


def _rst(step: Step, x: str, y: str, before: dict[str, str], after: dict[str, str],
         conn: Connection) -> str:
    xb, yb = before[x], before[y]
    if step.tags & OUT_OF_WINDOW:
        if yb == TcpState.SYN_SENT:
            return f"RST from {x} does not ACK {y}'s SYN: {y}'s kernel ignores it (RFC 9293)"
        if yb == TcpState.TIME_WAIT:
            return f"RST from {x} is not at RCV.NXT: {y} stays in TIME-WAIT"
        return f"RST from {x} is out of window: {y}'s kernel ignores it (RFC 5961)"
    if yb == TcpState.SYN_SENT and after[y] == TcpState.CLOSED:
        port = conn.server_port if x == "server" else conn.client_port
        return f"RST in reply to SYN: nothing listens on port {port} (connection refused)"
    if yb == TcpState.TIME_WAIT:
        return f"RST ends {y}'s TIME-WAIT early (Linux default net.ipv4.tcp_rfc1337=0)"
    if xb == TcpState.CLOSED:
        if after[y] != yb:
            return f"RST from {x}'s kernel (its socket is gone): {y} is reset, no TIME-WAIT"
        return f"RST from {x}'s kernel: no socket for that segment any more, nothing changes"
    if xb == TcpState.SYN_SENT:
        return f"RST from {x}: it abandons its connection attempt"
    if xb in (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2):
        return (f"RST from {x} after its FIN: abortive close — unread data is discarded,"
                " no TIME-WAIT")
    synchronized = xb in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RECEIVED)
    if synchronized and not step.flags & ACK:
        # An abort (close() with unread data, SO_LINGER 0) carries ACK on Linux; a bare
        # RST is what a host sends for a segment it has no connection for.
        return (f"RST from {x}, without ACK: the reply of a host with no connection for the "
                f"{y}'s segment (RFC 9293: {x} lost it, or a middlebox sent the RST), or "
                "an abort by a stack that omits the ACK; no TIME-WAIT on either side")
    return (f"RST from {x}: abortive close — any unsent or unread data is discarded,"
            " no TIME-WAIT on either side")


def describe_recv_q(sock: dict) -> str:
    """'Recv-Q N' for a socket as SocketLine.to_json() gives it. After a FIN arrives,
    ss counts that FIN as one byte in Recv-Q until the application reads EOF."""
    n = sock.get("recv_q", 0)
    fin = n == 1 and sock.get("state") in (TcpState.CLOSE_WAIT, TcpState.LAST_ACK,
                                           TcpState.CLOSING)
    return f"Recv-Q {n:,}" + (" (the FIN, not data)" if fin else "")
