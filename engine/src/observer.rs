//! Both endpoints' RFC 9293 state machines, run by a passive observer of one connection.
//!
//! # Where the observer stands
//!
//! The capture point is taken to sit next to both endpoints (loopback, or a host
//! capturing its own connection): a segment is sent and received at the moment it is
//! seen. So a state changes on the row of the segment that causes it, sent or received,
//! as in the kernel: the receiver of a FIN is CLOSE-WAIT from the FIN's row on, even when
//! its ACK leaves 40 ms later (the tracepoint `sock:inet_sock_set_state` agrees on
//! loopback). Two exceptions, both settled by what the wire shows next:
//!
//! * A SYN's receiver is "?" ([`State::Unknown`]) until it answers. A SYN+ACK means it
//!   was SYN-RECEIVED from the SYN on; an RST means nothing listened: CLOSED (not LISTEN:
//!   no socket listens on that port, the kernel answers for a closed port). The Steps
//!   since the SYN are rewritten then.
//! * A FIN is taken as received at once, but the receiver's next ACK-bearing segment
//!   must acknowledge it (Linux always ACKs RCV.NXT). If it does not, the two crossed in
//!   flight: the receipt is undone on the rows already reported and replayed after that
//!   segment. This is how crossed FINs end with both sides in CLOSING, as they do in the
//!   kernel.
//!
//! A FIN counts as received only when everything before it in its sender's sequence
//! space has been seen (or ACKed by the receiver, for segments the capture missed). The
//! capture cannot see timers: TIME-WAIT, FIN-WAIT-2 and open connections stay as they are
//! at the end of the file.
//!
//! # The close, as the state machine walks it
//!
//! | event (for one side)       | from                          | to          |
//! |----------------------------|-------------------------------|-------------|
//! | it sends a FIN             | ESTABLISHED, SYN-RECEIVED     | FIN-WAIT-1  |
//! | it sends a FIN             | CLOSE-WAIT                    | LAST-ACK    |
//! | it receives the peer's FIN | ESTABLISHED, SYN-RECEIVED     | CLOSE-WAIT  |
//! | it receives the peer's FIN | FIN-WAIT-1 (FINs crossed)     | CLOSING     |
//! | it receives the peer's FIN | FIN-WAIT-2                    | TIME-WAIT   |
//! | its FIN is ACKed           | FIN-WAIT-1                    | FIN-WAIT-2  |
//! | its FIN is ACKed           | CLOSING                       | TIME-WAIT   |
//! | its FIN is ACKed           | LAST-ACK                      | CLOSED      |
//! | it sends or accepts a RST  | any                           | CLOSED      |
//!
//! A FIN+ACK that ACKs a FIN-WAIT-1 side's FIN takes it straight to TIME-WAIT (the
//! 3-segment close). A RST destroys a synchronized connection on both sides with no
//! TIME-WAIT, unless the receiver's kernel would ignore it: in SYN-SENT a RST counts only
//! if it ACKs the SYN (RFC 9293 3.10.7.3), in TIME-WAIT only at exactly RCV.NXT (Linux),
//! elsewhere only inside the receive window (RFC 5961; the observer is conservative and
//! calls only a RST clearly outside it ignored).
//!
//! # A capture that starts mid-connection
//!
//! If the first segment is not a SYN, both sides are assumed ESTABLISHED before it
//! (`assumed` is set, the first Step is tagged mid-connection) and relative numbers start
//! at 0 at each side's first sequence number seen (or first ACK of it, if the peer speaks
//! first). A first segment that is a SYN+ACK means the SYN was missed: its receiver must
//! be SYN-SENT.
//!
//! # Tags
//!
//! Each Step carries what only a capture shows: retransmissions (sequence space sent
//! again; a simultaneous open's first SYN+ACK on its own ISN is not one), out-of-order
//! data (beyond a gap), duplicate ACKs, zero windows and window updates, a window filled,
//! persist probes (below), keep-alives (at SND.NXT-1 while the peer's window is open),
//! the ACK of a FIN, crossed FINs, a RST outside the window, segments from a side already
//! CLOSED, and delayed ACKs: an ACK this much later than the data it acknowledges, beyond
//! the fastest ACK its sender has shown (its round trip via the capture point, from the
//! handshake or later), was held back by the delayed-ACK timer (40 ms minimum on Linux).
//! That is only said of an endpoint shown to be near the capture point: a far one's ACKs
//! wander with its RTT.
//!
//! Two tags come from what the capture itself did: `capture-duplicate`, the same frame
//! recorded twice, which moves nothing (`copies.rs`); and `inferred`, a segment the
//! capture missed that the other side's ACKs prove, fed through the state machine just
//! before the ACK that proves it (`infer.rs`). Data that fills the gap before a block
//! already seen is `out-of-order` (bytes seen late, counted once), not a retransmission.
//!
//! A persist (zero-window) probe is a segment without SYN, FIN or RST, sent while the
//! last window its receiver advertised is 0, in one of two shapes:
//!
//! * 0 bytes at SND.UNA-1: Linux's `tcp_xmit_probe_skb`, an ACK on an already
//!   acknowledged number that the receiver must answer with its window. Wireshark
//!   labels it "TCP Keep-Alive"; the kernel counts it in `TcpExtTCPWinProbe`.
//! * 1 byte at SND.NXT: the next byte of data, as RFC 9293 3.8.6.1 (and RFC 1122
//!   4.2.2.17) describe it and other stacks send it; Wireshark's "TCP ZeroWindowProbe"
//!   (same rule: one byte at its next expected sequence number). The persist timer only
//!   runs with nothing in flight, so SND.UNA and SND.NXT are then the same number; a
//!   1-byte segment at SND.UNA below SND.NXT resends data in flight and is a
//!   retransmission, as Wireshark calls it too.
//!
//! The zero window refuses the probe's byte, so a probe advances nothing (SND.NXT, bytes
//! counted, RCV.NXT): a stack that probes with the same byte again is at SND.NXT again,
//! and the byte counts when the data resumes. A probe is never a retransmission.
//!
//! # Numbers
//!
//! Sequence numbers are relative to each side's ISN (or first number seen) and unwrapped:
//! plain `i64`s that keep growing past 2^32. A 32-bit number is placed within 2^31 of
//! where its side's stream has reached, as the Python engine's masks do; that arithmetic
//! wraps (`wrapping_*`) so no input can make it panic, though only a stream of more than
//! 2^30 segments could reach the edge of an `i64`.

use crate::diagnose::{Clues, Mark, Seen};
use crate::segment::{Segment, ACK, FIN, RST, SYN};
use crate::zeek::ZeekTracker;

mod copies;
mod infer;

/// One endpoint's RFC 9293 state as the observer infers it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub enum State {
    /// Not pinned down yet: a SYN's receiver that has not answered.
    #[default]
    Unknown,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    /// Also "the socket is gone", or no socket at all (a refused SYN's receiver).
    Closed,
}

impl State {
    /// RFC 9293's name, hyphenated; "?" for Unknown.
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "?",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
            State::Closed => "CLOSED",
        }
    }

    /// Sending a FIN.
    fn on_fin_sent(self) -> State {
        match self {
            State::Established | State::SynReceived => State::FinWait1,
            State::CloseWait => State::LastAck,
            other => other,
        }
    }

    /// Receiving the peer's FIN.
    fn on_fin_received(self) -> Option<State> {
        match self {
            State::Established | State::SynReceived => Some(State::CloseWait),
            State::FinWait1 => Some(State::Closing),
            State::FinWait2 => Some(State::TimeWait),
            _ => None,
        }
    }

    /// Its own FIN acknowledged.
    fn on_fin_acked(self) -> State {
        match self {
            State::FinWait1 => State::FinWait2,
            State::Closing => State::TimeWait,
            State::LastAck => State::Closed,
            other => other,
        }
    }

    /// Taking back a FIN receipt that proved premature (the receiver cannot have sent
    /// anything in between, so LAST-ACK and CLOSED cannot come from it).
    fn undo_fin(self) -> State {
        match self {
            State::CloseWait => State::Established,
            State::Closing => State::FinWait1,
            State::TimeWait => State::FinWait2,
            other => other,
        }
    }

    /// States in which receiving a RST destroys a connection (as opposed to a refused
    /// attempt, a socket that is already gone, or a TIME-WAIT leftover).
    fn live(self) -> bool {
        matches!(
            self,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
        )
    }

    /// States a SYN moves on from (a SYN from any other is a stray).
    fn before_sync(self) -> bool {
        matches!(self, State::Unknown | State::Closed | State::SynSent)
    }
}

/// Tag bits of `Step::tags`; `tag_names` spells them in this order.
pub const TAG_NAMES: [&str; 16] = [
    "mid-connection",
    "retransmission",
    "out-of-order",
    "duplicate-ack",
    "zero-window",
    "window-update",
    "window-full",
    "window-probe",
    "keep-alive",
    "ack-of-fin",
    "delayed-ack",
    "simultaneous-close",
    "out-of-window",
    "after-close",
    "capture-duplicate",
    "inferred",
];
pub const MID_CONNECTION: u16 = 1 << 0;
pub const RETRANSMISSION: u16 = 1 << 1;
pub const OUT_OF_ORDER: u16 = 1 << 2;
pub const DUP_ACK: u16 = 1 << 3;
pub const ZERO_WINDOW: u16 = 1 << 4;
pub const WINDOW_UPDATE: u16 = 1 << 5;
pub const WINDOW_FULL: u16 = 1 << 6;
pub const WINDOW_PROBE: u16 = 1 << 7;
pub const KEEP_ALIVE: u16 = 1 << 8;
pub const ACK_OF_FIN: u16 = 1 << 9;
pub const DELAYED_ACK: u16 = 1 << 10;
pub const SIMULTANEOUS: u16 = 1 << 11;
pub const OUT_OF_WINDOW: u16 = 1 << 12;
pub const AFTER_CLOSE: u16 = 1 << 13;
pub const CAPTURE_DUPLICATE: u16 = 1 << 14;
pub const INFERRED: u16 = 1 << 15;

/// A frame holding the same bytes as one its sender's side showed this recently (the
/// same numbers, flags, window, IPv4 ID and TCP checksum) is the capture's copy, not a
/// second segment: a SPAN port or `-i any` over a bridge records copies microseconds
/// apart, while no stack retransmits within 2 ms with the same IP ID and checksum.
pub const DUPLICATE_WINDOW: f64 = 0.002;

/// The names of the tags set in `tags`, in `TAG_NAMES` order.
pub fn tag_names(tags: u16) -> Vec<&'static str> {
    TAG_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| tags >> i & 1 != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// An ACK this much later than the data it acknowledges, beyond its sender's fastest
/// ACK, was held back by the delayed-ACK timer (40 ms minimum on Linux).
pub const DELAYED_ACK_MIN: f64 = 0.030;
/// A sender whose fastest ACK came within this is near the capture point.
pub const NEAR: f64 = 0.010;

const MASK: i64 = 0xFFFF_FFFF;
const HALF: i64 = 0x8000_0000;
const MODULUS: i64 = 0x1_0000_0000;
/// RFC 7323 2.3: a shift count above 14 is used as 14 (Linux clamps too).
const MAX_WSCALE: u8 = 14;

/// A side's two latest segments: (fingerprint, time, the peer's packets then).
type Recent = [(u64, f64, u64); 2];

/// Which side of the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

/// One segment as the observer saw it. Relative numbers; window in bytes (scaled once
/// both SYNs are seen, raw otherwise); both states after the segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub t: f64,
    pub sender: Role,
    pub flags: u8,
    /// Relative to the sender's ISN.
    pub seq: i64,
    /// Relative to the receiver's ISN; 0 without ACK.
    pub ack: i64,
    pub length: u32,
    pub win: i64,
    pub client_state: State,
    pub server_state: State,
    /// Bit set, see `TAG_NAMES` / `tag_names()`.
    pub tags: u16,
    /// Sequence space newly acknowledged by this ACK.
    pub acked: i64,
    /// For delayed-ack: seconds since the data arrived.
    pub delay: f64,
}

impl Step {
    fn state_mut(&mut self, role: Role) -> &mut State {
        match role {
            Role::Client => &mut self.client_state,
            Role::Server => &mut self.server_state,
        }
    }
}

/// What the observer knows of one side. Sequence numbers are relative to `base` and
/// unwrapped (plain integers that keep growing past 2^32).
#[derive(Clone, Debug, PartialEq)]
pub struct Side {
    pub role: Role,
    pub state: State,
    /// Absolute ISN (or first sequence number seen); -1: none yet.
    pub base: i64,
    pub syn_seen: bool,
    /// When its (latest) SYN was seen: a retransmitted SYN is the one answered.
    pub syn_t: f64,
    /// Window-scale option of its SYN.
    pub wscale: Option<u8>,
    /// Scale applied to its windows once both SYNs are seen.
    pub shift: u8,
    /// Highest sequence number sent + 1 (SND.NXT as seen).
    pub nxt: i64,
    /// End of what it sent without gaps: the peer's RCV.NXT.
    pub contig: i64,
    /// One block seen beyond a gap (the latest), which joins `contig` when the gap is
    /// filled; -1: none.
    pub hole_start: i64,
    pub hole_end: i64,
    /// Highest ACK received from the peer (SND.UNA).
    pub una: i64,
    /// Sequence number of its FIN; -1: none.
    pub fin: i64,
    /// It has received the peer's FIN ...
    pub fin_in: bool,
    /// ... but has not acknowledged it yet.
    pub unsure: bool,
    /// While unsure: the first of the Steps reported since (every later one is too), to
    /// rewrite if the receipt is undone.
    pub unsure_from: Option<usize>,
    /// Last window it advertised, in bytes (-1: none yet).
    pub win: i64,
    /// Right edge of that window, in the peer's space (-1: none).
    pub edge: i64,
    /// Last ACK number it sent, in the peer's space (-1: none).
    pub last_ack: i64,
    /// When its oldest unacknowledged data was seen (-1: nothing pending).
    pub pending_t: f64,
    /// Its fastest ACK seen so far, in seconds (-1: none yet).
    pub turnaround: f64,
    pub packets: u64,
    /// Payload bytes, each counted once.
    pub bytes: u64,
    pub zero_windows: u64,
    /// Segments tagged WINDOW_PROBE: persist probes into the peer's zero window.
    pub window_probes: u64,
    pub retransmissions: u64,
    pub synack_sent: bool,
}

impl Side {
    pub fn new(role: Role) -> Self {
        Side {
            role,
            state: State::Unknown,
            base: -1,
            syn_seen: false,
            syn_t: 0.0,
            wscale: None,
            shift: 0,
            nxt: 0,
            contig: 0,
            hole_start: -1,
            hole_end: -1,
            una: 0,
            fin: -1,
            fin_in: false,
            unsure: false,
            unsure_from: None,
            win: -1,
            edge: -1,
            last_ack: -1,
            pending_t: -1.0,
            turnaround: -1.0,
            packets: 0,
            bytes: 0,
            zero_windows: 0,
            window_probes: 0,
            retransmissions: 0,
            synack_sent: false,
        }
    }

    fn rebase(&mut self, value: i64) {
        self.base = value;
        self.nxt = 0;
        self.contig = 0;
        self.una = 0;
    }

    /// A 32-bit number of this side's space, relative and unwrapped: the value within
    /// 2^31 of `nxt` that is congruent to `abs - base` modulo 2^32.
    fn relative(&self, abs: u32) -> i64 {
        let d = i64::from(abs)
            .wrapping_sub(self.base)
            .wrapping_sub(self.nxt)
            & MASK;
        let d = if d & HALF != 0 { d - MODULUS } else { d };
        self.nxt.wrapping_add(d)
    }

    /// Account for sequence space [rel, end) sent. Only one out-of-order block is
    /// remembered: enough for a lost segment before a FIN, not for a lossy stream.
    fn advance(&mut self, rel: i64, end: i64) {
        if rel <= self.contig {
            self.contig = self.contig.max(end);
        } else if self.hole_start <= rel && rel <= self.hole_end {
            self.hole_end = self.hole_end.max(end);
        } else {
            self.hole_start = rel;
            self.hole_end = end;
        }
        if 0 <= self.hole_start && self.hole_start <= self.contig {
            self.contig = self.contig.max(self.hole_end);
            self.hole_start = -1;
            self.hole_end = -1;
        }
    }

    /// Whether sequence space starting at `rel` lies in the gap before the block seen
    /// beyond it: bytes the capture shows late (out of order), not again.
    fn fills_hole(&self, rel: i64) -> bool {
        self.hole_start >= 0 && self.contig <= rel && rel < self.hole_start
    }

    /// Receive the peer's FIN. `record_from`: the index the current Step will take, when
    /// Steps are recorded; an unsure receipt remembers it to rewrite from there on undo.
    fn receive_fin(&mut self, sure: bool, record_from: Option<usize>) {
        self.fin_in = true;
        if let Some(new) = self.state.on_fin_received() {
            self.state = new;
            self.unsure = !sure;
            self.unsure_from = if sure { None } else { record_from };
        }
    }
}

/// A segment's place in its sender's space, worked out before any state moves.
struct Position {
    /// Relative sequence number.
    rel: i64,
    /// Sequence space it occupies: payload + SYN + FIN; a RST's payload occupies none.
    space: i64,
    /// rel + space.
    end: i64,
    /// Relative ACK number; -1 without ACK.
    ack: i64,
    /// FIN, unless the FIN was invalid (on the SYN's own sequence number).
    fin: bool,
    /// Window in bytes (scaled, except on a SYN).
    win: i64,
}

/// Feed every segment of one connection in capture order.
#[derive(Clone, Debug)]
pub struct Observer {
    pub client: Side,
    pub server: Side,
    /// Everything else, apart from the sides so that the rules can borrow the sender,
    /// the receiver and these at once (moving the sides out and back for each segment
    /// cost four 176-byte copies per segment). Its fields read as the Observer's own.
    machine: Machine,
}

/// The observer's facts other than the two sides, and the rules that move them.
#[derive(Clone, Debug)]
pub struct Machine {
    pub packets: u64,
    /// No SYN at the start: states were assumed.
    pub assumed: bool,
    /// (client, server) before the first segment.
    pub initial: (State, State),
    /// Both SYNs seen, so window scaling is known.
    pub scaled: bool,
    /// Side that sent the first FIN or RST.
    pub first_closer: Option<Role>,
    pub first_close_t: Option<f64>,
    pub rst_from_client: bool,
    pub rst_from_server: bool,
    /// FINs crossed.
    pub simultaneous: bool,
    /// A SYN was answered by RST.
    pub refused: bool,
    /// A RST destroyed a synchronized connection (or aborted an attempt).
    pub rst_ended: bool,
    /// A SYN+ACK was acknowledged.
    pub handshake: bool,
    pub zeek: ZeekTracker,
    /// What `diagnose`'s rules need, gathered as the segments pass.
    pub clues: Clues,
    steps: Vec<Step>,
    /// Segments inferred while annotating, each with the index of its Step.
    inferred_segments: Vec<(usize, Segment)>,
    /// Each side's (client, server) two latest segments' fingerprints and times, with
    /// the peer's packet count then, to recognise capture copies.
    recent: [Recent; 2],
    /// Per side (client, server): frames that were the capture's copies of its
    /// segments, and its segments inferred from the peer's ACKs.
    copies: [u64; 2],
    inferred: [u64; 2],
    /// Steps since a SYN whose receiver has not answered: from this index on.
    syn_from: Option<usize>,
    syn_side: Option<Role>,
    /// A one-number advance that may be the unseen side's FIN (`infer.rs`).
    reread: Option<Box<infer::Reread>>,
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for Observer {
    type Target = Machine;

    fn deref(&self) -> &Machine {
        &self.machine
    }
}

impl std::ops::DerefMut for Observer {
    fn deref_mut(&mut self) -> &mut Machine {
        &mut self.machine
    }
}

impl Observer {
    pub fn new() -> Self {
        Observer {
            client: Side::new(Role::Client),
            server: Side::new(Role::Server),
            machine: Machine::new(),
        }
    }

    /// Frames that were the capture's copies of `role`'s segments (also in its packets).
    pub fn capture_duplicates(&self, role: Role) -> u64 {
        self.copies[role as usize]
    }

    /// `role`'s segments the capture missed, inferred from the peer's ACKs (no packets).
    pub fn inferred(&self, role: Role) -> u64 {
        self.inferred[role as usize]
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn into_steps(self) -> Vec<Step> {
        self.machine.steps
    }

    /// The Steps with their segments, inferred ones in their places among `kept` (the
    /// segments as captured, one per Step that is not inferred).
    pub fn into_detail(self, kept: Vec<Segment>) -> (Vec<Segment>, Vec<Step>) {
        self.machine.into_detail(kept)
    }

    /// One segment, in capture order. The caller says which side sent it (roles are
    /// decided outside). With `annotate` false no Step is recorded (the cheap path for
    /// big captures); with true a Step is appended to `steps`, and earlier steps are
    /// rewritten in place when the observer learns more (the SYN receiver pinned, a FIN
    /// receipt undone, a one-number advance read again: `infer.rs`).
    pub fn feed(&mut self, from_client: bool, seg: &Segment, annotate: bool) {
        let Observer {
            client,
            server,
            machine,
        } = self;
        let (s, r) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        machine.feed_sides(s, r, seg, annotate);
    }
}

impl Machine {
    fn new() -> Self {
        Machine {
            packets: 0,
            assumed: false,
            initial: (State::Unknown, State::Unknown),
            scaled: false,
            first_closer: None,
            first_close_t: None,
            rst_from_client: false,
            rst_from_server: false,
            simultaneous: false,
            refused: false,
            rst_ended: false,
            handshake: false,
            zeek: ZeekTracker::new(),
            clues: Clues::default(),
            steps: Vec::new(),
            inferred_segments: Vec::new(),
            recent: [[(0, f64::NEG_INFINITY, 0); 2]; 2],
            copies: [0; 2],
            inferred: [0; 2],
            syn_from: None,
            syn_side: None,
            reread: None,
        }
    }

    /// A segment from `s` to `r`: the capture's copy of one already seen is only
    /// tagged; segments of `r`'s that this one proves the capture missed are inferred
    /// first; then the state machine.
    fn feed_sides(&mut self, s: &mut Side, r: &mut Side, seg: &Segment, annotate: bool) {
        let fingerprint = copies::fingerprint(seg);
        if self.packets > 0 {
            if self.reread.is_some() {
                // Before anything reads the state: this segment may settle a reading.
                self.follow_reread(s, r, seg, annotate);
            }
            if self.capture_copy(s, r, seg, fingerprint, annotate) {
                return;
            }
            self.infer(s, r, seg, annotate);
        }
        if let Some(fp) = fingerprint {
            // Field by field: a new array here is a memcpy call per segment.
            let recent = &mut self.recent[s.role as usize];
            recent[1] = recent[0];
            recent[0] = (fp, seg.t, r.packets);
        }
        self.apply(s, r, seg, annotate, false);
    }

    /// Every rule of the state machine, for a segment seen or (`inferred`) proved by
    /// the peer's ACKs: an inferred one is no packet, tells Zeek nothing and is no
    /// retransmission or probe.
    fn apply(&mut self, s: &mut Side, r: &mut Side, seg: &Segment, annotate: bool, inferred: bool) {
        let first = self.packets == 0;
        if first {
            self.begin(s, r, seg.flags);
        }
        let before = (s.state, r.state);
        let mut tags = if first && self.assumed {
            MID_CONNECTION
        } else {
            0
        };
        if inferred {
            self.inferred[s.role as usize] += 1;
            tags |= INFERRED;
        } else {
            self.packets += 1;
            s.packets += 1;
        }
        let pos = self.position(s, r, seg, &mut tags);
        if !inferred {
            tags |= self.wire_tags(s, r, seg, &pos);
            let delta_last = pos.end.wrapping_sub(s.nxt);
            self.zeek.packet(
                s.role == Role::Client,
                seg.flags,
                pos.rel,
                seg.length,
                seg.win,
                delta_last,
            );
        }
        if tags & WINDOW_PROBE == 0 {
            // A probe's byte is refused by the zero window and sent again later: it
            // advances nothing (so a repeated 1-byte probe is again at SND.NXT).
            tags |= account_space(s, seg, &pos);
        }

        let record_from = annotate.then_some(self.steps.len());
        let (mut tags, acked, delay) = self.transitions(s, r, seg, &pos, tags, record_from);

        if annotate && !inferred {
            tags |= self.ladder_tags(s, r, seg, &pos, tags);
        }
        if seg.flags & RST == 0 && !inferred {
            // A RST's window means nothing (Linux sends 0); an inferred segment's
            // window is unknown.
            if pos.ack >= 0 {
                s.last_ack = pos.ack;
                s.edge = pos.ack.wrapping_add(pos.win);
            }
            s.win = pos.win;
        }
        if annotate {
            self.record(s, r, seg, &pos, tags, acked, delay);
            if inferred {
                let index = self.steps.len() - 1;
                self.inferred_segments.push((index, seg.clone()));
            }
        }
        if !inferred {
            // Findings rest on what the capture holds: an inferred segment proves
            // nothing of its own.
            self.clues.note(&Seen {
                sender: s.role,
                flags: seg.flags,
                length: seg.length,
                win: seg.win,
                tags,
                at: Mark {
                    t: seg.t,
                    frame: seg.frame,
                },
                sender_before: before.0,
                receiver_before: before.1,
                sender_after: s.state,
                receiver_after: r.state,
            });
        }
    }

    /// Tags only the ladder needs, from the windows before this segment's own: a
    /// duplicate ACK, a window update, a window filled. They move no state, so the cheap
    /// path skips them.
    fn ladder_tags(&self, s: &Side, r: &Side, seg: &Segment, pos: &Position, tags: u16) -> u16 {
        let mut more = 0;
        let pure = seg.flags & (SYN | FIN | RST) == 0;
        if pure && tags & (WINDOW_PROBE | KEEP_ALIVE | ZERO_WINDOW) == 0 {
            more |= window_tags(s, pos, seg.length);
        }
        // The data reaches the right edge of the receiver's last advertised window.
        if seg.length > 0
            && self.scaled
            && tags & WINDOW_PROBE == 0
            && 0 <= r.edge
            && r.edge <= pos.rel.wrapping_add(i64::from(seg.length))
        {
            more |= WINDOW_FULL;
        }
        more
    }

    fn begin(&mut self, s: &mut Side, r: &mut Side, flags: u8) {
        if flags & SYN != 0 && flags & ACK == 0 {
            s.state = State::Closed;
        } else if flags & SYN != 0 {
            // The SYN was missed: its sender must be SYN-SENT.
            r.state = State::SynSent;
            self.assumed = true;
        } else {
            s.state = State::Established;
            r.state = State::Established;
            self.assumed = true;
        }
        if s.role == Role::Server && self.assumed {
            self.zeek.flipped();
        }
        self.initial = match s.role {
            Role::Client => (s.state, r.state),
            Role::Server => (r.state, s.state),
        };
    }

    /// Where the segment sits in the sender's sequence space, and what it acknowledges
    /// in the receiver's. Sets the bases on first sight.
    fn position(&mut self, s: &mut Side, r: &mut Side, seg: &Segment, tags: &mut u16) -> Position {
        let (syn, rst) = (seg.flags & SYN != 0, seg.flags & RST != 0);
        let mut fin = seg.flags & FIN != 0;
        if syn {
            s.syn_t = seg.t; // a retransmitted SYN is the one answered
            if !s.syn_seen {
                s.syn_seen = true;
                s.wscale = seg.wscale;
                s.rebase(i64::from(seg.seq));
            }
        } else if s.base < 0 {
            s.rebase(i64::from(seg.seq));
        }
        let rel = s.relative(seg.seq);
        let length = i64::from(seg.length);
        if fin && s.syn_seen && !syn && rel.wrapping_add(length) < 1 {
            // A FIN on the SYN's own sequence number (seen from a broken stack): it is
            // below every receiver's RCV.NXT, so no kernel takes it as a FIN.
            fin = false;
            *tags |= OUT_OF_WINDOW;
            self.note_first_closer(s.role, seg.t);
        }
        let space = if rst {
            0
        } else {
            length + i64::from(syn) + i64::from(fin)
        };
        let mut ack = -1;
        if seg.flags & ACK != 0 {
            let ack_no = i64::from(seg.ack);
            if r.base < 0 && syn {
                // A SYN+ACK whose SYN the capture missed.
                r.rebase(ack_no - 1);
                r.nxt = 1;
                r.contig = 1;
            } else if r.base < 0 {
                r.rebase(ack_no);
            }
            ack = r.relative(seg.ack);
        }
        if syn && s.role == Role::Server && r.syn_seen && !self.scaled {
            self.learn_scaling(s, r);
        }
        let raw_win = i64::from(seg.win);
        let win = if syn { raw_win } else { raw_win << s.shift };
        let end = rel.wrapping_add(space);
        Position {
            rel,
            space,
            end,
            ack,
            fin,
            win,
        }
    }

    /// RFC 7323: windows are scaled only if both SYNs carried the option. Called on the
    /// server's SYN (`s`), the client's (`c`) having been seen.
    fn learn_scaling(&mut self, s: &mut Side, c: &mut Side) {
        self.scaled = true;
        if let (Some(cw), Some(sw)) = (c.wscale, s.wscale) {
            c.shift = cw.min(MAX_WSCALE);
            s.shift = sw.min(MAX_WSCALE);
        }
    }

    /// Tags the sequence numbers and window alone decide: probes, keep-alives,
    /// retransmissions, zero windows (and their counts). Runs on the cheap path too
    /// (annotate=false), so `summary` gets the same counts as the ladder.
    fn wire_tags(&mut self, s: &mut Side, r: &Side, seg: &Segment, pos: &Position) -> u16 {
        let mut tags = 0;
        let pure = seg.flags & (SYN | FIN | RST) == 0;
        let rel = pos.rel;
        // Probes first: they reuse old sequence numbers without being retransmissions.
        if pure && seg.length <= 1 {
            let at = if seg.length > 0 {
                s.nxt
            } else {
                s.una.wrapping_sub(1)
            };
            if r.win == 0 && rel == at {
                tags |= WINDOW_PROBE;
                s.window_probes += 1;
            } else if rel == s.nxt.wrapping_sub(1) && r.win != 0 {
                tags |= KEEP_ALIVE;
            }
        }
        // In a simultaneous open a side that sent a SYN answers the peer's SYN with a
        // SYN+ACK on its own ISN again (RFC 9293 figure 8): its first is no retransmission.
        let first_synack = seg.flags & (SYN | ACK) == SYN | ACK && !s.synack_sent;
        if pos.space != 0
            && rel < s.nxt
            && tags & (WINDOW_PROBE | KEEP_ALIVE) == 0
            && !first_synack
            && !s.fills_hole(rel)
        {
            tags |= RETRANSMISSION;
            s.retransmissions += 1;
            if s.pending_t >= 0.0 {
                s.pending_t = seg.t; // the ACK may answer this copy, not the lost one
            }
        }
        if pure && seg.win == 0 {
            tags |= ZERO_WINDOW;
            s.zero_windows += 1;
        }
        tags
    }

    /// The state machine proper: a RST, a segment from a side already CLOSED, or the
    /// ordinary path (FIN receipts checked, SYN, FIN, ACK, FIN arrivals). Takes the tags
    /// so far (a zero window is no delayed ACK) and returns them with this step's, the
    /// sequence space newly acknowledged and a delayed ACK's delay.
    fn transitions(
        &mut self,
        s: &mut Side,
        r: &mut Side,
        seg: &Segment,
        pos: &Position,
        mut tags: u16,
        record_from: Option<usize>,
    ) -> (u16, i64, f64) {
        let (flags, t, ack) = (seg.flags, seg.t, pos.ack);
        let syn = flags & SYN != 0;
        if flags & RST != 0 {
            return (tags | self.reset(s, r, pos, flags, t), 0, 0.0);
        }
        if s.state == State::Closed && !syn {
            // No socket can send this any more: it left before its side learned of the
            // close (it crossed a RST in flight), or it is a stray. Its FIN is still a
            // fact of the wire (who closed, whether FINs crossed).
            tags |= AFTER_CLOSE;
            if pos.fin {
                tags |= self.send_fin(s, r, pos.end.wrapping_sub(1), ack, t, true);
            }
            return (tags, 0, 0.0);
        }
        if ack >= 0 && r.fin >= 0 {
            self.check_fin_receipt(s, r, ack, record_from);
        }
        if syn {
            self.send_syn(s, r, flags, t);
        }
        if pos.fin {
            tags |= self.send_fin(s, r, pos.end.wrapping_sub(1), ack, t, !syn);
            s.state = s.state.on_fin_sent();
        }
        let (mut acked, mut delay) = (0, 0.0);
        if ack > r.una {
            acked = ack.wrapping_sub(r.una);
            let pure = flags & (SYN | FIN | RST) == 0;
            let bare = pure && seg.length == 0;
            let (ack_tags, ack_delay) = self.receive_ack(s, r, ack, t, tags, bare);
            tags = ack_tags;
            delay = ack_delay;
        }
        if s.fin >= 0 && !r.fin_in && s.contig > s.fin {
            r.receive_fin(false, record_from);
        }
        // A FIN of the receiver's that this segment proved not yet received by the
        // sender arrives now, after it (the crossing).
        if r.fin >= 0 && !s.fin_in && r.contig > r.fin {
            s.receive_fin(false, record_from);
        }
        (tags, acked, delay)
    }

    fn note_first_closer(&mut self, role: Role, t: f64) {
        if self.first_closer.is_none() {
            self.first_closer = Some(role);
            self.first_close_t = Some(t);
        }
    }

    /// The SYN's receiver has answered: fill in the rows since the SYN.
    fn pin_syn_receiver(&mut self, state: State) {
        if let (Some(from), Some(role)) = (self.syn_from.take(), self.syn_side) {
            for step in &mut self.steps[from..] {
                *step.state_mut(role) = state;
            }
        }
    }

    fn send_syn(&mut self, s: &mut Side, r: &mut Side, flags: u8, t: f64) {
        if flags & ACK != 0 {
            s.synack_sent = true;
            if s.state.before_sync() {
                s.state = State::SynReceived;
            }
            if r.syn_seen {
                s.turnaround = t - r.syn_t;
            }
            self.pin_syn_receiver(State::SynReceived);
        } else if s.state.before_sync() {
            s.state = State::SynSent;
            if r.state == State::Closed {
                r.state = State::Unknown; // listening or not: its answer will tell
            }
        }
    }

    /// The wire facts of a FIN; the caller moves the sender's state. A FIN riding on a
    /// SYN (`closes` false) closes nothing that was open: no first closer.
    fn send_fin(
        &mut self,
        s: &mut Side,
        r: &Side,
        fin_seq: i64,
        ack: i64,
        t: f64,
        closes: bool,
    ) -> u16 {
        if s.fin >= 0 {
            return 0; // the same FIN again: already counted
        }
        s.fin = fin_seq;
        if closes {
            self.note_first_closer(s.role, t);
        }
        if r.fin >= 0 && ack <= r.fin {
            // Sent after the peer's FIN, yet without acknowledging it: both FINs were in
            // flight at once.
            self.simultaneous = true;
            return SIMULTANEOUS;
        }
        0
    }

    /// r learns that s has received its data up to `ack`.
    fn receive_ack(
        &mut self,
        s: &mut Side,
        r: &mut Side,
        ack: i64,
        t: f64,
        mut tags: u16,
        bare: bool,
    ) -> (u16, f64) {
        let mut delay = 0.0;
        if r.state == State::SynReceived || (r.state == State::SynSent && s.syn_seen) {
            if r.state == State::SynReceived {
                self.handshake = true;
                s.turnaround = t - r.syn_t;
            }
            r.state = State::Established;
        }
        if r.una <= r.fin && r.fin < ack {
            tags |= ACK_OF_FIN;
            r.state = r.state.on_fin_acked();
        }
        if r.pending_t >= 0.0 {
            let waited = t - r.pending_t;
            if bare
                && tags & ZERO_WINDOW == 0
                && 0.0 <= s.turnaround
                && s.turnaround < NEAR
                && waited - s.turnaround >= DELAYED_ACK_MIN
            {
                tags |= DELAYED_ACK;
                delay = waited;
            }
            if s.turnaround < 0.0 || waited < s.turnaround {
                s.turnaround = waited;
            }
        }
        r.una = ack;
        r.pending_t = -1.0; // timed again from r's next data sent with nothing in flight
        if ack > r.contig {
            // It received segments the capture missed.
            r.advance(r.contig, ack);
            r.nxt = r.nxt.max(ack);
        }
        (tags, delay)
    }

    /// s's ACK number says whether s has r's FIN.
    fn check_fin_receipt(&mut self, s: &mut Side, r: &Side, ack: i64, record_from: Option<usize>) {
        if ack > r.fin {
            if !s.fin_in {
                // The capture missed data before the FIN.
                s.receive_fin(true, record_from);
            }
            s.unsure = false;
            s.unsure_from = None;
        } else if s.fin_in && s.unsure {
            s.state = s.state.undo_fin();
            if let Some(from) = s.unsure_from {
                for step in &mut self.steps[from..] {
                    let state = step.state_mut(s.role);
                    *state = state.undo_fin();
                }
            }
            s.fin_in = false;
            s.unsure = false;
            s.unsure_from = None;
        }
    }

    fn reset(&mut self, s: &mut Side, r: &mut Side, pos: &Position, flags: u8, t: f64) -> u16 {
        match s.role {
            Role::Client => self.rst_from_client = true,
            Role::Server => self.rst_from_server = true,
        }
        if s.state.live() || s.state == State::SynSent {
            self.rst_ended = true; // an attempt aborted counts too
        }
        if s.state == State::Unknown {
            // Answering a SYN with RST: nothing listens.
            self.pin_syn_receiver(State::Closed);
        }
        s.state = State::Closed;
        s.unsure = false;
        r.unsure = false;
        s.unsure_from = None;
        r.unsure_from = None;
        if r.state == State::Closed {
            return 0; // answers a segment sent to a socket already gone
        }
        if !self.rst_acceptable(s, r, pos, flags) {
            return OUT_OF_WINDOW; // the receiver's kernel ignores it: it closes nothing
        }
        self.note_first_closer(s.role, t);
        if r.state == State::SynSent {
            self.refused = true;
        } else if r.state.live() {
            self.rst_ended = true;
        }
        r.state = State::Closed;
        0
    }

    /// Would r's kernel act on this RST? Conservative: only a RST clearly outside the
    /// window is called ignored; one inside it is taken as accepted (Linux wants exactly
    /// RCV.NXT and answers others with a challenge ACK, RFC 5961, but the capture's idea
    /// of RCV.NXT may be off by what it missed).
    fn rst_acceptable(&self, s: &Side, r: &Side, pos: &Position, flags: u8) -> bool {
        match r.state {
            // RFC 9293 3.10.7.3: only with an ACK of the SYN.
            State::SynSent => flags & ACK != 0 && pos.ack == r.nxt,
            // Linux kills TIME-WAIT only at exactly RCV.NXT.
            State::TimeWait => pos.rel == s.contig,
            State::Unknown => true,
            _ => {
                let window = if r.win < 0 {
                    65535 << 14
                } else if self.scaled {
                    r.win
                } else {
                    r.win << 14 // scale unknown: the largest
                };
                s.contig.wrapping_sub(1) <= pos.rel
                    && pos.rel <= s.contig.wrapping_add(window.max(1))
            }
        }
    }

    /// Append this segment's Step; a SYN whose receiver is unknown starts the run of
    /// Steps to pin when it answers.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        s: &Side,
        r: &Side,
        seg: &Segment,
        pos: &Position,
        tags: u16,
        acked: i64,
        delay: f64,
    ) {
        let (client_state, server_state) = match s.role {
            Role::Client => (s.state, r.state),
            Role::Server => (r.state, s.state),
        };
        let index = self.steps.len();
        self.steps.push(Step {
            t: seg.t,
            sender: s.role,
            flags: seg.flags,
            seq: pos.rel,
            ack: pos.ack.max(0),
            length: seg.length,
            win: pos.win,
            client_state,
            server_state,
            tags,
            acked,
            delay,
        });
        if seg.flags & SYN != 0 && seg.flags & ACK == 0 && r.state == State::Unknown {
            self.syn_from = Some(index);
            self.syn_side = Some(r.role);
        }
    }
}

/// The sender's sequence space: SND.NXT, payload bytes (each counted once), the gap
/// bookkeeping, and when its oldest unacknowledged data was sent.
fn account_space(s: &mut Side, seg: &Segment, pos: &Position) -> u16 {
    let (rel, end) = (pos.rel, pos.end);
    if pos.space == 0 {
        return 0;
    }
    let nxt = s.nxt;
    let late = s.fills_hole(rel);
    if late {
        // Bytes in the gap, seen for the first time: counted now, once.
        let gap = end.min(s.hole_start).wrapping_sub(rel);
        s.bytes = s
            .bytes
            .saturating_add(gap.min(i64::from(seg.length)).max(0) as u64);
    }
    if end > nxt {
        if s.una >= nxt {
            s.pending_t = seg.t; // the oldest unacknowledged data starts here
        }
        let new = end.wrapping_sub(nxt).wrapping_sub(i64::from(pos.fin));
        let counted = i64::from(seg.length).min(new).max(0);
        s.bytes = s.bytes.saturating_add(counted as u64);
        s.nxt = end;
    }
    if rel > s.contig {
        s.advance(rel, end);
        return OUT_OF_ORDER;
    }
    if s.hole_start < 0 {
        // advance()'s common case, inline
        s.contig = s.contig.max(end);
    } else {
        s.advance(rel, end);
    }
    if late {
        OUT_OF_ORDER
    } else {
        0
    }
}

/// Duplicate ACK or window update: a bare ACK repeating the sender's last ACK number
/// at SND.NXT, with the same window (and not zero) or a changed one.
fn window_tags(s: &Side, pos: &Position, length: u32) -> u16 {
    if length > 0 || pos.ack < 0 || pos.ack != s.last_ack || pos.rel != s.nxt {
        return 0;
    }
    if pos.win == s.win {
        return if pos.win != 0 { DUP_ACK } else { 0 };
    }
    if pos.win != 0 && s.win >= 0 {
        WINDOW_UPDATE
    } else {
        0
    }
}

/// Hand-built segment sequences for the tests (absolute numbers, like a capture). The
/// client 10.0.0.1:40000 uses ISN 1000, the server 10.0.0.2:80 ISN 5000, so a test that
/// expects relative numbers checks the observer's arithmetic, not the input.
#[cfg(test)]
pub(crate) mod testing {
    use super::Observer;
    use crate::segment::{Endpoint, Segment, ACK, FIN, PSH, RST, SYN};
    use std::net::{IpAddr, Ipv4Addr};

    pub const C: i64 = 1000;
    pub const S: i64 = 5000;

    pub struct Seg {
        pub from_client: bool,
        pub seg: Segment,
    }

    impl Seg {
        pub fn len(mut self, length: u32) -> Self {
            self.seg.length = length;
            self
        }
        pub fn win(mut self, win: u16) -> Self {
            self.seg.win = win;
            self
        }
        pub fn wscale(mut self, wscale: u8) -> Self {
            self.seg.wscale = Some(wscale);
            self
        }
        /// As captured: an IPv4 ID and a TCP checksum.
        pub fn id(mut self, ip_id: u16, checksum: u16) -> Self {
            self.seg.ip_id = Some(ip_id);
            self.seg.checksum = Some(checksum);
            self
        }
        /// As captured over IPv6: a checksum, no IP ID.
        pub fn sum(mut self, checksum: u16) -> Self {
            self.seg.checksum = Some(checksum);
            self
        }
    }

    fn endpoint(last: u8, port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            port,
        }
    }

    /// who: 'c' or 's'; flags: letters of S F R P A, e.g. "SA", "FA", "RA". Numbers are
    /// taken modulo 2^32, as on the wire. Window 65535 unless `.win()` says otherwise.
    pub fn seg(t: f64, who: char, flags: &str, seq: i64, ack: i64) -> Seg {
        let from_client = who == 'c';
        let (src, dst) = if from_client {
            (endpoint(1, 40000), endpoint(2, 80))
        } else {
            (endpoint(2, 80), endpoint(1, 40000))
        };
        let bits = flags.chars().fold(0, |bits, letter| {
            bits | match letter {
                'S' => SYN,
                'F' => FIN,
                'R' => RST,
                'P' => PSH,
                'A' => ACK,
                _ => panic!("flag letter {letter}"),
            }
        });
        let wire = |n: i64| (n & 0xFFFF_FFFF) as u32;
        let seg = Segment {
            t,
            src,
            dst,
            flags: bits,
            seq: wire(seq),
            ack: wire(ack),
            length: 0,
            win: 65535,
            wscale: None,
            mss: None,
            vlan: Vec::new(),
            encap: Vec::new(),
            ip_id: None,
            checksum: None,
            frame: 0,
            comments: Vec::new(),
        };
        Seg { from_client, seg }
    }

    /// SYN, SYN+ACK, ACK at 0, 0.1 ms, 0.2 ms; `wscale` on both SYNs.
    pub fn handshake_with(c_isn: i64, wscale: Option<u8>) -> Vec<Seg> {
        let opt = |s: Seg| match wscale {
            Some(w) => s.wscale(w),
            None => s,
        };
        vec![
            opt(seg(0.0, 'c', "S", c_isn, 0)),
            opt(seg(0.0001, 's', "SA", S, c_isn + 1)),
            seg(0.0002, 'c', "A", c_isn + 1, S + 1),
        ]
    }

    pub fn handshake() -> Vec<Seg> {
        handshake_with(C, None)
    }

    pub fn run(segments: &[Seg], annotate: bool) -> Observer {
        let mut obs = Observer::new();
        for s in segments {
            obs.feed(s.from_client, &s.seg, annotate);
        }
        obs
    }

    /// `handshake()` followed by `rest`.
    pub fn after_handshake(rest: Vec<Seg>) -> Vec<Seg> {
        let mut all = handshake();
        all.extend(rest);
        all
    }
}

/// Both sides' states after each segment, as RFC 9293 and Linux have them. The
/// expectations are the Python engine's (tests/test_observer.py).
#[cfg(test)]
mod tests {
    use super::testing::{after_handshake, handshake, handshake_with, run, seg, Seg, C, S};
    use super::State::*;
    use super::*;

    fn states(obs: &Observer) -> Vec<(State, State)> {
        obs.steps()
            .iter()
            .map(|s| (s.client_state, s.server_state))
            .collect()
    }

    fn states_from(obs: &Observer, from: usize) -> Vec<(State, State)> {
        states(obs)[from..].to_vec()
    }

    fn tags(obs: &Observer, i: usize) -> Vec<&'static str> {
        tag_names(obs.steps()[i].tags)
    }

    fn annotated(segments: &[Seg]) -> Observer {
        run(segments, true)
    }

    use crate::verdict::classify;

    // -- capture duplicates, reordering, one direction (issue 14) --------------------

    /// Every frame twice, 20 µs apart, as `tcpdump -i any` on a bridge records it.
    fn doubled(segments: Vec<Seg>) -> Vec<Seg> {
        let mut out = Vec::new();
        for (i, s) in segments.into_iter().enumerate() {
            let s = s.id(i as u16 + 1, 0xAB00 + i as u16);
            let mut copy = Seg {
                from_client: s.from_client,
                seg: s.seg.clone(),
            };
            copy.seg.t += 0.000_02;
            out.push(s);
            out.push(copy);
        }
        out
    }

    fn graceful() -> Vec<Seg> {
        after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(24),
            seg(0.011, 's', "A", S + 1, C + 25),
            seg(0.012, 's', "PA", S + 1, C + 25).len(44),
            seg(0.013, 'c', "A", C + 25, S + 45),
            seg(0.020, 'c', "FA", C + 25, S + 45),
            seg(0.060, 's', "A", S + 45, C + 26),
            seg(0.070, 's', "FA", S + 45, C + 26),
            seg(0.071, 'c', "A", C + 26, S + 46),
        ])
    }

    #[test]
    fn a_doubled_capture_gives_the_same_states_and_verdict() {
        let single = annotated(&graceful());
        let double = annotated(&doubled(graceful()));
        let originals: Vec<_> = states(&double).into_iter().step_by(2).collect();
        assert_eq!(originals, states(&single));
        for (i, step) in double.steps().iter().enumerate() {
            let want = if i % 2 == 1 { CAPTURE_DUPLICATE } else { 0 };
            assert_eq!(step.tags & CAPTURE_DUPLICATE, want, "step {i}");
            if i % 2 == 1 {
                let before = &double.steps()[i - 1];
                assert_eq!(
                    (step.client_state, step.server_state),
                    (before.client_state, before.server_state)
                );
                assert_eq!((step.seq, step.ack), (before.seq, before.ack));
            }
        }
        assert_eq!(classify(&double), classify(&single));
        assert_eq!(
            (
                double.capture_duplicates(Role::Client),
                double.capture_duplicates(Role::Server)
            ),
            (6, 5)
        );
        assert_eq!(
            (double.client.retransmissions, double.server.retransmissions),
            (0, 0)
        );
        assert_eq!(double.packets, 2 * single.packets);
        assert_eq!((double.client.bytes, double.server.bytes), (24, 44));
    }

    #[test]
    fn a_real_retransmission_is_no_copy() {
        // The same numbers again but a new IPv4 ID: sent twice by the stack.
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(10).id(5, 0x1111),
            seg(0.0101, 'c', "PA", C + 1, S + 1).len(10).id(6, 0x1111),
            // The same bytes again after 2 ms and more: not a copy either.
            seg(0.0200, 'c', "PA", C + 1, S + 1).len(10).id(6, 0x1111),
        ]));
        assert_eq!(tags(&obs, 4), ["retransmission"]);
        assert_eq!(tags(&obs, 5), ["retransmission"]);
        assert_eq!(obs.capture_duplicates(Role::Client), 0);
    }

    #[test]
    fn identical_rsts_answering_two_segments_are_no_copies() {
        // IPv6 (no IP ID): byte-identical RSTs, each answering its own segment.
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "R", C + 1, 0).sum(0x57F8),
            seg(0.010_003, 's', "PA", S + 1, C + 1).len(5).sum(0x1234),
            seg(0.010_006, 'c', "R", C + 1, 0).sum(0x57F8),
            seg(0.010_007, 'c', "R", C + 1, 0).sum(0x57F8), // nothing in between: a copy
        ]));
        assert!(tags(&obs, 5).is_empty());
        assert_eq!(tags(&obs, 6), ["capture-duplicate"]);
        assert_eq!(obs.capture_duplicates(Role::Client), 1);
    }

    #[test]
    fn data_captured_after_its_fin_is_out_of_order_and_counted_once() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 14, S + 1),
            seg(0.010_1, 'c', "PA", C + 1, S + 1).len(13),
            seg(0.011, 's', "A", S + 1, C + 15),
        ]));
        assert_eq!(tags(&obs, 3), ["out-of-order"]);
        assert_eq!(tags(&obs, 4), ["out-of-order"]);
        assert_eq!((obs.client.bytes, obs.client.retransmissions), (13, 0));
        // The FIN counts as received once the data before it is there.
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, Established),
                (FinWait1, CloseWait),
                (FinWait2, CloseWait)
            ]
        );
    }

    /// Only the client's segments of `graceful()`.
    fn client_only() -> Vec<Seg> {
        let mut all = handshake();
        all.extend(graceful().into_iter().skip(3));
        all.into_iter().filter(|s| s.from_client).collect()
    }

    #[test]
    fn one_direction_infers_the_servers_synack_data_and_fin() {
        let obs = annotated(&client_only());
        let rows: Vec<_> = obs
            .steps()
            .iter()
            .map(|s| {
                (
                    s.sender,
                    s.flags,
                    s.seq,
                    s.ack,
                    s.length,
                    s.tags & INFERRED != 0,
                )
            })
            .collect();
        use Role::{Client as Cl, Server as Sv};
        assert_eq!(
            rows,
            [
                (Cl, SYN, 0, 0, 0, false),
                (Sv, SYN | ACK, 0, 1, 0, true),
                (Cl, ACK, 1, 1, 0, false),
                (Cl, crate::segment::PSH | ACK, 1, 1, 24, false),
                (Sv, ACK, 1, 25, 44, true),
                (Cl, ACK, 25, 45, 0, false),
                (Cl, FIN | ACK, 25, 45, 0, false),
                (Sv, FIN | ACK, 45, 26, 0, true),
                (Cl, ACK, 26, 46, 0, false),
            ]
        );
        assert_eq!(
            states(&obs),
            [
                (SynSent, SynReceived),
                (Established, SynReceived),
                (Established, Established),
                (Established, Established),
                (Established, Established),
                (Established, Established),
                (FinWait1, CloseWait),
                (TimeWait, LastAck),
                (TimeWait, Closed),
            ]
        );
        let v = classify(&obs);
        assert!(v.one_direction);
        assert_eq!(v.close_text(), "one direction captured");
        assert_eq!(
            (v.close, v.first_closer),
            (crate::verdict::Close::Fin, Some(Role::Client))
        );
        assert_eq!(
            (
                obs.server.packets,
                obs.inferred(Role::Server),
                obs.server.bytes
            ),
            (0, 3, 44)
        );
        assert!(obs.handshake);
        // The cheap path reaches the same facts.
        assert_eq!(classify(&run(&client_only(), false)), v);
    }

    /// The server closes first: its reply, then its FIN, ACKed on its own by the client,
    /// which closes 50 ms later.
    fn server_first() -> Vec<Seg> {
        after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(24),
            seg(0.011, 's', "A", S + 1, C + 25),
            seg(0.012, 's', "PA", S + 1, C + 25).len(44),
            seg(0.013, 'c', "A", C + 25, S + 45),
            seg(0.020, 's', "FA", S + 45, C + 25),
            seg(0.021, 'c', "A", C + 25, S + 46),
            seg(0.070, 'c', "FA", C + 25, S + 46),
            seg(0.071, 's', "A", S + 46, C + 26),
        ])
    }

    fn seen_from_client(segments: Vec<Seg>) -> Vec<Seg> {
        segments.into_iter().filter(|s| s.from_client).collect()
    }

    fn rows(obs: &Observer) -> Vec<(Role, u8, i64, u32, bool)> {
        (obs.steps().iter())
            .map(|s| (s.sender, s.flags, s.seq, s.length, s.tags & INFERRED != 0))
            .collect()
    }

    #[test]
    fn one_direction_reads_the_number_again_as_the_fin_when_the_client_closes_next() {
        let obs = annotated(&seen_from_client(server_first()));
        use Role::{Client as Cl, Server as Sv};
        assert_eq!(
            rows(&obs)[4..],
            [
                (Sv, ACK, 1, 44, true),
                (Cl, ACK, 25, 0, false),
                (Sv, FIN | ACK, 45, 0, true),
                (Cl, ACK, 25, 0, false),
                (Cl, FIN | ACK, 25, 0, false),
            ]
        );
        assert_eq!(
            states_from(&obs, 5),
            [
                (Established, Established),
                (CloseWait, FinWait1),
                (CloseWait, FinWait2),
                (LastAck, TimeWait),
            ]
        );
        // The client's rows as the whole capture has them (its FIN's ACK is unseen).
        let full = annotated(&server_first());
        let truth: Vec<_> = (full.steps().iter())
            .filter(|s| s.sender == Role::Client)
            .map(|s| s.client_state)
            .collect();
        let seen: Vec<_> = (obs.steps().iter())
            .filter(|s| s.sender == Role::Client)
            .map(|s| s.client_state)
            .collect();
        assert_eq!(seen, truth);
        let (v, want) = (classify(&obs), classify(&full));
        assert_eq!((v.close, v.first_closer), (want.close, want.first_closer));
        assert_eq!((v.time_wait, v.final_server), (Some("server"), TimeWait));
        assert_eq!(v.final_client, LastAck);
        assert_eq!((obs.server.bytes, obs.inferred(Role::Server)), (44, 3));
        assert_eq!(classify(&run(&seen_from_client(server_first()), false)), v);
        let (segments, steps) = obs.into_detail(Vec::new());
        assert_eq!(segments.len(), 3); // the inferred ones, each at its Step
        assert_eq!(steps[6].ack, 25);
        assert_eq!(segments[2].flags, FIN | ACK);
    }

    #[test]
    fn a_later_ack_of_one_more_number_keeps_the_byte() {
        // The counter-case: a 1-byte answer, the client's close, then the server's FIN,
        // ACKed by the client: nothing follows a FIN, so the one number was a byte.
        let client = seen_from_client(after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(24),
            seg(0.013, 'c', "A", C + 25, S + 2),
            seg(0.070, 'c', "FA", C + 25, S + 2),
            seg(0.090, 'c', "A", C + 26, S + 3),
        ]));
        // Cut before that last ACK, the wire is a server that closed first: the FIN
        // reading wins there (what the wire cannot tell, infer.rs).
        let cut = &client[..client.len() - 1];
        assert_eq!(annotated(cut).first_closer, Some(Role::Server));
        let obs = annotated(&client);
        use Role::{Client as Cl, Server as Sv};
        assert_eq!(
            rows(&obs)[4..],
            [
                (Sv, ACK, 1, 1, true),
                (Cl, ACK, 25, 0, false),
                (Cl, FIN | ACK, 25, 0, false),
                (Sv, FIN | ACK, 2, 0, true),
                (Cl, ACK, 26, 0, false),
            ]
        );
        assert_eq!(
            states_from(&obs, 4),
            [
                (Established, Established),
                (Established, Established),
                (FinWait1, CloseWait),
                (TimeWait, LastAck),
                (TimeWait, Closed),
            ]
        );
        let v = classify(&obs);
        assert_eq!(v.first_closer, Some(Role::Client));
        assert_eq!((obs.server.bytes, obs.inferred(Role::Server)), (1, 3));
        let (segments, _) = obs.into_detail(Vec::new());
        assert_eq!(segments.len(), 3);
    }

    #[test]
    fn the_same_rule_from_the_servers_side() {
        // Only the server's segments (from its SYN+ACK on) of a close the client starts:
        // the server's FIN, ACKing nothing more, re-reads the one number as the client's.
        let server = vec![
            seg(0.0001, 's', "SA", S, C + 1),
            seg(0.011, 's', "A", S + 1, C + 25),
            seg(0.012, 's', "PA", S + 1, C + 25).len(44),
            seg(0.030, 's', "A", S + 45, C + 26),
            seg(0.080, 's', "FA", S + 45, C + 26),
        ];
        let obs = annotated(&server);
        assert_eq!(obs.first_closer, Some(Role::Client));
        assert_eq!((obs.client.state, obs.server.state), (TimeWait, LastAck));
        assert_eq!((obs.client.bytes, obs.inferred(Role::Client)), (24, 2));
        let fin = &obs.steps()[4];
        assert_eq!(
            (fin.sender, fin.flags, fin.seq),
            (Role::Client, FIN | ACK, 25)
        );
        assert_eq!(classify(&run(&server, false)), classify(&obs));
    }

    #[test]
    fn the_clients_own_data_after_the_number_keeps_the_byte() {
        let client = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(24),
            seg(0.013, 'c', "A", C + 25, S + 2),
            seg(0.020, 'c', "PA", C + 25, S + 2).len(100),
            seg(0.070, 'c', "FA", C + 125, S + 2),
        ]);
        let obs = annotated(&seen_from_client(client));
        assert_eq!(obs.steps()[4].length, 1);
        assert_eq!(obs.steps()[4].flags, ACK);
        assert_eq!((obs.client.state, obs.server.state), (FinWait1, CloseWait));
        assert_eq!(obs.first_closer, Some(Role::Client));
    }

    #[test]
    fn with_both_directions_only_a_missing_fin_is_inferred() {
        // The server's FIN is lost from the capture; its data is there.
        let mut segments = graceful();
        segments.remove(9); // the server's FIN
        let obs = annotated(&segments);
        let inferred: Vec<_> = (obs.steps().iter())
            .filter(|s| s.tags & INFERRED != 0)
            .collect();
        assert_eq!(inferred.len(), 1);
        assert_eq!(
            (inferred[0].sender, inferred[0].flags),
            (Role::Server, FIN | ACK)
        );
        assert_eq!(obs.client.state, TimeWait);
        assert!(!classify(&obs).one_direction);
    }

    #[test]
    fn names() {
        assert_eq!(Unknown.name(), "?");
        assert_eq!(FinWait1.name(), "FIN-WAIT-1");
        assert_eq!(TimeWait.name(), "TIME-WAIT");
        assert_eq!(
            tag_names(MID_CONNECTION | ACK_OF_FIN | AFTER_CLOSE),
            ["mid-connection", "ack-of-fin", "after-close"]
        );
        assert_eq!(TAG_NAMES[12], "out-of-window");
        assert_eq!(OUT_OF_WINDOW, 1 << 12);
    }

    // -- handshake ------------------------------------------------------------------

    #[test]
    fn handshake_states_and_relative_numbers() {
        let obs = annotated(&handshake());
        assert_eq!(
            states(&obs),
            [
                (SynSent, SynReceived),
                (Established, SynReceived),
                (Established, Established)
            ]
        );
        let numbers: Vec<_> = obs.steps().iter().map(|s| (s.seq, s.ack)).collect();
        assert_eq!(numbers, [(0, 0), (0, 1), (1, 1)]);
        assert!(obs.handshake && !obs.assumed);
    }

    #[test]
    fn syn_receiver_is_unknown_until_it_answers() {
        let obs = annotated(&[seg(0.0, 'c', "S", C, 0)]);
        assert_eq!(states(&obs), [(SynSent, Unknown)]);
        assert_eq!(obs.server.state, Unknown);
    }

    #[test]
    fn refused_syn_nothing_listens() {
        let obs = annotated(&[
            seg(0.0, 'c', "S", C, 0),
            seg(0.0001, 's', "RA", 0, C + 1).win(0),
        ]);
        // No listener: the server side is CLOSED from the SYN on, not LISTEN.
        assert_eq!(states(&obs), [(SynSent, Closed), (Closed, Closed)]);
        assert!(obs.refused && !obs.rst_ended);
        assert!(tags(&obs, 1).is_empty()); // window 0 on a RST is not a zero window
    }

    #[test]
    fn refused_syn_retried_each_time() {
        let obs = annotated(&[
            seg(0.0, 'c', "S", C, 0),
            seg(0.0001, 's', "RA", 0, C + 1).win(0),
            seg(0.5, 'c', "S", C, 0),
            seg(0.5001, 's', "RA", 0, C + 1).win(0),
        ]);
        assert_eq!(
            states(&obs),
            [(SynSent, Closed), (Closed, Closed)].repeat(2)
        );
        assert_eq!(tags(&obs, 2), ["retransmission"]);
    }

    #[test]
    fn rst_without_ack_does_not_reset_syn_sent() {
        // RFC 9293 3.10.7.3: in SYN-SENT a RST counts only if it ACKs the SYN.
        let obs = annotated(&[seg(0.0, 'c', "S", C, 0), seg(0.0001, 's', "R", 0, 0)]);
        assert_eq!(states(&obs)[1], (SynSent, Closed));
        assert_eq!(tags(&obs, 1), ["out-of-window"]);
    }

    #[test]
    fn capture_starting_at_the_syn_ack() {
        let obs = annotated(&[
            seg(0.0, 's', "SA", S, C + 1),
            seg(0.0001, 'c', "A", C + 1, S + 1),
        ]);
        assert_eq!(
            states(&obs),
            [(Established, SynReceived), (Established, Established)]
        );
        assert!(obs.assumed);
        assert_eq!(tags(&obs, 0), ["mid-connection"]);
        assert_eq!(obs.initial, (SynSent, Unknown));
    }

    #[test]
    fn simultaneous_open_synacks_are_not_retransmissions() {
        // RFC 9293 figure 8: both send SYN, both answer with SYN+ACK on their own ISN.
        let obs = annotated(&[
            seg(0.0, 'c', "S", C, 0),
            seg(0.0001, 's', "S", S, 0),
            seg(0.0002, 'c', "SA", C, S + 1),
            seg(0.0003, 's', "SA", S, C + 1),
            // a genuine retransmission of the client's SYN+ACK is still called one
            seg(0.2, 'c', "SA", C, S + 1),
        ]);
        let retransmitted: Vec<bool> = obs
            .steps()
            .iter()
            .map(|s| s.tags & RETRANSMISSION != 0)
            .collect();
        assert_eq!(retransmitted, [false, false, false, false, true]);
        assert_eq!(
            (obs.client.retransmissions, obs.server.retransmissions),
            (1, 0)
        );
    }

    // -- graceful close -------------------------------------------------------------

    #[test]
    fn four_segment_close_with_delayed_ack() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.051, 's', "A", S + 1, C + 2), // delayed ACK, 41 ms
            seg(0.060, 's', "FA", S + 1, C + 2),
            seg(0.0601, 'c', "A", C + 2, S + 2),
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, CloseWait),
                (FinWait2, CloseWait),
                (TimeWait, LastAck),
                (TimeWait, Closed)
            ]
        );
        assert_eq!(tags(&obs, 4), ["ack-of-fin", "delayed-ack"]);
        assert!((obs.steps()[4].delay - 0.041).abs() < 1e-9);
        assert_eq!(tags(&obs, 6), ["ack-of-fin"]);
        assert_eq!(
            (obs.first_closer, obs.first_close_t),
            (Some(Role::Client), Some(0.010))
        );
    }

    #[test]
    fn three_segment_close_fin_rides_on_the_ack() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.0101, 's', "FA", S + 1, C + 2),
            seg(0.0102, 'c', "A", C + 2, S + 2),
        ]));
        // FIN-WAIT-1 + FIN+ACK that ACKs its FIN -> TIME-WAIT (RFC 9293).
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, CloseWait),
                (TimeWait, LastAck),
                (TimeWait, Closed)
            ]
        );
        assert_eq!(tags(&obs, 4), ["ack-of-fin"]);
        assert!(!obs.simultaneous);
    }

    #[test]
    fn fin_on_the_last_data_segment() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FPA", C + 1, S + 1).len(5),
            seg(0.0101, 's', "A", S + 1, C + 7),
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [(FinWait1, CloseWait), (FinWait2, CloseWait)]
        );
        let step = &obs.steps()[4];
        assert_eq!((step.ack, step.acked), (7, 6)); // 5 bytes + the FIN
        assert_eq!(obs.client.bytes, 5);
    }

    #[test]
    fn half_close_the_passive_side_keeps_sending() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.011, 's', "A", S + 1, C + 2),
            seg(0.020, 's', "PA", S + 1, C + 2).len(100),
            seg(0.021, 'c', "A", C + 2, S + 101),
            seg(0.030, 's', "PA", S + 101, C + 2).len(100),
            seg(0.031, 'c', "A", C + 2, S + 201),
            seg(0.040, 's', "FA", S + 201, C + 2),
            seg(0.041, 'c', "A", C + 2, S + 202),
        ]));
        let mut expected = vec![(FinWait1, CloseWait)];
        expected.extend([(FinWait2, CloseWait)].repeat(5));
        expected.extend([(TimeWait, LastAck), (TimeWait, Closed)]);
        assert_eq!(states_from(&obs, 3), expected);
        assert_eq!(obs.server.bytes, 200);
    }

    #[test]
    fn simultaneous_close_both_pass_closing_and_end_in_time_wait() {
        let segments = after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.0101, 's', "FA", S + 1, C + 1), // does not ACK the client's FIN
            seg(0.0102, 'c', "A", C + 2, S + 2),
            seg(0.0103, 's', "A", S + 2, C + 2),
        ]);
        let obs = annotated(&segments);
        // The server's FIN shows it had not received the client's: on the client's FIN
        // row the server was still ESTABLISHED (the row is corrected once that is known).
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, Established),
                (Closing, Closing),
                (Closing, TimeWait),
                (TimeWait, TimeWait)
            ]
        );
        assert_eq!(tags(&obs, 4), ["simultaneous-close"]);
        assert!(obs.simultaneous);
        let cheap = run(&segments, false);
        assert_eq!(
            (cheap.client.state, cheap.server.state, cheap.simultaneous),
            (TimeWait, TimeWait, true)
        );
        assert!(cheap.steps().is_empty());
    }

    #[test]
    fn fin_receipt_undone_when_the_peer_data_crossed_it() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.0101, 's', "PA", S + 1, C + 1).len(50), // sent before the FIN came
            seg(0.0102, 'c', "A", C + 2, S + 51),
            seg(0.0103, 's', "A", S + 51, C + 2),
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, Established),
                (FinWait1, CloseWait),
                (FinWait1, CloseWait),
                (FinWait2, CloseWait)
            ]
        );
        assert!(!obs.simultaneous);
    }

    #[test]
    fn retransmitted_fin_changes_state_once() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.220, 'c', "FA", C + 1, S + 1),
            seg(0.221, 's', "A", S + 1, C + 2),
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, CloseWait),
                (FinWait1, CloseWait),
                (FinWait2, CloseWait)
            ]
        );
        assert_eq!(tags(&obs, 4), ["retransmission"]);
        assert_eq!(obs.client.retransmissions, 1);
    }

    #[test]
    fn fin_beyond_a_gap_is_received_when_the_gap_is_filled() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(10),
            // C+11..C+20 is not in the capture (yet)
            seg(0.012, 'c', "FA", C + 21, S + 1),
            seg(0.050, 'c', "PA", C + 11, S + 1).len(10),
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [
                (Established, Established),
                (FinWait1, Established),
                (FinWait1, CloseWait)
            ]
        );
        assert_eq!(tags(&obs, 4), ["out-of-order"]);
        // It fills the gap: new bytes seen late, not sent again (issue 14).
        assert_eq!(tags(&obs, 5), ["out-of-order"]);
        assert_eq!((obs.client.bytes, obs.client.retransmissions), (20, 0));
    }

    #[test]
    fn fin_beyond_a_gap_is_received_when_the_receiver_acks_it() {
        let obs = annotated(&after_handshake(vec![
            seg(0.012, 'c', "FA", C + 11, S + 1), // the capture missed 10 bytes
            seg(0.013, 's', "A", S + 1, C + 12),
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [(FinWait1, Established), (FinWait2, CloseWait)]
        );
    }

    // -- abortive close -------------------------------------------------------------

    #[test]
    fn rst_in_established_closes_both_without_time_wait() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "RA", C + 1, S + 1).win(0)
        ]));
        assert_eq!(states_from(&obs, 3), [(Closed, Closed)]);
        assert!(obs.rst_ended && obs.rst_from_client && !obs.rst_from_server);
        assert_eq!(
            (obs.first_closer, obs.first_close_t),
            (Some(Role::Client), Some(0.010))
        );
        assert!(tags(&obs, 3).is_empty());
    }

    #[test]
    fn rst_after_half_close() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "FA", C + 1, S + 1),
            seg(0.011, 's', "A", S + 1, C + 2),
            seg(0.020, 's', "PA", S + 1, C + 2).len(30),
            seg(0.0201, 'c', "R", C + 2, 0), // Linux: data after close -> RST
        ]));
        assert_eq!(
            states_from(&obs, 3),
            [
                (FinWait1, CloseWait),
                (FinWait2, CloseWait),
                (FinWait2, CloseWait),
                (Closed, Closed)
            ]
        );
        assert!(obs.rst_ended);
    }

    #[test]
    fn segments_after_an_abort_change_nothing() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 's', "RA", S + 1, C + 1).win(0),
            seg(0.0101, 'c', "PA", C + 1, S + 1).len(20), // crossed the RST
            seg(0.0102, 's', "R", S + 1, 0),              // no socket: RST
        ]));
        assert_eq!(states_from(&obs, 3), [(Closed, Closed)].repeat(3));
        assert_eq!(tags(&obs, 4), ["after-close"]);
        assert!(obs.rst_from_server && !obs.rst_from_client);
    }

    #[test]
    fn rst_far_outside_the_window_is_ignored() {
        let obs = annotated(&after_handshake(vec![seg(
            0.010,
            'c',
            "RA",
            C + 1 + 10_000_000,
            S + 1,
        )]));
        assert_eq!(states_from(&obs, 3), [(Closed, Established)]);
        assert_eq!(tags(&obs, 3), ["out-of-window"]);
    }

    #[test]
    fn rst_at_rcv_nxt_ends_time_wait_and_elsewhere_is_ignored() {
        let close = || {
            after_handshake(vec![
                seg(0.010, 'c', "FA", C + 1, S + 1),
                seg(0.011, 's', "FA", S + 1, C + 2),
                seg(0.012, 'c', "A", C + 2, S + 2),
            ])
        };
        let mut at_nxt = close();
        at_nxt.push(seg(1.0, 's', "R", S + 2, 0));
        let obs = annotated(&at_nxt);
        assert_eq!(states_from(&obs, 5), [(TimeWait, Closed), (Closed, Closed)]);
        let mut elsewhere = close();
        elsewhere.push(seg(1.0, 's', "R", S + 900, 0));
        let obs = annotated(&elsewhere);
        assert_eq!(states_from(&obs, 6), [(TimeWait, Closed)]);
        assert_eq!(tags(&obs, 6), ["out-of-window"]);
    }

    #[test]
    fn fin_on_the_syn_sequence_number_is_invalid() {
        // A broken stack's FIN at the SYN's own number: no kernel takes it as a FIN, but
        // it is the first sign of a close.
        let obs = annotated(&[seg(0.0, 'c', "S", C, 0), seg(0.1, 'c', "F", C, 0)]);
        assert_eq!(tags(&obs, 1), ["out-of-window"]);
        assert_eq!(obs.client.fin, -1);
        assert_eq!(obs.first_closer, Some(Role::Client));
    }

    // -- capture boundaries ---------------------------------------------------------

    #[test]
    fn mid_connection_start_assumes_established() {
        let obs = annotated(&[
            seg(0.0, 's', "PA", 7000, 3000).len(10),
            seg(0.001, 'c', "A", 3000, 7010),
            seg(0.002, 'c', "FA", 3000, 7010),
        ]);
        assert_eq!(
            states(&obs),
            [
                (Established, Established),
                (Established, Established),
                (FinWait1, CloseWait)
            ]
        );
        assert!(obs.assumed);
        assert_eq!(tags(&obs, 0), ["mid-connection"]);
        let numbers: Vec<_> = obs.steps().iter().map(|s| (s.seq, s.ack)).collect();
        assert_eq!(numbers, [(0, 0), (0, 10), (0, 10)]);
        assert_eq!(obs.zeek.history(), "^dAF");
    }

    #[test]
    fn connection_still_open_at_the_end_stays_as_it_is() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(5)
        ]));
        assert_eq!(
            (obs.client.state, obs.server.state),
            (Established, Established)
        );
        assert_eq!(obs.first_closer, None);
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let isn = (1 << 32) - 3;
        let mut segments = handshake_with(isn, None);
        segments.push(seg(0.010, 'c', "PA", isn + 1, S + 1).len(10));
        segments.push(seg(0.011, 's', "A", S + 1, isn + 11));
        let obs = annotated(&segments);
        let numbers: Vec<_> = obs.steps()[3..].iter().map(|s| (s.seq, s.ack)).collect();
        assert_eq!(numbers, [(1, 1), (1, 11)]);
        assert!(tags(&obs, 3).is_empty());
        assert_eq!(obs.client.bytes, 10);
    }

    // -- windows, probes and counts -------------------------------------------------

    #[test]
    fn window_scaling_needs_both_syns_and_never_applies_to_a_syn() {
        let mut segments = handshake_with(C, Some(7));
        segments.push(seg(0.01, 's', "A", S + 1, C + 1).win(512));
        let obs = annotated(&segments);
        let wins: Vec<i64> = obs.steps().iter().map(|s| s.win).collect();
        assert_eq!(wins, [65535, 65535, 65535 << 7, 512 << 7]);
        let one_sided = annotated(&[
            seg(0.0, 'c', "S", C, 0).wscale(7),
            seg(0.0001, 's', "SA", S, C + 1),
            seg(0.0002, 'c', "A", C + 1, S + 1).win(512),
        ]);
        assert_eq!(one_sided.steps()[2].win, 512);
    }

    #[test]
    fn persist_probe_at_snd_una_minus_1_while_the_peer_window_is_zero() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(1000),
            seg(0.011, 's', "A", S + 1, C + 1001).win(0),
            seg(0.220, 'c', "A", C + 1000, S + 1), // Linux: SND.UNA - 1
            seg(0.221, 's', "A", S + 1, C + 1001).win(0),
            seg(0.500, 's', "A", S + 1, C + 1001).win(4096),
        ]));
        let all: Vec<_> = (4..8).map(|i| tags(&obs, i)).collect();
        assert_eq!(
            all,
            [
                ["zero-window"],
                ["window-probe"],
                ["zero-window"],
                ["window-update"]
            ]
        );
        assert_eq!(
            (obs.server.zero_windows, obs.client.retransmissions),
            (2, 0)
        );
    }

    #[test]
    fn window_probes_are_counted_on_both_paths() {
        // Two probes (a 0-byte one at SND.UNA-1, a 1-byte one at SND.NXT), then a
        // keep-alive-shaped ACK once the window reopened: that one is no probe.
        let segments = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(1000),
            seg(0.011, 's', "A", S + 1, C + 1001).win(0),
            seg(0.220, 'c', "A", C + 1000, S + 1),
            seg(0.221, 's', "A", S + 1, C + 1001).win(0),
            seg(0.640, 'c', "A", C + 1001, S + 1).len(1),
            seg(0.641, 's', "A", S + 1, C + 1001).win(4096),
            seg(7200.0, 'c', "A", C + 1000, S + 1),
        ]);
        for annotate in [true, false] {
            let obs = run(&segments, annotate);
            assert_eq!(
                (obs.client.window_probes, obs.server.window_probes),
                (2, 0),
                "annotate={annotate}"
            );
            assert_eq!(obs.server.zero_windows, 2);
        }
    }

    #[test]
    fn one_byte_probe_at_snd_nxt_is_a_window_probe() {
        let obs = annotated(&after_handshake(vec![
            seg(0.011, 's', "A", S + 1, C + 1).win(0),
            seg(0.220, 'c', "A", C + 1, S + 1).len(1),
        ]));
        assert_eq!(tags(&obs, 4), ["window-probe"]);
    }

    #[test]
    fn a_repeated_one_byte_probe_is_a_probe_each_time() {
        // Other stacks probe with the next byte and, while the window stays 0, send the
        // same byte again: it is at SND.NXT each time, and counts once, when data resumes.
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(1000),
            seg(0.011, 's', "A", S + 1, C + 1001).win(0),
            seg(0.220, 'c', "A", C + 1001, S + 1).len(1),
            seg(0.221, 's', "A", S + 1, C + 1001).win(0),
            seg(0.620, 'c', "A", C + 1001, S + 1).len(1),
            seg(1.000, 's', "A", S + 1, C + 1001).win(4096),
            seg(1.001, 'c', "PA", C + 1001, S + 1).len(500),
        ]));
        let all: Vec<_> = (5..10).map(|i| tags(&obs, i)).collect();
        assert_eq!(
            all,
            [
                vec!["window-probe"],
                vec!["zero-window"],
                vec!["window-probe"],
                vec!["window-update"],
                vec![]
            ]
        );
        assert_eq!(
            (
                obs.client.window_probes,
                obs.client.retransmissions,
                obs.client.bytes
            ),
            (2, 0, 1500)
        );
    }

    #[test]
    fn one_byte_at_snd_una_below_snd_nxt_is_a_retransmission_not_a_probe() {
        let obs = annotated(&after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(1000),
            seg(0.011, 's', "A", S + 1, C + 501).win(0),
            seg(0.220, 'c', "A", C + 501, S + 1).len(1),
        ]));
        assert!(tags(&obs, 5).contains(&"retransmission"));
        assert_eq!(
            (obs.client.window_probes, obs.client.retransmissions),
            (0, 1)
        );
    }

    #[test]
    fn keep_alive_is_not_a_retransmission() {
        let obs = annotated(&after_handshake(vec![seg(7200.0, 'c', "A", C, S + 1)])); // SND.NXT - 1
        assert_eq!(tags(&obs, 3), ["keep-alive"]);
        assert_eq!(obs.client.retransmissions, 0);
    }

    #[test]
    fn duplicate_ack_and_window_full() {
        let obs = annotated(&[
            seg(0.0, 'c', "S", C, 0).wscale(0),
            seg(0.0001, 's', "SA", S, C + 1).win(2000).wscale(0),
            seg(0.0002, 'c', "A", C + 1, S + 1),
            seg(0.010, 'c', "PA", C + 1, S + 1).len(2000),
            seg(0.011, 's', "A", S + 1, C + 1001).win(2000),
            seg(0.012, 's', "A", S + 1, C + 1001).win(2000),
        ]);
        assert_eq!(tags(&obs, 3), ["window-full"]);
        assert_eq!(tags(&obs, 5), ["duplicate-ack"]);
    }

    #[test]
    fn connection_facts_and_cheap_path() {
        let segments = after_handshake(vec![
            seg(0.010, 'c', "PA", C + 1, S + 1).len(5),
            seg(0.011, 's', "PA", S + 1, C + 6).len(7).win(0),
            seg(0.012, 'c', "FA", C + 6, S + 8),
        ]);
        let full = run(&segments, true);
        let cheap = run(&segments, false);
        assert_eq!(full.steps().len(), segments.len());
        assert!(cheap.steps().is_empty());
        for o in [&full, &cheap] {
            assert_eq!((o.client.packets, o.server.packets), (4, 2));
            assert_eq!((o.client.bytes, o.server.bytes), (5, 7));
            assert_eq!(o.server.zero_windows, 1);
            assert_eq!(
                (o.first_closer, o.first_close_t),
                (Some(Role::Client), Some(0.012))
            );
            assert_eq!(o.zeek.history(), "ShADdwF");
        }
    }
}

/// Random segment sequences: the observer never panics, and recording Steps changes
/// nothing else (annotate=true and annotate=false leave the same facts and verdict).
#[cfg(test)]
mod proptests {
    use super::testing::seg;
    use super::*;
    use crate::verdict::classify;
    use proptest::prelude::*;

    /// One segment's fields, numbers relative to its sender's ISN (or absolute).
    #[derive(Debug, Clone)]
    struct Raw {
        from_client: bool,
        flags: u8,
        seq: i64,
        ack: i64,
        length: u32,
        win: u16,
        wscale: Option<u8>,
        dt: f64,
    }

    fn flags() -> impl Strategy<Value = u8> {
        // Mostly the combinations real stacks send, sometimes anything.
        let common = prop::sample::select(vec![
            SYN,
            SYN | ACK,
            ACK,
            ACK | 0x08,
            FIN | ACK,
            RST,
            RST | ACK,
            FIN,
            SYN | FIN,
            FIN | RST,
        ]);
        prop_oneof![8 => common, 1 => any::<u8>()]
    }

    fn number() -> impl Strategy<Value = i64> {
        // Near the start of the stream (crossing the ISN, hence 32-bit wrap with the
        // ISNs below), or anywhere in the 32-bit space.
        prop_oneof![4 => -3i64..3000, 1 => any::<u32>().prop_map(i64::from)]
    }

    fn raw() -> impl Strategy<Value = Raw> {
        let length = prop_oneof![4 => Just(0u32), 2 => 0u32..3000, 1 => any::<u32>()];
        let win = prop_oneof![Just(0u16), Just(65535u16), any::<u16>()];
        let dt = prop_oneof![Just(0.0), 0.0..0.0002, Just(0.045), 0.0..10.0];
        (
            any::<bool>(),
            flags(),
            number(),
            number(),
            length,
            win,
            prop::option::of(0u8..=255),
            dt,
        )
            .prop_map(
                |(from_client, flags, seq, ack, length, win, wscale, dt)| Raw {
                    from_client,
                    flags,
                    seq,
                    ack,
                    length,
                    win,
                    wscale,
                    dt,
                },
            )
    }

    fn segments(raws: &[Raw], isns: (i64, i64)) -> Vec<(bool, Segment)> {
        let mut t = 1.7e9;
        raws.iter()
            .map(|r| {
                t += r.dt;
                let (own, peer) = if r.from_client {
                    (isns.0, isns.1)
                } else {
                    (isns.1, isns.0)
                };
                let who = if r.from_client { 'c' } else { 's' };
                let mut s = seg(t, who, "", own + r.seq, peer + r.ack)
                    .len(r.length)
                    .win(r.win)
                    .seg;
                s.flags = r.flags;
                s.wscale = r.wscale;
                (r.from_client, s)
            })
            .collect()
    }

    /// The observer's facts, with what only annotating keeps (where to rewrite Steps
    /// from) left out.
    fn facts(obs: &Observer) -> (Side, Side, String) {
        let mut c = obs.client.clone();
        let mut s = obs.server.clone();
        c.unsure_from = None;
        s.unsure_from = None;
        let rest = format!(
            "{} {} {:?} {} {:?} {:?} {} {} {} {} {} {} {:?}",
            obs.packets,
            obs.assumed,
            obs.initial,
            obs.scaled,
            obs.first_closer,
            obs.first_close_t,
            obs.rst_from_client,
            obs.rst_from_server,
            obs.simultaneous,
            obs.refused,
            obs.rst_ended,
            obs.handshake,
            obs.zeek
        );
        (c, s, rest)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn no_panic_and_annotating_changes_no_fact(
            raws in prop::collection::vec(raw(), 0..40),
            c_isn in prop_oneof![Just(0i64), Just(0xFFFF_FFF0i64), any::<u32>().prop_map(i64::from)],
            s_isn in any::<u32>().prop_map(i64::from),
        ) {
            let segs = segments(&raws, (c_isn, s_isn));
            let mut full = Observer::new();
            let mut cheap = Observer::new();
            for (from_client, s) in &segs {
                full.feed(*from_client, s, true);
                cheap.feed(*from_client, s, false);
            }
            let inferred = (full.inferred(Role::Client) + full.inferred(Role::Server)) as usize;
            prop_assert_eq!(full.steps().len(), segs.len() + inferred);
            prop_assert!(cheap.steps().is_empty());
            prop_assert_eq!(facts(&full), facts(&cheap));
            prop_assert_eq!(classify(&full), classify(&cheap));
            // Every Step gets its segment: the captured ones in order, inferred ones
            // (frame 0, tagged) in their places.
            let kept: Vec<Segment> = segs.iter().map(|(_, s)| s.clone()).collect();
            let (segments, steps) = full.into_detail(kept.clone());
            prop_assert_eq!(segments.len(), steps.len());
            let (seen, made): (Vec<_>, Vec<_>) = segments.iter().zip(&steps)
                .partition(|(_, st)| st.tags & INFERRED == 0);
            prop_assert_eq!(seen.into_iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), kept);
            prop_assert!(made.iter().all(|(s, _)| s.frame == 0 && s.ip_id.is_none()));
        }
    }
}
