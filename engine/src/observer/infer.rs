//! Segments the capture missed, inferred from what the other side acknowledges.
//!
//! A capture of one direction only (asymmetric routing, a tap on one link,
//! `tcpdump -Q out`) still proves much of the other: an ACK of the peer's ISN+1 proves
//! its SYN+ACK, an ACK beyond everything the peer was seen sending proves its data, and
//! one sequence number more proves its FIN. The observer feeds such a segment through
//! the state machine as if seen, just before the ACK that proves it (same time), tagged
//! `inferred`; it is no packet, counts no retransmission and tells Zeek nothing.
//!
//! * **SYN+ACK**: a side in SYN-SENT acknowledges a peer that has shown no sequence
//!   number yet: the peer's SYN+ACK, with ISN = ACK - 1.
//! * **FIN**: an advance of exactly one sequence number beyond what the peer was seen
//!   (or proved) to send, when the acknowledging side has sent its own FIN or sends it
//!   on this segment. One sequence number is also one byte of data; after its own FIN a
//!   side rarely gets a single byte, so it is read as the FIN.
//! * **FIN, re-read** (the peer closed first): an advance of one while both are
//!   ESTABLISHED is first read as one byte. If the acknowledging side's next new
//!   sequence number is its own FIN, acknowledging nothing more (no data of its own in
//!   between, nothing more of the peer's proved), the number is read again as the
//!   peer's FIN: the observer goes back to just before it and feeds the same segments
//!   again, so every state, the first closer and the byte count come out as if the FIN
//!   had been read at once. If that side later acknowledges one number more (or any
//!   more), the FIN reading is refuted (nothing follows a FIN) and it goes back again:
//!   the byte stands and the later number is the FIN, by the rule above.
//! * **Data**: any other advance, when the peer has sent nothing the capture shows
//!   (one direction captured). With both directions captured the missed data is
//!   accounted silently, as before: the state machine does not depend on it.
//!
//! What the wire cannot tell: a real 1-byte message (a 1-byte protocol ack) followed by
//! the receiver's own close, with the capture ending before the peer's FIN (or the peer
//! never closing), leaves exactly the segments of a peer that closed first. The FIN
//! reading wins there: it explains the capture with an ordinary close, while the byte
//! needs a peer that got a FIN and then stayed silent for the rest of the capture. The
//! row says both readings. The acknowledging side's own data after the number keeps the
//! byte (a 1-byte go-ahead answered by more data is the likelier story), and so does a
//! FIN carrying data. Going back costs one copy of the observer (without its Steps)
//! per such advance, and only in a capture of one direction.
//!
//! An inferred segment acknowledges everything the seen side had sent before the ACK
//! that proves it (its real ACK number is unknown), and advertises no window.

use super::{Machine, Role, Side, State};
use crate::segment::{Segment, ACK, FIN, RST, SYN};

/// Segments of the seen side kept while a number may still be read again: past this
/// many the current reading stands (a side in LAST-ACK sends few).
const KEEP: usize = 64;

/// How a one-number advance is read now.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reading {
    /// One byte, until the acknowledging side's FIN says otherwise.
    Byte,
    /// The peer's FIN, until a later ACK refutes it.
    Fin,
    /// Feeding the kept segments again: as the FIN (true) or as the byte.
    Replay(bool),
}

/// A one-number advance of the unseen side's that may be read again, with what that
/// takes: the observer just before it was inferred and the seen side's segments since
/// (from the ACK that proved it).
#[derive(Clone, Debug)]
pub(super) struct Reread {
    /// The advance's end, in the unseen side's space.
    end: i64,
    seen: Role,
    reading: Reading,
    before: Option<Snapshot>,
    segments: Vec<Segment>,
}

/// The observer's machine (without its Steps, which are only cut back) and both sides.
#[derive(Clone, Debug)]
struct Snapshot {
    obs: Machine,
    s: Side,
    r: Side,
    steps: usize,
    inferred: usize,
}

impl Machine {
    /// Before `seg` (from `s`) is applied: infer the segments of `r`'s it proves.
    pub(super) fn infer(&mut self, s: &mut Side, r: &mut Side, seg: &Segment, annotate: bool) {
        if seg.flags & (ACK | RST) != ACK {
            return;
        }
        let s_next = if s.base >= 0 {
            s.base.wrapping_add(s.nxt) as u32
        } else {
            seg.seq
        };
        if s.state == State::SynSent && r.base < 0 && seg.flags & SYN == 0 {
            let isn = seg.ack.wrapping_sub(1);
            let synack = unseen(seg, SYN | ACK, isn, s_next, 0, s.wscale);
            self.apply_inferred(r, s, &synack, annotate);
        }
        if r.base < 0 || r.fin >= 0 || r.state == State::Closed {
            return;
        }
        let beyond = r.relative(seg.ack).wrapping_sub(r.nxt);
        if beyond <= 0 {
            return;
        }
        let closing = s.fin >= 0 || seg.flags & FIN != 0;
        let fin = beyond == 1 && (closing || self.replays_as_fin(r, seg));
        if !fin && r.packets > 0 {
            return; // both directions captured: missed data is accounted as before
        }
        if beyond == 1 && !fin {
            self.keep_for_reread(s, r, seg);
        }
        let seq = r.base.wrapping_add(r.nxt) as u32;
        let (flags, length) = if fin {
            (FIN | ACK, 0)
        } else {
            (ACK, u32::try_from(beyond).unwrap_or(u32::MAX))
        };
        let missed = unseen(seg, flags, seq, s_next, length, None);
        self.apply_inferred(r, s, &missed, annotate);
    }

    /// Replaying a re-read as the FIN, and `seg` acknowledges exactly that number.
    fn replays_as_fin(&self, r: &Side, seg: &Segment) -> bool {
        matches!(&self.reread, Some(rr) if rr.reading == Reading::Replay(true)
            && r.relative(seg.ack) == rr.end)
    }

    /// A one-number advance about to be read as a byte while both are ESTABLISHED: keep
    /// what it takes to read it again. Nothing before this point is rewritten later
    /// (no FIN receipt unsure, no SYN receiver to pin), so cutting the Steps back is
    /// enough to go back.
    fn keep_for_reread(&mut self, s: &Side, r: &Side, seg: &Segment) {
        let open = s.state == State::Established && r.state == State::Established;
        let replaying = matches!(&self.reread, Some(rr) if rr.reading != Reading::Byte);
        if !open || replaying || seg.length > 0 || self.syn_from.is_some() {
            return;
        }
        self.reread = None;
        let before = Some(self.snapshot(s, r));
        self.reread = Some(Box::new(Reread {
            end: r.relative(seg.ack),
            seen: s.role,
            reading: Reading::Byte,
            before,
            segments: vec![seg.clone()],
        }));
    }

    /// Each segment while a re-read is pending, before anything else reads it: keep it,
    /// or settle the reading (read again as the FIN, refuted, or standing as it is).
    pub(super) fn follow_reread(
        &mut self,
        s: &mut Side,
        r: &mut Side,
        seg: &Segment,
        annotate: bool,
    ) {
        let Some(mut rr) = self.reread.take() else {
            return;
        };
        if matches!(rr.reading, Reading::Replay(_)) {
            self.reread = Some(rr);
            return;
        }
        if s.role != rr.seen || seg.flags & (SYN | RST) != 0 || rr.segments.len() >= KEEP {
            return; // the unseen side shows up, or a reset: the reading stands
        }
        let ack = if seg.flags & ACK != 0 {
            r.relative(seg.ack)
        } else {
            -1
        };
        match rr.reading {
            Reading::Byte if ack > rr.end || seg.length > 0 => return, // the byte stands
            Reading::Byte if seg.flags & FIN != 0 => {
                let plain = s.state == State::Established && r.state == State::Established;
                if ack != rr.end || r.nxt != rr.end || r.fin >= 0 || s.fin >= 0 || !plain {
                    return;
                }
                self.replay(s, r, &mut rr, true, annotate);
                rr.reading = Reading::Fin;
            }
            Reading::Fin if ack > rr.end => {
                // Nothing follows a FIN: it was the byte after all.
                self.replay(s, r, &mut rr, false, annotate);
                return;
            }
            _ => {}
        }
        rr.segments.push(seg.clone());
        self.reread = Some(rr);
    }

    /// Go back to just before the advance and feed the kept segments again, reading it
    /// as the FIN or as the byte. The snapshot is kept while the FIN may be refuted.
    fn replay(
        &mut self,
        s: &mut Side,
        r: &mut Side,
        rr: &mut Reread,
        as_fin: bool,
        annotate: bool,
    ) {
        let before = if as_fin {
            rr.before.clone()
        } else {
            rr.before.take()
        };
        let Some(before) = before else {
            return;
        };
        self.restore(s, r, before);
        self.reread = Some(Box::new(Reread {
            end: rr.end,
            seen: rr.seen,
            reading: Reading::Replay(as_fin),
            before: None,
            segments: Vec::new(),
        }));
        for seg in &rr.segments {
            self.feed_sides(s, r, seg, annotate);
        }
        self.reread = None;
    }

    fn snapshot(&mut self, s: &Side, r: &Side) -> Snapshot {
        let steps = std::mem::take(&mut self.steps);
        let inferred = std::mem::take(&mut self.inferred_segments);
        let snapshot = Snapshot {
            obs: self.clone(),
            s: s.clone(),
            r: r.clone(),
            steps: steps.len(),
            inferred: inferred.len(),
        };
        self.steps = steps;
        self.inferred_segments = inferred;
        snapshot
    }

    fn restore(&mut self, s: &mut Side, r: &mut Side, before: Snapshot) {
        let mut steps = std::mem::take(&mut self.steps);
        let mut inferred = std::mem::take(&mut self.inferred_segments);
        steps.truncate(before.steps);
        inferred.truncate(before.inferred);
        *self = before.obs;
        self.steps = steps;
        self.inferred_segments = inferred;
        *s = before.s;
        *r = before.r;
    }

    /// Feed an inferred segment of `r`'s (to `s`): no window is known after it.
    fn apply_inferred(&mut self, r: &mut Side, s: &mut Side, seg: &Segment, annotate: bool) {
        let (win, edge, last_ack) = (r.win, r.edge, r.last_ack);
        self.apply(r, s, seg, annotate, true);
        (r.win, r.edge, r.last_ack) = (win, edge, last_ack);
    }

    /// The Steps with their segments, inferred ones in their places among `kept` (the
    /// segments as captured, one per Step that is not inferred).
    pub fn into_detail(self, kept: Vec<Segment>) -> (Vec<Segment>, Vec<crate::observer::Step>) {
        let mut inferred = self.inferred_segments.into_iter().peekable();
        let mut kept = kept.into_iter();
        let mut segments = Vec::with_capacity(self.steps.len());
        for i in 0..self.steps.len() {
            match inferred.next_if(|(at, _)| *at == i) {
                Some((_, seg)) => segments.push(seg),
                None => segments.extend(kept.next()),
            }
        }
        (segments, self.steps)
    }
}

/// A segment of the receiver of `seg`, sent back to its sender, at its time; frame 0
/// (no record of the capture holds it).
fn unseen(
    seg: &Segment,
    flags: u8,
    seq: u32,
    ack: u32,
    length: u32,
    wscale: Option<u8>,
) -> Segment {
    Segment {
        t: seg.t,
        src: seg.dst,
        dst: seg.src,
        flags,
        seq,
        ack,
        length,
        win: 0,
        // Only a SYN carrying the option lets the SYN+ACK carry it; whether it did is
        // unseen: the seen side's windows are read as scaled, as nearly every stack
        // answers the option in kind.
        wscale: wscale.map(|_| 0),
        mss: None,
        vlan: seg.vlan.clone(),
        encap: seg.encap.clone(),
        ip_id: None,
        checksum: None,
        frame: 0,
        comments: Vec::new(),
    }
}
