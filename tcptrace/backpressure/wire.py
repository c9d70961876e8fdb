"""What the segments of one bulk transfer say about flow control (pure).

One analysis of flow control, the engine's: the connection's segments go through the
observer (engine/src/observer.rs, "Tags") once, and its per-segment tags and relative
numbers (sequence numbers from the sender's ISN, windows in bytes, scaled once both SYNs
carried the option) say what each writer or reader segment is. This module only tells the
story of a bulk transfer from them:

* window full (tag `window-full`): a writer data segment that reaches the right edge of
  the reader's last advertised window, as Wireshark's "TCP Window Full".
* zero window (tag `zero-window`): a reader segment (no SYN/FIN/RST) advertising window
  0. The first one of an episode starts it; later ones answer probes.
* persist (zero-window) probe (tag `window-probe`): while the reader's window is 0, a
  writer segment of 0 bytes at SND.UNA-1 (Linux's `tcp_xmit_probe_skb`, which Wireshark
  calls "TCP Keep-Alive" and the kernel counts in TcpExtTCPWinProbe), or of 1 byte at
  SND.NXT, the next byte of data (RFC 9293 3.8.6.1, other stacks: Wireshark's "TCP
  ZeroWindowProbe").
* window update: a reader segment whose window reopens a zero window, or one the engine
  tags `window-update` (Wireshark's rule: a bare ACK, same ACK, a changed window).
* data resumed: the first writer segment of new data after a zero window reopened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcptrace import engine
from tcptrace.backpressure.result import (
    DATA_RESUMED,
    WINDOW_FULL,
    WINDOW_PROBE,
    WINDOW_UPDATE,
    ZERO_WINDOW,
    Event,
    WireSummary,
)
from tcptrace.engine import Step
from tcptrace.model import ACK, RST, SYN, Connection, Segment

PROBE_UNA_MINUS_1 = "0-byte ACK at SND.UNA-1 (Linux)"
PROBE_ONE_BYTE = "1 byte at SND.NXT (RFC 9293)"
WIRESHARK_LABEL = {PROBE_UNA_MINUS_1: "TCP Keep-Alive", PROBE_ONE_BYTE: "TCP ZeroWindowProbe"}


@dataclass
class WireAnalysis:
    events: list[Event] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=dict)   # frame -> comments
    summary: WireSummary = field(default_factory=WireSummary)
    window: list[tuple[float, int]] = field(default_factory=list)  # reader's advertised window
    in_flight: list[tuple[float, int]] = field(default_factory=list)  # writer's sent, unacked


def classify(segments: list[Segment], writer: str, reader: str) -> WireAnalysis:
    """The flow-control story of the connection between `writer` and `reader` (ip:port);
    segments of other connections are left out."""
    conn = connection_between(segments, writer, reader)
    story = _Story(writer_role="client" if conn.client == writer else "server")
    if conn.segments:
        steps, _, _ = engine.analyse_segments(conn)
        for step in steps:
            story.add(step)
    return story.out


def connection_between(segments: list[Segment], writer: str, reader: str) -> Connection:
    """The segments between the two endpoints, with the client the SYN says (the writer
    when the capture has no SYN)."""
    ours = [s for s in segments if {s.src_endpoint, s.dst_endpoint} == {writer, reader}]
    client = next(((s.src, s.sport) if not s.has(ACK) else (s.dst, s.dport)
                   for s in ours if s.has(SYN)), None)
    if client is None:
        client = next(((s.src, s.sport) if s.src_endpoint == writer else (s.dst, s.dport)
                       for s in ours), ("", 0))
    server = next(((s.dst, s.dport) if (s.src, s.sport) == client else (s.src, s.sport)
                   for s in ours), ("", 0))
    return Connection(client[0], client[1], server[0], server[1], ours)


@dataclass
class _Story:
    """Reads the engine's Steps in capture order. Numbers are the engine's, in the
    writer's sequence space (its first data byte is 1 after a SYN, else 0)."""

    writer_role: str
    out: WireAnalysis = field(default_factory=WireAnalysis)
    started: bool = False
    snd_una: int = 0                  # highest ACK from the reader
    snd_nxt: int = 0                  # end of the writer's highest data
    rwnd: int | None = None           # reader's last advertised window, bytes
    writer_wscale: int | None = None  # the writer's SYN option
    zero: bool = False                # inside a zero-window episode
    reopened: bool = False            # window reopened, no new data seen yet
    probe_waiting: Event | None = None  # the last probe, until the reader's next segment
    probes: int = 0

    def add(self, step: Step) -> None:
        if not self.started:
            self.started = True
            self.snd_una = self.snd_nxt = 1 if step.flags & SYN else 0
        self.out.summary.segments += 1
        if step.sender == self.writer_role:
            self.from_writer(step)
        else:
            self.from_reader(step)

    def note(self, step: Step, text: str) -> None:
        self.out.notes.setdefault(step.segment.frame, []).append(text)

    def event(self, step: Step, kind: str, side: str, detail: str,
              wireshark: str | None = None) -> Event:
        ev = Event(step.t, kind, side, "wire", detail, frame=step.segment.frame,
                   wireshark=wireshark)
        self.out.events.append(ev)
        return ev

    # -- the writer ------------------------------------------------------------------

    def from_writer(self, step: Step) -> None:
        if step.flags & SYN:
            self.writer_wscale = step.segment.wscale
            return
        if step.tags & engine.WINDOW_PROBE:
            self.probe(step)
            return
        if step.length > 0:
            self.data(step)
        self.out.in_flight.append((step.t, max(0, self.snd_nxt - self.snd_una)))

    def probe(self, step: Step) -> None:
        s = self.out.summary
        form = PROBE_ONE_BYTE if step.length else PROBE_UNA_MINUS_1
        label = WIRESHARK_LABEL[form]
        self.probes += 1
        s.window_probes += 1
        s.probe_forms[form] = s.probe_forms.get(form, 0) + 1
        self.probe_waiting = self.event(step, WINDOW_PROBE, "writer",
                                        f"persist probe #{self.probes}: {form}", label)
        self.note(step, f"tcptrace: zero-window (persist) probe #{self.probes}, {form}; "
                        f"Wireshark labels it [{label}]; the kernel counts it in "
                        f"TcpExtTCPWinProbe")

    def data(self, step: Step) -> None:
        s = self.out.summary
        start, end = step.seq, step.seq + step.length
        s.data_segments += 1
        if end > self.snd_nxt:
            s.bytes_on_wire += end - max(start, self.snd_nxt)
            if self.reopened:
                self.reopened = False
                self.event(step, DATA_RESUMED, "writer", "new data after the zero window")
                self.note(step, "tcptrace: data resumes after the zero window")
            self.snd_nxt = end
        if step.tags & engine.WINDOW_FULL:
            s.window_full += 1
            self.event(step, WINDOW_FULL, "writer", f"fills the reader's {self.rwnd}-byte window",
                       "TCP Window Full")
            self.note(step, f"tcptrace: window full, this segment fills the reader's "
                            f"advertised window ({self.rwnd} bytes)")

    # -- the reader ------------------------------------------------------------------

    def from_reader(self, step: Step) -> None:
        s = self.out.summary
        if step.flags & SYN:
            if self.writer_wscale is not None and step.segment.wscale is not None:
                s.reader_wscale, s.writer_wscale = step.segment.wscale, self.writer_wscale
            self.rwnd = step.win                   # never scaled on a SYN
            self.out.window.append((step.t, step.win))
            return
        if step.flags & RST:
            return
        s.max_window = max(s.max_window, step.win)
        self.snd_una = max(self.snd_una, step.ack)
        if step.tags & engine.ZERO_WINDOW:
            self.zero_window(step)
        elif self.zero and step.win > 0:
            self.window_reopens(step)
        elif step.tags & engine.WINDOW_UPDATE:
            s.window_updates += 1
            self.event(step, WINDOW_UPDATE, "reader",
                       f"window {self.rwnd} -> {step.win} bytes, same ACK", "TCP Window Update")
            self.note(step, f"tcptrace: window update, {self.rwnd} -> {step.win} bytes")
        self.probe_waiting = None
        self.rwnd = step.win
        self.out.window.append((step.t, step.win))
        self.out.in_flight.append((step.t, max(0, self.snd_nxt - self.snd_una)))

    def zero_window(self, step: Step) -> None:
        s = self.out.summary
        s.zero_windows += 1
        if not self.zero:
            self.zero, self.reopened = True, False
            s.zero_window_episodes += 1
            detail = "the reader's receive buffer is full: window 0"
            self.note(step, "tcptrace: zero window, the reader's receive buffer is full")
        elif self.probe_waiting is not None:
            s.probes_answered += 1
            detail = f"window still 0 (answers {self.probe_waiting.detail.split(':')[0]})"
            self.note(step, "tcptrace: zero window again, the reply to the persist probe")
        else:
            detail = "window still 0"
            self.note(step, "tcptrace: zero window again")
        self.event(step, ZERO_WINDOW, "reader", detail, "TCP ZeroWindow")

    def window_reopens(self, step: Step) -> None:
        self.zero, self.reopened = False, True
        self.out.summary.window_updates += 1
        label = "TCP Window Update" if step.tags & engine.WINDOW_UPDATE else None
        self.event(step, WINDOW_UPDATE, "reader",
                   f"the reader read: window reopens to {step.win} bytes", label)
        self.note(step, f"tcptrace: window update, the window reopens to {step.win} bytes")
