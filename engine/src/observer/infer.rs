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
//!   side rarely gets a single byte, so it is read as the FIN. An advance of one while
//!   both are ESTABLISHED stays one byte of data (a peer that closes first is proved
//!   only once the other side's FIN goes out with that ACK).
//! * **Data**: any other advance, when the peer has sent nothing the capture shows
//!   (one direction captured). With both directions captured the missed data is
//!   accounted silently, as before: the state machine does not depend on it.
//!
//! An inferred segment acknowledges everything the seen side had sent before the ACK
//! that proves it (its real ACK number is unknown), and advertises no window.

use super::{Machine, Side, State};
use crate::segment::{Segment, ACK, FIN, RST, SYN};

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
        let fin = beyond == 1 && closing;
        if !fin && r.packets > 0 {
            return; // both directions captured: missed data is accounted as before
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
