"""What the segments of one bulk transfer say about flow control (pure).

Given a writer and a reader endpoint, every segment is looked at in capture order with the
state a receiver of the capture can know: the reader's window scale (from the SYNs), the
last ACK and window the reader advertised, and how far the writer has sent. Rules:

* window full: a writer data segment whose end reaches the right edge of the reader's
  last advertised window (ack + window), as Wireshark's "TCP Window Full".
* zero window: a reader segment (no SYN/FIN/RST) advertising window 0. The first one of
  an episode starts a zero-window episode; later ones are replies to probes.
* persist (zero-window) probe: while the reader's window is 0, a writer segment of 0 or
  1 byte at SND.UNA - 1 (Linux's `tcp_xmit_probe_skb`: Wireshark calls it
  "TCP Keep-Alive"), or of 1 byte at SND.UNA (the RFC 9293 form: Wireshark's
  "TCP ZeroWindowProbe"). Linux counts the first form in TcpExtTCPWinProbe.
* window update: a reader segment that reopens a zero window, or (Wireshark's rule) a
  0-byte segment with the same ACK whose window changed.
* data resumed: the first writer segment of new data after a zero window reopened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcptrace.backpressure.result import (DATA_RESUMED, WINDOW_FULL, WINDOW_PROBE, WINDOW_UPDATE,
                                          ZERO_WINDOW, Event, WireSummary)
from tcptrace.model import FIN, RST, SYN, Segment

MOD = 1 << 32
PROBE_UNA_MINUS_1 = "0-byte ACK at SND.UNA-1 (Linux)"
PROBE_ONE_BYTE = "1 byte at SND.UNA (RFC 9293)"
WIRESHARK_LABEL = {PROBE_UNA_MINUS_1: "TCP Keep-Alive", PROBE_ONE_BYTE: "TCP ZeroWindowProbe"}


@dataclass
class WireAnalysis:
    events: list[Event] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=dict)   # frame -> comments
    summary: WireSummary = field(default_factory=WireSummary)
    window: list[tuple[float, int]] = field(default_factory=list)  # reader's advertised window
    in_flight: list[tuple[float, int]] = field(default_factory=list)  # writer's sent, unacked


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def classify(segments: list[Segment], writer: str, reader: str) -> WireAnalysis:
    out = WireAnalysis()
    s = out.summary
    w_isn: int | None = None          # writer's ISN (data starts at w_isn + 1)
    writer_syn_scale = reader_syn_scale = None
    scale = 0                         # shift for the reader's windows
    snd_una = snd_nxt = 0             # relative to the writer's first data byte
    rwnd: int | None = None           # reader's last advertised window, bytes
    last_ack: int | None = None
    zero = False                      # inside a zero-window episode
    reopened = False                  # window reopened, new data not seen yet
    probe_waiting: Event | None = None
    probe_no = 0
    syn_window = False                # rwnd is the SYN-ACK's unscaled window

    def rel(seq: int) -> int:
        return (seq - (w_isn + 1)) % MOD if w_isn is not None else seq

    def note(seg: Segment, text: str) -> None:
        out.notes.setdefault(seg.frame, []).append(text)

    for seg in segments:
        src = _endpoint(seg.src, seg.sport)
        if src not in (writer, reader):
            continue
        s.segments += 1
        if src == writer:
            if seg.has(SYN):
                w_isn, writer_syn_scale = seg.seq, seg.wscale
                continue
            if w_isn is None:                      # capture started mid-connection
                w_isn = (seg.seq - 1) % MOD
            start = rel(seg.seq)
            end = start + seg.length
            if zero and seg.length <= 1 and not seg.has(FIN | RST):
                form = None
                if start == (snd_una - 1) % MOD:
                    form = PROBE_UNA_MINUS_1
                elif seg.length == 1 and start == snd_una:
                    form = PROBE_ONE_BYTE
                if form:
                    probe_no += 1
                    s.window_probes += 1
                    s.probe_forms[form] = s.probe_forms.get(form, 0) + 1
                    label = WIRESHARK_LABEL[form]
                    ev = Event(seg.t, WINDOW_PROBE, "writer", "wire",
                               f"persist probe #{probe_no}: {form}", frame=seg.frame,
                               wireshark=label)
                    out.events.append(ev)
                    probe_waiting = ev
                    note(seg, f"tcptrace: zero-window (persist) probe #{probe_no}, {form}; "
                              f"Wireshark labels it [{label}]; the kernel counts it in "
                              f"TcpExtTCPWinProbe")
                    continue
            if seg.length > 0:
                s.data_segments += 1
                if end > snd_nxt:
                    s.bytes_on_wire += end - max(start, snd_nxt)
                    if reopened:
                        reopened = False
                        out.events.append(Event(seg.t, DATA_RESUMED, "writer", "wire",
                                                 "new data after the zero window",
                                                 frame=seg.frame))
                        note(seg, "tcptrace: data resumes after the zero window")
                    snd_nxt = end
                if rwnd is not None and last_ack is not None and rwnd > 0 \
                        and end >= rel(last_ack) + rwnd:
                    s.window_full += 1
                    out.events.append(Event(seg.t, WINDOW_FULL, "writer", "wire",
                                            f"fills the reader's {rwnd}-byte window",
                                            frame=seg.frame, wireshark="TCP Window Full"))
                    note(seg, f"tcptrace: window full, this segment fills the reader's "
                              f"advertised window ({rwnd} bytes)")
            out.in_flight.append((seg.t, max(0, snd_nxt - snd_una)))
            continue

        # from the reader
        if seg.has(SYN):
            reader_syn_scale = seg.wscale
            if writer_syn_scale is not None and reader_syn_scale is not None:
                scale = reader_syn_scale        # both SYNs carried the option: scaling on
                s.reader_wscale, s.writer_wscale = reader_syn_scale, writer_syn_scale
            rwnd, last_ack = seg.win, seg.ack      # never scaled on a SYN
            syn_window = True                      # not comparable with scaled windows
            out.window.append((seg.t, rwnd))
            continue
        if seg.has(RST):
            continue
        win = seg.win << scale
        s.max_window = max(s.max_window, win)
        same_ack = last_ack is not None and seg.ack == last_ack
        if w_isn is not None:
            snd_una = max(snd_una, rel(seg.ack))
        if win == 0 and not seg.has(FIN):
            s.zero_windows += 1
            if not zero:
                zero, reopened = True, False
                s.zero_window_episodes += 1
                detail = "the reader's receive buffer is full: window 0"
                note(seg, "tcptrace: zero window, the reader's receive buffer is full")
            elif probe_waiting is not None:
                s.probes_answered += 1
                detail = f"window still 0 (answers {probe_waiting.detail.split(':')[0]})"
                note(seg, "tcptrace: zero window again, the reply to the persist probe")
            else:
                detail = "window still 0"
                note(seg, "tcptrace: zero window again")
            out.events.append(Event(seg.t, ZERO_WINDOW, "reader", "wire", detail,
                                    frame=seg.frame, wireshark="TCP ZeroWindow"))
        elif zero and win > 0:
            zero, reopened = False, True
            s.window_updates += 1
            out.events.append(Event(seg.t, WINDOW_UPDATE, "reader", "wire",
                                    f"the reader read: window reopens to {win} bytes",
                                    frame=seg.frame,
                                    wireshark="TCP Window Update" if same_ack else None))
            note(seg, f"tcptrace: window update, the window reopens to {win} bytes")
        elif same_ack and seg.length == 0 and not seg.has(FIN) and rwnd is not None \
                and win != rwnd and not syn_window:
            s.window_updates += 1
            out.events.append(Event(seg.t, WINDOW_UPDATE, "reader", "wire",
                                    f"window {rwnd} -> {win} bytes, same ACK",
                                    frame=seg.frame, wireshark="TCP Window Update"))
            note(seg, f"tcptrace: window update, {rwnd} -> {win} bytes")
        probe_waiting = None
        rwnd, last_ack, syn_window = win, seg.ack, False
        out.window.append((seg.t, win))
        out.in_flight.append((seg.t, max(0, snd_nxt - snd_una)))
    return out
